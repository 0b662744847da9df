"""The ONNX Runtime step engine against a float64 TensorFlow reference, and stylize without TensorFlow."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.images import resize_longest
from engine.ort_step import OrtStep
from engine.spec import SEED_CONTENT_LAYER, SEED_STYLE_LAYERS, FeatureSpec, StepSpec
from engine.targets import gram_numpy

ROOT = Path(__file__).resolve().parent.parent
STYLE = {n: 1 / 5 for n in SEED_STYLE_LAYERS}
CONTENT = {SEED_CONTENT_LAYER: 1.0}
LOSS_WEIGHTS = {"content_weight": 1e4, "style_weight": 1.0, "tv_weight": 10.0}


def _targets(weights, content_image, style_image, shape):
    from engine.tf_backend import TfFeatures
    features = TfFeatures(FeatureSpec(weights.sha256), weights)
    content = np.asarray(Image.fromarray(content_image).resize(shape[::-1], Image.LANCZOS), np.float32) / 255
    style = resize_longest(style_image, max(shape)).astype(np.float32) / 255
    content_f, style_f = features(content[None]), features(style[None])
    return content, {n: content_f[n] for n in CONTENT}, {n: gram_numpy(style_f[n]) for n in STYLE}


def _reference(weights, contents, grams, shape, dtype):
    from models.keras_vgg19 import build_trunk, tf
    from engine.objective import TfObjective
    trunk = build_trunk(weights, FeatureSpec(weights.sha256).layers, dtype=dtype)
    return TfObjective(trunk, style_layers=STYLE, content_layers=CONTENT, gram_targets=grams,
                       content_targets=contents, shape=(1, *shape, 3), jit=False,
                       dtype=tf.float64 if dtype == "float64" else tf.float32, **LOSS_WEIGHTS)


@pytest.fixture(scope="module")
def step_graphs(weights):
    """Step graphs at an even and an odd size (odd: VALID pooling drops a row and a column)."""
    from exporter.step import export_step
    spec = FeatureSpec(weights.sha256)
    graphs = {}
    for shape in ((64, 96), (67, 93)):
        step_spec = StepSpec(spec, SEED_STYLE_LAYERS, (SEED_CONTENT_LAYER,), *shape)
        graphs[shape] = export_step(step_spec, weights, log=lambda *_: None)
    return graphs


@pytest.mark.parametrize("shape,winograd", [((64, 96), True), ((67, 93), True), ((67, 93), False)])
def test_ort_step_matches_float64_reference(step_graphs, weights, content_image, style_image, shape, winograd):
    image, contents, grams = _targets(weights, content_image, style_image, shape)
    # a point away from the content image, where every loss term has a gradient
    x = np.clip(image + np.random.default_rng(1).normal(0, 0.1, image.shape), 0, 1).astype(np.float32)[None]
    step = OrtStep(step_graphs[shape].path, provider="cpu", winograd=winograd)
    # block 3 on: 10 forward convolutions and their 10 input gradients
    assert step.winograd == (20 if winograd else 0)
    step.bind_targets(gram_targets=grams, content_targets=contents, style_layers=STYLE, content_layers=CONTENT,
                      **LOSS_WEIGHTS)
    loss, grad, parts = step(x)
    ref_loss, ref_grad, ref_parts = _reference(weights, contents, grams, shape, "float64")(x.astype(np.float64))
    assert grad.shape == x.shape and grad.dtype == np.float32
    assert abs(loss - ref_loss) / ref_loss < 1e-5
    for name in ("content", "style", "tv"):
        assert abs(parts[name] - ref_parts[name]) <= 1e-5 * abs(ref_parts[name]) + 1e-12, name
    assert np.linalg.norm(grad - ref_grad) / np.linalg.norm(ref_grad) < 1e-3


def test_ort_step_lowers_the_cost(step_graphs, weights, content_image, style_image):
    from engine.optimize import adam
    shape = (67, 93)
    image, contents, grams = _targets(weights, content_image, style_image, shape)
    step = OrtStep(step_graphs[shape].path, provider="cpu")
    step.bind_targets(gram_targets=grams, content_targets=contents, style_layers=STYLE, content_layers=CONTENT,
                      **LOSS_WEIGHTS)
    first, _, _ = step(image[None])
    result = adam(step, image[None], 8, lr=0.02)
    assert result.loss < 0.7 * first
    # the seed's own cost (TensorFlow, float32) agrees that the image got better
    reference = _reference(weights, contents, grams, shape, "float32")
    assert reference(result.image)[0] < 0.7 * reference(image[None])[0]


def test_step_graph_is_reused_and_refuses_other_sizes(step_graphs, weights):
    from engine.ort_backend import BackendError
    from exporter.step import export_step
    graph = step_graphs[(64, 96)]
    again = export_step(graph.spec, weights, log=lambda *_: None)
    assert again.reused and again.path == graph.path
    other = StepSpec(graph.spec.features, SEED_STYLE_LAYERS, (SEED_CONTENT_LAYER,), 65, 96)
    with pytest.raises(BackendError, match="not the"):
        OrtStep(graph.path, spec=other, provider="cpu")


def test_max_pooling_step_is_refused(weights):
    from exporter.step import StepExportError, export_step
    spec = StepSpec(FeatureSpec(weights.sha256, pooling="max"), SEED_STYLE_LAYERS, (SEED_CONTENT_LAYER,), 32, 32)
    with pytest.raises(StepExportError, match="average pooling only"):
        export_step(spec, weights, log=lambda *_: None)


BLOCK_TENSORFLOW = """
import sys
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf2onnx", "tf_keras"):
            raise ImportError(f"{name} is blocked for this test")
