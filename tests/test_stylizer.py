"""The engine as a library: settings, a held engine, planning, and stopping from another thread."""
import dataclasses
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.settings import DEFAULTS, Settings, SettingsError
from engine.stylizer import Interrupted, Stylizer

ROOT = Path(__file__).resolve().parent.parent
TWO_SCALES = dict(size=64, scales=2, min_size=48, iterations=5)


@pytest.fixture(scope="module")
def stylizer(weights):
    return Stylizer(weights, provider="cpu")


def test_settings_are_immutable_and_errors_name_the_field():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULTS.size = 64
    for changes, field in ((dict(size=0), "size"), (dict(iterations=0), "iterations"),
                           (dict(tv_weight=-1.0), "tv_weight"), (dict(optimizer="sgd"), "optimizer"),
                           (dict(style_layers={"block9_conv9": 1.0}), "style_layers"),
                           (dict(size=1.5), "size"), (dict(step_engine="ort", pooling="max"), "step_engine")):
        with pytest.raises(SettingsError) as error:
            Settings(**changes)
        assert error.value.field == field and "--" not in str(error.value)
    with pytest.raises(SettingsError, match="gives 2 weight"):
        Settings(style_blend=(1, 2)).check_styles(1)
    settings = Settings(style_layers="block1_conv1:3,block2_conv1", size=300, preserve_colors=True)
    assert dict(settings.style_layers) == {"block1_conv1": 0.75, "block2_conv1": 0.25}
    assert Settings.from_dict(json.loads(settings.to_json())) == settings
    with pytest.raises(SettingsError, match="colour is not a setting"):
        Settings.from_dict({"colour": "red"})


def test_cli_defaults_are_the_settings_defaults():
    import cli
    from engine.options import settings_from_args
    assert settings_from_args(cli.build_parser().parse_args(["stylize"])) == DEFAULTS


@pytest.mark.parametrize("size", [64, 96, 128])
def test_any_size_runs_with_the_default_scales(stylizer, content_image, style_image, size):
    """Up to the first scale's size (128 px) the run has one scale, and runs."""
    settings = Settings(size=size, iterations=2)
    assert settings.scale_sizes() == [size]
    assert Settings(size=600).scale_sizes() == [128, 277, 600]
    outcome = stylizer.run(content_image, [style_image], settings)
    assert max(outcome.image.shape[:2]) == size and outcome.iterations == 2


def test_auto_runs_the_onnx_step_on_a_cpu_and_tensorflow_where_it_cannot(weights, store, seed_step_graph,
                                                                         content_image, tmp_path):
    from engine.store import ArtifactStore
    stylizer = Stylizer(weights, provider="cpu", store=store)
    plan = stylizer.plan(Settings(), content_image.shape)
    assert plan.step_engine == "ort" and plan.step_graph == seed_step_graph and not plan.masked
    assert stylizer.plan(Settings(pooling="max"), content_image.shape).step_engine == "tf"
    # a store that has no step graph and may not export: the TensorFlow step, which is here
    bare = Stylizer(weights, provider="cpu", store=ArtifactStore(tmp_path, exports=False))
    assert bare.plan(Settings(targets="tf"), content_image.shape).step_engine == "tf"


def test_a_plan_without_masks_is_made_again_for_masks(stylizer, content_image, style_image):
    settings = Settings(size=48, scales=1, iterations=1, step_engine="ort")
    plan = stylizer.plan(settings, content_image.shape)
    assert not plan.masked and stylizer.plan(settings, content_image.shape, masked=True).masked
    white = np.full(content_image.shape[:2], 255, np.uint8)
    # the graph without mask inputs would refuse them (step_feeds): the run took the one with masks
    outcome = stylizer.run(content_image, [style_image], settings, plan=plan, masks=[white])
    assert outcome.iterations == 1


def test_held_engine_reuses_what_it_loaded(stylizer, content_image, style_image):
    settings = Settings(size=48, scales=1, iterations=2, step_engine="ort")
    plan = stylizer.plan(settings, content_image.shape)
    step = stylizer.step(plan)
    stylizer.run(content_image, [style_image], settings, plan=plan)
    other_size = stylizer.plan(settings.replace(size=56), content_image.shape)
    assert stylizer.step(other_size) is step   # one session for every size
    outcome = stylizer.run(content_image, [style_image], settings.replace(size=56))
    assert outcome.image.shape == (37, 56, 3)


