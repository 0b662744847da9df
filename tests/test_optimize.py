"""The projected L-BFGS against scipy's L-BFGS-B, on a problem with a known answer and on the real one."""
import numpy as np
import pytest

from engine.optimize import adam, lbfgs, scipy_lbfgs


def _box_quadratic(n=3000, seed=0):
    """A badly scaled quadratic whose minimum lies partly outside [0, 1]: the answer is known."""
    rng = np.random.default_rng(seed)
    centre = rng.uniform(-0.5, 1.5, n)
    scale = np.exp(rng.uniform(-3, 3, n))

    def f(x):
        d = x.astype(np.float64).ravel() - centre
        return float(np.sum(scale * d * d)), (2 * scale * d).astype(np.float32).reshape(x.shape), {}
    return f, np.clip(centre, 0, 1)


@pytest.mark.parametrize("optimizer", [lbfgs, scipy_lbfgs])
def test_reaches_the_constrained_minimum(optimizer):
    f, answer = _box_quadratic()
    result = optimizer(f, np.full((1, answer.size), 0.5, np.float32), 150)
    assert np.abs(result.image.ravel() - answer).max() < 1e-3
    assert result.image.min() >= 0 and result.image.max() <= 1


def test_as_good_as_scipy_on_the_real_objective(seed_step_graph, weights, content_image, style_image):
    from engine.images import as_float, resize_exact, resize_longest
    from engine.ort.backend import OrtFeatures
    from engine.ort.step import OrtStep
    from engine.spec import SEED_CONTENT_LAYER, SEED_STYLE_LAYERS, FeatureSpec
    from engine.store import ArtifactStore
    from engine.targets import Targets, compute_targets
    spec = FeatureSpec(weights.sha256)
    content = as_float(resize_exact(content_image, (64, 96)))
    style = as_float(resize_longest(style_image, 96))
    style_layers, content_layers = {n: 0.2 for n in SEED_STYLE_LAYERS}, {SEED_CONTENT_LAYER: 1.0}
    contents, grams = compute_targets(OrtFeatures(ArtifactStore().feature_model(spec), provider="cpu"), content,
                                      [style], [1.0], style_layers, content_layers)
    step = OrtStep(seed_step_graph, provider="cpu")
    step.bind_targets(Targets((64, 96), grams, contents, style_layers, content_layers, (1e4, 1.0, 10.0)))
    start = step(content[None])[0]
    results = {}
    for optimizer in (lbfgs, scipy_lbfgs):
        trials = []
        result = optimizer(lambda x: (lambda r: (trials.append(r[0]), r)[1])(step(x)), content[None], 30)
        results[optimizer.__name__] = result.loss
        if optimizer is lbfgs:   # no wasted evaluation on a wild first trial (scipy's was ~400x the start)
            assert max(trials) <= start
    assert results["lbfgs"] < 0.2 * start
    assert results["lbfgs"] < 1.15 * results["scipy_lbfgs"]


def test_a_step_engine_gradient_is_not_overwritten_by_the_next_call(seed_step_graph, weights):
    """The optimizer keeps the previous gradient; an output buffer reused by ONNX Runtime would
    silently turn every curvature pair to zero (it did: L-BFGS degraded to gradient descent)."""
    from engine.ort.step import OrtStep
    from engine.spec import SEED_CONTENT_LAYER, SEED_STYLE_LAYERS
    from engine.targets import Targets
    rng = np.random.default_rng(0)
    step = OrtStep(seed_step_graph, provider="cpu", winograd=False)
    step.bind_targets(Targets((32, 48), {n: np.eye(c, dtype=np.float32) for n, c in
                                         zip(SEED_STYLE_LAYERS, (64, 128, 256, 512, 512))},
                              {SEED_CONTENT_LAYER: np.zeros((1, 2, 3, 512), np.float32)},
                              {n: 0.2 for n in SEED_STYLE_LAYERS}, {SEED_CONTENT_LAYER: 1.0}, (1.0, 1.0, 1.0)))
    a, b = (rng.random((1, 32, 48, 3), dtype=np.float32) for _ in range(2))
    _, grad_a, _ = step(a)
    kept = grad_a.copy()
    _, grad_b, _ = step(b)
    np.testing.assert_array_equal(grad_a, kept)
    assert not np.array_equal(grad_a, grad_b)


def test_adam_keeps_pixels_in_the_box():
    f, _ = _box_quadratic(200, seed=1)
    result = adam(f, np.full((1, 200), 0.5, np.float32), 50, lr=0.1)
    assert result.image.min() >= 0 and result.image.max() <= 1 and result.iterations == 50


def test_a_plateau_ends_a_run_early_and_only_when_the_loss_stalls():
    from engine.schedule import Plateau
    rule = Plateau(0.05, window=3)
    assert not any(rule(v) for v in (100.0, 50.0, 25.0, 12.0))        # halving: still paying
    assert [rule(v) for v in (11.9, 11.8, 11.7)] == [False, False, True]   # < 5% over 3 evaluations
    f, _ = _box_quadratic()
    result = lbfgs(f, np.full((1, 3000), 0.5, np.float32), 150, enough=Plateau(0.5, window=5))
    assert 6 <= result.iterations < 150
