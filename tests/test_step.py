"""The ONNX Runtime step engine: one graph for every image size, against a float64 TensorFlow
reference, and stylize without TensorFlow."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.images import resize_exact, resize_longest
from engine.ort.step import OrtStep
from engine.spec import SEED_CONTENT_LAYER, SEED_STYLE_LAYERS, FeatureSpec, StepSpec
from engine.targets import Targets, gram_numpy

ROOT = Path(__file__).resolve().parent.parent
STYLE = {n: 1 / 5 for n in SEED_STYLE_LAYERS}
CONTENT = {SEED_CONTENT_LAYER: 1.0}
LOSS_WEIGHTS = (1e4, 1.0, 10.0)
# even, odd (VALID pooling drops a row and a column), and long and thin
SIZES = [(64, 96), (67, 93), (45, 131)]


def _bound(weights, content_image, style_image, shape):
    from engine.tf.backend import TfFeatures
    features = TfFeatures(FeatureSpec(weights.sha256), weights)
    content = resize_exact(content_image, shape).astype(np.float32) / 255
    style = resize_longest(style_image, max(shape)).astype(np.float32) / 255
    content_f, style_f = features(content[None]), features(style[None])
    return content, Targets(shape, {n: gram_numpy(style_f[n]) for n in STYLE}, {n: content_f[n] for n in CONTENT},
                            STYLE, CONTENT, LOSS_WEIGHTS)


def _reference(weights, dtype):
    from engine.tf.objective import TfStep
    from models.keras_vgg19 import build_trunk, tf
    trunk = build_trunk(weights, FeatureSpec(weights.sha256).layers, dtype=dtype)
    return TfStep(trunk, style_layers=STYLE, content_layers=CONTENT, jit=False,
                  dtype=tf.float64 if dtype == "float64" else tf.float32)


# the CPU kinds' Winograd rules (engine.ort.winograd.block_size), whatever this CPU is: block 3 on in
# F(4x4) (10 forward convolutions and their 10 input gradients); AVX-512: block2_conv2 too, the
# 128- and 256-channel ones in F(6x6)
VARIANTS = {"avx2": (False, 20), "avx512": (True, 22), "direct": (None, 0)}


@pytest.fixture(scope="module")
def steps(seed_step_graph):
    """One session per variant, shared by every size."""
    from engine.ort import winograd
    rule = winograd.block_size
    made = {}
    for name, (wide, _) in VARIANTS.items():
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(winograd, "block_size", lambda cin, cout, wide=wide: rule(cin, cout, wide_vectors=wide))
            made[name] = OrtStep(seed_step_graph, provider="cpu", winograd=wide is not None)
    return made


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_one_graph_matches_float64_at_every_size(steps, weights, content_image, style_image, variant):
    step = steps[variant]
    assert step.winograd == VARIANTS[variant][1]
    reference = _reference(weights, "float64")
    for shape in SIZES:
        image, bound = _bound(weights, content_image, style_image, shape)
        step.bind_targets(bound)
        reference.bind_targets(bound)
        grad_errors = []
        for seed in (1, 2, 3):
            # a point away from the content image, where every loss term has a gradient
            x = np.clip(image + np.random.default_rng(seed).normal(0, 0.1, image.shape), 0, 1).astype(np.float32)[None]
            loss, grad, parts = step(x)
            ref_loss, ref_grad, ref_parts = reference(x.astype(np.float64))
            assert grad.shape == x.shape and grad.dtype == np.float32
            assert abs(loss - ref_loss) / ref_loss < 1e-5, shape
            for name in ("content", "style", "tv"):
                assert abs(parts[name] - ref_parts[name]) <= 1e-5 * abs(ref_parts[name]) + 1e-12, (shape, name)
            grad_errors.append(np.linalg.norm(grad - ref_grad) / np.linalg.norm(ref_grad))
        # the median: a ReLU input that float32 rounding moves across zero puts one image ~1e-3 off
        # at random (TensorFlow's own float32 step too); a wrong graph puts every image far off
        assert np.median(grad_errors) < 1e-3, (shape, grad_errors)


def test_export_was_checked_at_three_sizes_with_odd_ones(seed_step_graph):
    from engine.ort.backend import read_metadata
    checks = json.loads(read_metadata(seed_step_graph)["nst.check_vs_tensorflow_float64"])
    sizes = {c["size"] for c in checks}
    assert len(sizes) >= 3 and any(int(s.split("x")[0]) % 2 and int(s.split("x")[1]) % 2 for s in sizes)
    assert {c["variant"] for c in checks} == {"exported", "winograd"} and min(c["images"] for c in checks) == 3
    assert max(c["loss_rel"] for c in checks) < 1e-5 and max(c["grad_l2_rel"] for c in checks) < 1e-3


def test_ort_step_lowers_the_cost(steps, weights, content_image, style_image):
    from engine.optimize import adam
    image, bound = _bound(weights, content_image, style_image, (67, 93))
    step = steps["avx512"]   # the widest rewrite: F(6x6) and F(4x4)
    step.bind_targets(bound)
    first, _, _ = step(image[None])
    result = adam(step, image[None], 8, lr=0.02)
    assert result.loss < 0.7 * first
    # the seed's own cost (TensorFlow, float32) agrees that the image got better
    reference = _reference(weights, "float32")
    reference.bind_targets(bound)
    assert reference(result.image)[0] < 0.7 * reference(image[None])[0]


def test_step_graph_is_reused_and_refuses_other_specs(store, seed_step_graph, weights):
    from engine.ort.backend import BackendError
    spec = StepSpec(FeatureSpec(weights.sha256), SEED_STYLE_LAYERS, (SEED_CONTENT_LAYER,))
    modified = seed_step_graph.stat().st_mtime_ns
    assert store.step_graph(spec) == seed_step_graph and seed_step_graph.stat().st_mtime_ns == modified
    layers = SEED_STYLE_LAYERS[:2] + (SEED_CONTENT_LAYER,)
    other = StepSpec(FeatureSpec(weights.sha256, layers), SEED_STYLE_LAYERS[:2], (SEED_CONTENT_LAYER,))
    with pytest.raises(BackendError, match="not the"):
        OrtStep(seed_step_graph, spec=other, provider="cpu")


def test_stale_cached_file_is_replaced(weights, tmp_path, seed_step_graph):
    """A file of another version where the store looks: exported again, not used."""
    from engine.store import ArtifactStore
    spec = StepSpec(FeatureSpec(weights.sha256), SEED_STYLE_LAYERS, (SEED_CONTENT_LAYER,))
    store = ArtifactStore(tmp_path, exports=False)
    store.step_path(spec).write_bytes(b"an older or damaged file")
    from engine.store import MissingArtifact
    with pytest.raises(MissingArtifact, match="unreadable, unlabelled or of an older version"):
        store.step_graph(spec)
    # a per-size graph of the earlier version is removed once the graph of any size is there
    legacy = tmp_path / "step-0123456789ab-512x341.onnx"
    legacy.write_bytes(b"old")
    store.step_path(spec).write_bytes(seed_step_graph.read_bytes())
    assert store.step_graph(spec) == store.step_path(spec) and not legacy.exists()


def test_max_pooling_step_is_refused(weights, tmp_path):
    from exporter.step import StepExportError, export_step
    spec = StepSpec(FeatureSpec(weights.sha256, pooling="max"), SEED_STYLE_LAYERS, (SEED_CONTENT_LAYER,))
    with pytest.raises(StepExportError, match="average pooling only"):
        export_step(spec, weights, tmp_path / "step.onnx", log=lambda *_: None)


def _blocked_environment(tmp_path):
    """Every Python process started with this environment fails to import TensorFlow (and scipy:
    the GPU machines have onnxruntime, numpy and Pillow, and the ONNX side needs no more)."""
    blocker = tmp_path / "block"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(
        "import sys\nfor name in ('tensorflow', 'keras', 'tf2onnx', 'tf_keras', 'scipy'):\n    sys.modules[name] = None\n")
    return {**os.environ, "PYTHONPATH": str(blocker)}


CHECK_NO_TENSORFLOW = """
import sys
sys.path.insert(0, sys.argv[1])
import cli
status = cli.main(sys.argv[2:])
assert not any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules if sys.modules[m]), "TensorFlow"
sys.exit(status)
"""


def test_three_aspect_ratios_with_one_graph_and_no_tensorflow(tmp_path, store, seed_step_graph, content_image):
    """A machine with onnxruntime and the exported files only: any image size runs, with the
    default step engine (auto: the exported step, on a CPU too)."""
    args = ["stylize", "--size", "80", "--scales", "2", "--min-size", "48", "--iterations", "3",
            "--provider", "cpu", "--quiet"]
    prepared = subprocess.run([sys.executable, str(ROOT / "cli.py"), *args, "--export-only"],
                              capture_output=True, text=True, cwd=ROOT)
    assert prepared.returncode == 0, prepared.stderr
    assert prepared.stdout.count(".onnx") == 2   # the feature extractor and the one step graph
    graphs = sorted(store.root.glob("step-*.onnx"))
    env = _blocked_environment(tmp_path)
    h, w = content_image.shape[:2]
    for name, crop, expected in (("wide", content_image, (80, 53)),
                                 ("tall", content_image[:, : h * 2 // 3], (53, 80)),
                                 ("square", content_image[:, :h], (80, 80))):
        source = tmp_path / f"{name}.png"
        Image.fromarray(np.ascontiguousarray(crop)).save(source)
        out = tmp_path / f"{name}-out.png"
        run = subprocess.run([sys.executable, "-c", CHECK_NO_TENSORFLOW, str(ROOT), *args, "--content", str(source),
                              "-o", str(out)], capture_output=True, text=True, cwd=ROOT, env=env)
        assert run.returncode == 0, run.stderr
        assert "steps by ONNX Runtime" in run.stdout and "targets by ONNX Runtime" in run.stdout
        with Image.open(out) as img:
            assert img.size == expected, name
    assert sorted(store.root.glob("step-*.onnx")) == graphs   # no new export


def _weights_only_cache(tmp_path) -> Path:
    """A cache folder with the weights but no exported model."""
    from models.weights import cache_dir
    cache = tmp_path / "cache"
    cache.mkdir()
    for weights_file in cache_dir().glob("vgg19-notop-*.npz"):
        (cache / weights_file.name).symlink_to(weights_file)
    return cache


@pytest.mark.parametrize("engine", ["ort", "auto"])
def test_missing_step_graph_without_tensorflow_is_one_clear_line(tmp_path, weights, engine):
    env = {**_blocked_environment(tmp_path), "NST_CACHE_DIR": str(_weights_only_cache(tmp_path))}
    args = ["stylize", "--size", "41", "--scales", "1", "--iterations", "2", "--step-engine", engine,
            "--provider", "cpu", "--quiet", "-o", str(tmp_path / "out.png")]
    run = subprocess.run([sys.executable, "-c", CHECK_NO_TENSORFLOW, str(ROOT), *args],
                         capture_output=True, text=True, cwd=ROOT, env=env)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs TensorFlow" in lines[0] and "--export-only" in lines[0], run.stderr
    assert not (tmp_path / "out.png").exists()


def test_a_first_run_says_it_exports_and_how_long_then_runs_the_onnx_step(tmp_path, weights):
    """The default engine on a fresh machine with TensorFlow: the step graph is exported once,
    announced before it starts (with what it takes) and timed after; the run then uses it. Two
    shallow layers, so that the export takes seconds, not the default graph's minute."""
    env = {**os.environ, "NST_CACHE_DIR": str(_weights_only_cache(tmp_path))}
    out = tmp_path / "out.png"
    run = subprocess.run([sys.executable, str(ROOT / "cli.py"), "stylize", "--size", "40", "--scales", "1",
                          "--iterations", "2", "--style-layers", "block1_conv1", "--content-layers", "block2_conv1",
                          "--provider", "cpu", "-o", str(out)], capture_output=True, text=True, cwd=ROOT, env=env)
    assert run.returncode == 0, run.stderr
    announced = next(line for line in run.stderr.splitlines() if line.startswith("exporting the step graph once"))
    assert "about" in announced and " s" in announced
    assert any(line.startswith("exported the step graph in ") for line in run.stderr.splitlines()), run.stderr
    assert run.stderr.index(announced) < run.stderr.index("exported the step graph in ")
    assert "steps by ONNX Runtime" in run.stdout and out.exists()