sys.meta_path.insert(0, Blocked())
sys.path.insert(0, sys.argv[1])
import cli
status = cli.main(sys.argv[2:])
assert not any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules), "TensorFlow was imported"
sys.exit(status)
"""


def test_stylize_with_ort_step_runs_without_tensorflow(tmp_path):
    args = ["stylize", "--size", "80", "--scales", "2", "--min-size", "48", "--iterations", "5",
            "--step-engine", "ort", "--provider", "cpu", "--quiet"]
    prepared = subprocess.run([sys.executable, str(ROOT / "cli.py"), *args, "--export-only"],
                              capture_output=True, text=True, cwd=ROOT)
    assert prepared.returncode == 0, prepared.stderr
    assert prepared.stdout.count(".onnx") == 3   # the feature extractor and a step graph per scale
    out = tmp_path / "out.png"
    run = subprocess.run([sys.executable, "-c", BLOCK_TENSORFLOW, str(ROOT), *args, "-o", str(out)],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert "steps by ONNX Runtime" in run.stdout and "targets by ONNX Runtime" in run.stdout
    with Image.open(out) as img:
        assert img.size == (80, 53)


def test_missing_step_graph_without_tensorflow_is_one_clear_line(tmp_path):
    # a size no other test exports, so the graph cannot be in the cache
    args = ["stylize", "--size", "41", "--scales", "1", "--iterations", "2", "--step-engine", "ort",
            "--provider", "cpu", "--quiet", "-o", str(tmp_path / "out.png")]
    run = subprocess.run([sys.executable, "-c", BLOCK_TENSORFLOW, str(ROOT), *args],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs TensorFlow" in lines[0] and "--export-only" in lines[0], run.stderr
    assert not (tmp_path / "out.png").exists()


def test_both_engines_make_the_same_picture(content_image, style_image):
    from engine.stylize import Settings, stylize
    pictures = {}
    for engine in ("tf", "ort"):
        settings = Settings(size=64, scales=1, iterations=6, optimizer="adam", step_engine=engine, provider="cpu")
        pictures[engine] = stylize(content_image, [style_image], settings, log=lambda *_: None)
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
    assert status == 2 and len(err) == 1 and "--pooling avg only" in err[0]
    assert not out.exists()


def test_winograd_shares_kernels_between_directions(step_graphs):
    import onnx
    from engine.winograd import rewrite
    _, external, count = rewrite(onnx.load(str(step_graphs[(64, 96)].path)))
    # every input-gradient convolution found its forward twin: one transformed copy per layer
    assert count == 20 and len(external) == 10


@pytest.mark.parametrize("winograd", [True, False])
def test_unreadable_step_graph_is_one_clear_error(tmp_path, winograd):
    from engine.ort_backend import BackendError
    bad = tmp_path / "step.onnx"
    bad.write_bytes(b"not an ONNX model")
    with pytest.raises(BackendError, match="step.onnx: ") as error:
        OrtStep(bad, provider="cpu", winograd=winograd)
    assert "\n" not in str(error.value)
