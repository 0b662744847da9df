import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cli
from engine.images import load_image
from engine.settings import Settings
from engine.stylizer import stylize

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "examples" / "content" / "chelsea.jpg"
STARRY = ROOT / "examples" / "style" / "starry_night.jpg"
WAVE = ROOT / "examples" / "style" / "the_wave.jpg"
FAST = ["--size", "64", "--scales", "1", "--iterations", "6", "--quiet"]


def run(argv, capsys):
    status = cli.main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_stylize_end_to_end(tmp_path, capsys):
    out = tmp_path / "out.png"
    log = tmp_path / "log.jsonl"
    status, stdout, err = run(["stylize", "--content", str(CONTENT), "--style", str(STARRY), "-o", str(out),
                               "--size", "96", "--scales", "2", "--min-size", "48", "--iterations", "8",
                               "--log-json", str(log), "--save-every", "4", "--quiet"], capsys)
    assert status == 0, err
    assert "wrote" in stdout and str(out) in stdout
    with Image.open(out) as img:
        assert img.size == (96, 64)
        settings = json.loads(img.text["nst.settings"])
        assert settings["size"] == 96 and settings["content"] == str(CONTENT)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == 16 and {r["scale"] for r in records} == {0, 1}
    first_scale = [r["loss"] for r in records if r["scale"] == 0]
    assert min(first_scale) < 0.5 * first_scale[0]    # the loss falls
    assert {"content", "style", "tv", "elapsed_s"} <= set(records[0])
    assert len(list(tmp_path.glob("out_s*_*.png"))) == 4


def test_same_seed_same_image(content_image, style_image):
    settings = Settings(size=64, scales=1, iterations=5, init="noise", seed=7, targets="tf")
    a = stylize(content_image, [style_image], settings).image
    b = stylize(content_image, [style_image], settings).image
    c = stylize(content_image, [style_image], settings.replace(seed=8)).image
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c).mean() > 1


def _chroma(rgb):
    ycbcr = np.asarray(Image.fromarray(rgb).convert("YCbCr"), np.float64)
    return ycbcr[..., 1:]


def test_preserve_colors_keeps_content_chroma(content_image, style_image):
    from engine.images import resize_longest
    base = Settings(size=80, scales=1, iterations=8)
    plain = stylize(content_image, [style_image], base).image
    kept = stylize(content_image, [style_image], base.replace(preserve_colors=True)).image
    reference = _chroma(resize_longest(content_image, 80))
    assert np.abs(_chroma(kept) - reference).mean() < 2
    assert np.abs(_chroma(plain) - reference).mean() > 3 * np.abs(_chroma(kept) - reference).mean()


def test_style_blend_weights(content_image):
    starry, wave = load_image(STARRY), load_image(WAVE)
    base = dict(size=64, scales=1, iterations=5)
    only_starry = stylize(content_image, [starry], Settings(**base))
    blend_10 = stylize(content_image, [starry, wave], Settings(**base, style_blend=(1.0, 0.0)))
    blend_01 = stylize(content_image, [starry, wave], Settings(**base, style_blend=(0.0, 1.0)))
    even = stylize(content_image, [starry, wave], Settings(**base))
    np.testing.assert_array_equal(only_starry.image, blend_10.image)
    assert np.abs(blend_10.image.astype(int) - blend_01.image).mean() > 2
    assert not np.array_equal(even.image, blend_10.image) and not np.array_equal(even.image, blend_01.image)


def test_adam_and_lbfgs_both_lower_the_cost(content_image, style_image):
    for optimizer in ("adam", "lbfgs"):
        losses = []
        stylize(content_image, [style_image], Settings(size=64, scales=1, iterations=8, optimizer=optimizer),
                callback=lambda p: losses.append(p.loss))
        assert min(losses) < losses[0]


def _bomb(path):
    Image.new("1", (12000, 12000)).save(path)
    return path


@pytest.mark.parametrize("args, status, words", [
    (["--content", "missing.jpg"], 1, "no such file"),
    (["--style", "pyproject.toml"], 1, "not an image"),
    (["--content", "BOMB"], 1, "too large"),
    (["--size", "0"], 2, "--size"),
    (["--iterations", "0"], 2, "--iterations"),
    (["--style-weight", "-1"], 2, "non-negative"),
    (["--tv-weight", "-0.5"], 2, "non-negative"),
    (["--style-weights", "1,2"], 2, "--style-weights gives 2"),
    (["--style-layers", "block9_conv9"], 2, "unknown VGG19 layer"),
    (["--content-layers", "conv5"], 2, "unknown VGG19 layer"),
    (["-o", "NOWHERE/out.png"], 1, "does not exist"),
    (["-o", "out.gif"], 1, "unsupported output type"),
])
def test_bad_input_one_line_no_traceback_no_output(tmp_path, capsys, monkeypatch, args, status, words):
    monkeypatch.chdir(ROOT)
    args = [str(_bomb(tmp_path / "bomb.png")) if a == "BOMB" else a for a in args]
    args = [str(tmp_path / "nowhere" / "out.png") if a == "NOWHERE/out.png" else a for a in args]
    output = tmp_path / "out.png" if "-o" not in args else None
    argv = ["stylize", *FAST, *args] + (["-o", str(output)] if output else [])
    if "out.gif" in args:
        argv[argv.index("out.gif")] = str(tmp_path / "out.gif")
    code, stdout, err = run(argv, capsys)
    assert code == status
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in err
    assert not [p for p in tmp_path.iterdir() if p.name != "bomb.png"]


def test_argparse_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["stylize", "--optimizer", "sgd"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_help_and_version(capsys):
    for command in ("export", "stylize", "parity", "bench"):
        with pytest.raises(SystemExit) as info:
            cli.main([command, "--help"])
        assert info.value.code == 0
        assert "usage: nst " + command in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.startswith("nst ")


def test_init_noise_mixes_the_seed_s_noise_into_the_start(content_image, style_image, tmp_path, capsys):
    base = Settings(size=64, scales=1, iterations=3, targets="tf", step_engine="tf")
    starts = {}
    for name, settings in (("content", base), ("mixed", base.replace(init_noise=0.4, seed=1)),
                           ("other seed", base.replace(init_noise=0.4, seed=2)),
                           ("all noise", base.replace(init_noise=1.0, seed=5)),
                           ("noise", base.replace(init="noise", seed=5))):
        seen = []
        stylize(content_image, [style_image], settings, callback=lambda p: seen.append(p.image.copy()))
        starts[name] = seen[0]
    assert not np.array_equal(starts["mixed"], starts["content"])
    assert not np.array_equal(starts["mixed"], starts["other seed"])   # each seed its own picture
    np.testing.assert_array_equal(starts["all noise"], starts["noise"])
    # one declaration: the CLI's flag, the API's field and the page's control follow from it
    assert run(["stylize", *FAST, "--init-noise", "1.5", "-o", str(tmp_path / "x.png")], capsys)[2].strip() == \
        "nst: error: --init-noise must be a non-negative number up to 1, not 1.5"