def test_both_engines_make_the_same_picture(content_image, style_image):
    from engine.settings import Settings
    from engine.stylizer import stylize
    pictures = {}
    for engine in ("tf", "ort"):
        settings = Settings(size=64, scales=1, iterations=6, optimizer="adam", step_engine=engine)
        pictures[engine] = stylize(content_image, [style_image], settings, provider="cpu")
    tf_out, ort_out = pictures["tf"], pictures["ort"]
    assert "ONNX Runtime" in ort_out.step and "TensorFlow" in tf_out.step
    assert abs(ort_out.loss - tf_out.loss) / tf_out.loss < 1e-3
    diff = np.abs(ort_out.image.astype(int) - tf_out.image.astype(int))
    assert diff.mean() < 0.5 and diff.max() <= 2   # uint8 levels: rounding, nothing more


def test_ort_step_with_max_pooling_is_a_usage_error(tmp_path, capsys):
    import cli
    out = tmp_path / "out.png"
    status = cli.main(["stylize", "--step-engine", "ort", "--pooling", "max", "--size", "32", "--scales", "1",
                       "-o", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "--step-engine ort supports average pooling only" in err[0]
    assert not out.exists()


@pytest.mark.parametrize("wide", [False, True])
def test_winograd_shares_kernels_between_directions(seed_step_graph, wide):
    import onnx
    from engine.ort.winograd import block_size, rewrite
    _, external, count = rewrite(onnx.load(str(seed_step_graph)), choose=lambda cin, cout: block_size(cin, cout, wide))
    # every input-gradient convolution found its forward twin: one transformed copy per layer
    assert (count, len(external)) == ((22, 11) if wide else (20, 10))


@pytest.mark.parametrize("winograd", [True, False])
def test_unreadable_step_graph_is_one_clear_error(tmp_path, winograd):
    from engine.ort.backend import BackendError
    bad = tmp_path / "step.onnx"
    bad.write_bytes(b"not an ONNX model")
    with pytest.raises(BackendError, match="step.onnx: ") as error:
        OrtStep(bad, provider="cpu", winograd=winograd)
    assert "\n" not in str(error.value)