def _stopper(at_scale: int, at_iteration: int):
    """A stop event set by another thread once the run has reported (scale, iteration)."""
    stop, reached, done = threading.Event(), threading.Event(), threading.Event()

    def stopper():
        reached.wait()
        stop.set()
        done.set()

    threading.Thread(target=stopper, daemon=True).start()

    def callback(p):
        if (p.scale, p.iteration) == (at_scale, at_iteration):
            reached.set()
            done.wait(5)   # the other thread has set the event before the loop goes on
    return stop, callback


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_stop_before_the_first_evaluation_of_the_first_scale(stylizer, content_image, style_image, optimizer):
    stop = threading.Event()
    threading.Thread(target=stop.set).start()
    time.sleep(0.05)
    with pytest.raises(Interrupted):
        stylizer.run(content_image, [style_image], Settings(**TWO_SCALES, optimizer=optimizer), stop=stop)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_stop_at_a_later_evaluation_keeps_the_best_picture(stylizer, content_image, style_image, optimizer):
    stop, callback = _stopper(0, 3)
    losses = []
    outcome = stylizer.run(content_image, [style_image], Settings(**TWO_SCALES, optimizer=optimizer), stop=stop,
                           callback=lambda p: (losses.append(p.loss), callback(p)))
    assert outcome.interrupted and outcome.iterations == 3 and len(losses) == 3
    # the first scale's best picture, brought to the size asked, and the scale it came from said
    assert outcome.loss == min(losses) and outcome.image.shape == (43, 64, 3)
    assert (outcome.scale, outcome.scales) == (1, 2)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_stop_at_the_start_of_a_later_scale_keeps_the_previous_scale(stylizer, content_image, style_image,
                                                                     optimizer):
    stop, callback = _stopper(0, TWO_SCALES["iterations"])   # after the first scale's last evaluation
    outcome = stylizer.run(content_image, [style_image], Settings(**TWO_SCALES, optimizer=optimizer), stop=stop,
                           callback=callback)
    assert outcome.interrupted and outcome.iterations == TWO_SCALES["iterations"]
    assert outcome.image.shape == (43, 64, 3) and (outcome.scale, outcome.scales) == (1, 2)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_stop_in_a_later_scale(stylizer, content_image, style_image, optimizer):
    stop, callback = _stopper(1, 2)
    outcome = stylizer.run(content_image, [style_image], Settings(**TWO_SCALES, optimizer=optimizer), stop=stop,
                           callback=callback)
    assert outcome.interrupted and outcome.iterations == TWO_SCALES["iterations"] + 2
    assert outcome.image.shape == (43, 64, 3) and (outcome.scale, outcome.scales) == (2, 2)


def test_ctrl_c_before_any_picture_is_exit_130_and_no_file(tmp_path):
    out = tmp_path / "out.png"
    child = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "stylize", "--size", "64", "--scales", "1",
                              "--iterations", "50", "--quiet", "-o", str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    time.sleep(0.5)   # still importing or planning: nothing evaluated yet
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130
    assert len(err.strip().splitlines()) == 1 and "interrupted" in err and "Traceback" not in err
    assert not out.exists()


def test_ctrl_c_in_the_loop_writes_the_best_picture(tmp_path):
    out, log = tmp_path / "out.png", tmp_path / "log.jsonl"
    child = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "stylize", "--size", "96", "--scales", "1",
                              "--iterations", "400", "--quiet", "-o", str(out), "--log-json", str(log)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and log.read_text().count("\n") >= 2):
        time.sleep(0.1)
    child.send_signal(signal.SIGINT)
    stdout, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert "interrupted, best image so far" in stdout and "Traceback" not in err
    with Image.open(out) as img:
        assert img.size == (96, 64)


