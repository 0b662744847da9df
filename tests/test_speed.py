"""Issue 20: the schedule's stopping rule, the distribution style losses (w2, sliced) on both step
engines, and bfloat16 where the CPU has it."""
import numpy as np
import pytest

from engine.settings import Settings, SettingsError
from engine.stylizer import Stylizer

SMALL = dict(size=64, scales=1, iterations=6)


@pytest.fixture(scope="module")
def stylizer(weights):
    return Stylizer(weights, provider="cpu")


def test_a_coarse_scale_that_stops_paying_gives_its_evaluations_to_the_last(stylizer, content_image, style_image):
    seen = []
    settings = Settings(size=64, scales=2, min_size=48, scale_iterations=(20, 5), scale_stop=10.0)
    outcome = stylizer.run(content_image, [style_image], settings,
                           callback=lambda p: seen.append((p.scale, p.iteration, p.iterations)))
    first = [s for s in seen if s[0] == 0]
    last = [s for s in seen if s[0] == 1]
    # a relative fall under 1000% over 10 evaluations: the first scale ends after its 11th
    assert len(first) == 11 and len(last) == 5 + 9 == last[-1][2] and outcome.iterations == 25
    with pytest.raises(SettingsError):
        Settings(scale_stop=-0.1)


def test_style_statistics_are_what_each_loss_compares():
    from engine.style_targets import _quantiles, blend_statistics, layer_shape, projections, style_statistics
    rng = np.random.default_rng(0)
    features = {"block1_conv1": rng.random((1, 12, 10, 64), dtype=np.float32) * 3}
    w2 = blend_statistics("w2", [style_statistics("w2", features, ["block1_conv1"])], [1.0], ["block1_conv1"])
    flat = features["block1_conv1"].reshape(-1, 64).astype(np.float64)
    root = w2["block1_conv1"]["cov_sqrt"][0].astype(np.float64)
    np.testing.assert_allclose(root @ root, np.cov(flat.T, bias=True), atol=2e-4)
    np.testing.assert_allclose(w2["block1_conv1"]["mean"].ravel(), flat.mean(0), rtol=1e-5)
    p = projections("block1_conv1", 64, seed=3)
    np.testing.assert_allclose(p.T @ p, np.eye(64), atol=1e-5)
    assert not np.allclose(p, projections("block1_conv1", 64, seed=4))
    sliced = style_statistics("sliced", features, ["block1_conv1"], shape=(16, 20))["block1_conv1"]
    assert sliced["sorted"].shape == (64, 16 * 20) == (64, np.prod(layer_shape((16, 20), "block1_conv1")))
    assert np.all(np.diff(sliced["sorted"], axis=1) <= 1e-6)   # largest first, as top_k gives them
    np.testing.assert_allclose(_quantiles(np.array([[3.0, 2.0, 1.0, 0.0]]), 2), [[2.5, 0.5]])


@pytest.mark.parametrize("loss", ["w2", "sliced"])
def test_distribution_losses_lower_themselves_on_the_tensorflow_step(stylizer, content_image, style_image, loss):
    seen = []
    settings = Settings(**SMALL, step_engine="tf", jit=False, style_loss=loss)
    outcome = stylizer.run(content_image, [style_image], settings, callback=lambda p: seen.append(p.loss))
    assert outcome.loss < 0.5 * seen[0] and np.isfinite(seen).all()


@pytest.mark.parametrize("loss", ["w2", "sliced"])
def test_distribution_losses_export_and_match_tensorflow(weights, tmp_path, content_image, style_image, loss):
    """Two shallow layers, so that the export (checked against float64 TensorFlow at three sizes by
    the exporter itself) takes seconds; then the ONNX step and the TensorFlow step agree on real
    targets at a size the check did not see."""
    from engine.images import resize_exact, resize_longest
    from engine.ort.step import OrtStep
    from engine.spec import FeatureSpec, StepSpec
    from engine.style_targets import blend_statistics, style_statistics
    from engine.targets import Targets
    from engine.tf.backend import TfFeatures
    from engine.tf.objective import TfStep
    from exporter.step import export_step
    from models.keras_vgg19 import build_trunk
    layers = ("block1_conv1", "block2_conv1")
    spec = StepSpec(FeatureSpec(weights.sha256, layers), ("block1_conv1",), ("block2_conv1",), style_loss=loss)
    result = export_step(spec, weights, tmp_path / "step.onnx", log=lambda *_: None)
    assert result.worst[1] < 1e-3
    features = TfFeatures(spec.features, weights)
    shape = (40, 57)
    content = resize_exact(content_image, shape).astype(np.float32) / 255
    style = resize_longest(style_image, 57).astype(np.float32) / 255
    targets = blend_statistics(loss, [style_statistics(loss, features(style[None]), ["block1_conv1"], shape=shape)],
                               [1.0], ["block1_conv1"])
    bound = Targets(shape, targets, {"block2_conv1": features(content[None])["block2_conv1"]},
                    {"block1_conv1": 1.0}, {"block2_conv1": 1.0}, (1e4, 1.0, 10.0))
    steps = [OrtStep(result.path, spec=spec, provider="cpu"),
             TfStep(build_trunk(weights, layers), style_layers=("block1_conv1",), content_layers=("block2_conv1",),
                    jit=False, style_loss=loss)]
    image = np.clip(content + np.random.default_rng(1).normal(0, 0.1, content.shape), 0, 1)[None].astype(np.float32)
    (loss_ort, grad_ort, _), (loss_tf, grad_tf, _) = [(s.bind_targets(bound), s(image))[1] for s in steps]
    assert abs(loss_ort - loss_tf) < 1e-4 * abs(loss_tf)
    assert np.linalg.norm(grad_ort - grad_tf) < 1e-3 * np.linalg.norm(grad_tf)


def test_distribution_losses_refuse_masks_and_tiles(stylizer, content_image, style_image):
    white = np.full(content_image.shape[:2], 255, np.uint8)
    with pytest.raises(SettingsError, match="masks need the gram"):
        stylizer.run(content_image, [style_image], Settings(**SMALL, style_loss="w2"), masks=[white])
    with pytest.raises(SettingsError, match="not in tiles"):
        stylizer.plan(Settings(size=256, scales=1, tile=128, style_loss="sliced"), content_image.shape)


def test_bf16_is_the_tensorflow_steps_and_needs_the_instructions(stylizer, content_image, style_image):
    from engine.cpu import has_bf16
    with pytest.raises(SettingsError, match="ort computes in float32"):
        Settings(step_engine="ort", precision="bf16")
    settings = Settings(**SMALL, precision="bf16")
    if not has_bf16():
        with pytest.raises(SettingsError, match="bfloat16 instructions"):
            stylizer.plan(settings, content_image.shape)
        return
    plan = stylizer.plan(settings, content_image.shape)
    assert plan.step_engine == "tf"
    seen = []
    outcome = stylizer.run(content_image, [style_image], settings, callback=lambda p: seen.append(p.loss))
    assert outcome.loss < 0.5 * seen[0]