def test_a_second_ctrl_c_aborts_at_once_with_no_picture(tmp_path):
    out, log = tmp_path / "out.png", tmp_path / "log.jsonl"
    # 384 px: an evaluation takes long enough here that waiting for it would show
    child = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "stylize", "--size", "384", "--scales", "1",
                              "--iterations", "400", "--step-engine", "ort", "--quiet", "-o", str(out), "--log-json",
                              str(log)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and log.read_text().count("\n") >= 1):
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    begin = time.time()
    stdout, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert err.strip() == "nst: error: interrupted" and "best image" not in stdout
    assert not out.exists() and not list(tmp_path.glob(".out.png*"))
    assert time.time() - begin < 5


def test_init_from_a_file(tmp_path, content_image, style_image, capsys):
    import cli
    start = tmp_path / "start.png"
    Image.fromarray(np.full((30, 50, 3), (200, 30, 30), np.uint8)).save(start)
    outputs = {}
    for init in ("content", str(start)):
        out = tmp_path / f"out-{len(outputs)}.png"
        status = cli.main(["stylize", "--size", "64", "--scales", "1", "--iterations", "3", "--init", init,
                           "--optimizer", "adam",
                           "--quiet", "-o", str(out)])
        assert status == 0, capsys.readouterr().err
        with Image.open(out) as img:
            outputs[init] = np.asarray(img.convert("RGB"), np.float64)
            settings = json.loads(img.text["nst.settings"])
    assert settings["init"] == "image" and settings["init_image"] == str(start)
    red = outputs[str(start)][..., 0].mean() - outputs[str(start)][..., 1].mean()
    assert red > 40 and red > outputs["content"][..., 0].mean() - outputs["content"][..., 1].mean() + 20
    assert cli.main(["stylize", "--init", str(tmp_path / "missing.png"), "--quiet", "-o", str(tmp_path / "x.png")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_parity_failing_exits_1(exported, weights, tmp_path, capsys):
    import cli
    from engine.tf.backend import TfFeatures
    from parity import save_reference
    reference = tmp_path / "reference.npz"
    save_reference(reference, exported.spec, TfFeatures(exported.spec, weights), sizes=((32, 48),))
    common = ["parity", "--reference", str(reference), "--model", str(exported.path), "--provider", "cpu"]
    assert cli.main(common) == 0 and "PASS" in capsys.readouterr().out
    assert cli.main(common + ["--tolerance", "1e-12"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_a_child_reports_its_own_peak_memory_not_its_parents():
    """getrusage's maximum survives fork + exec on Linux; VmHWM does not."""
    code = ("import numpy as np, subprocess, sys; big = np.ones(600_000_000 // 8); "
            "child = subprocess.run([sys.executable, '-c', 'import sys; sys.path.insert(0, sys.argv[1]); "
            "import resource; from engine.memory import peak_rss_mb; "
            "print(peak_rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)', sys.argv[1]], "
            "capture_output=True, text=True); print(child.stdout)")
    result = subprocess.run([sys.executable, "-c", code, str(ROOT)], capture_output=True, text=True)
    own, inherited = map(float, result.stdout.split())
    assert own < 200, own
    if sys.platform.startswith("linux"):
        assert inherited > 500   # what the benchmarks used to report


@pytest.mark.parametrize("engine", ["tf", "ort"])
def test_a_pixel_penalty_joins_the_objective_of_either_engine(stylizer, content_image, style_image, engine):
    """A pull toward mid-grey that outweighs the style: the picture ends nearer grey than without it, and its value is reported."""
    settings = Settings(size=48, scales=1, iterations=8, step_engine=engine)
    seen = []

    def penalty(x):
        diff = x - 0.5
        return 1e8 * float(np.sum(diff * diff)), 2e8 * diff

    free = stylizer.run(content_image, [style_image], settings)
    pulled = stylizer.run(content_image, [style_image], settings, penalty=penalty,
                          callback=lambda p: seen.append(p.parts["penalty"]))
    distance = lambda out: float(np.abs(out.image.astype(np.float32) - 127.5).mean())  # noqa: E731
    assert len(seen) == 8 and seen[-1] < seen[0]
    assert distance(pulled) < 0.5 * distance(free)
    assert pulled.parts["penalty"] in seen
