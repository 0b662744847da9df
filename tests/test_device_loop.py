"""The GPU path's pieces, run here on the CPU provider: the step graph made for one size, the step
with its image and gradient left on the device, and L-BFGS kept beside it (engine.ort.device_lbfgs)."""
from collections import deque

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from bench.steps import step_inputs
from engine.optimize import _two_loop, lbfgs, sdot
from engine.ort.device_lbfgs import _History, lbfgs_on_device
from engine.ort.static import specialize
from engine.ort.step import SIZED_SESSIONS, OrtStep


@pytest.fixture(scope="module")
def bound(store, weights):
    from engine.ort.backend import OrtFeatures
    from engine.spec import FeatureSpec
    spec = FeatureSpec(weights.sha256)
    content, bound = step_inputs(72, spec, OrtFeatures(store.feature_model(spec), provider="cpu"))
    return content[None].astype(np.float32), bound


def test_compact_form_is_the_two_loop_recursion():
    rng = np.random.default_rng(1)
    n, m, k = 400, 6, 4
    a = rng.random((n, n))
    hessian = a @ a.T / n + np.eye(n)
    s = [rng.standard_normal(n).astype(np.float32) for _ in range(k)]
    y = [(hessian @ v).astype(np.float32) for v in s]
    g = rng.standard_normal(n).astype(np.float32)
    expected = _two_loop(g, deque((si, yi, 1 / sdot(si, yi)) for si, yi in zip(s, y)))
    history = _History.__new__(_History)
    history.m, history.k = m, k
    S, Y = np.zeros((m, n)), np.zeros((m, n))
    S[m - k:], Y[m - k:] = s, y
    history.SY, history.YY = S @ Y.T, Y @ Y.T
    coef_s, coef_y, gamma = history.coefficients(S @ g, Y @ g)
    got = gamma * g + coef_s[0] @ S + coef_y[0] @ Y
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
    history.k = 0   # no pairs: the gradient itself
    assert history.coefficients(S @ g, Y @ g)[2] == 1.0


def test_sized_graph_computes_what_the_any_size_graph_does(seed_step_graph, bound):
    image, targets = bound
    results = {}
    for label, options in (("any", {"sized": False}), ("sized", {"sized": True}),
                           ("folded", {"sized": True, "fold_targets": True})):
        step = OrtStep(seed_step_graph, provider="cpu", winograd=False, **options)
        step.bind_targets(targets)
        results[label] = step(image)
    loss, grad, parts = results["any"]
    for label in ("sized", "folded"):
        assert abs(results[label][0] - loss) <= 1e-6 * loss, label
        assert np.abs(results[label][1] - grad).max() <= 1e-5 * np.abs(grad).max(), label
        assert results[label][2].keys() == parts.keys()


def test_sized_sessions_are_kept_for_the_last_few_sizes(seed_step_graph, store, weights):
    from engine.ort.backend import OrtFeatures
    from engine.spec import FeatureSpec
    spec = FeatureSpec(weights.sha256)
    features = OrtFeatures(store.feature_model(spec), provider="cpu")
    step = OrtStep(seed_step_graph, provider="cpu", winograd=False, sized=True)
    for size in range(40, 40 + 8 * (SIZED_SESSIONS + 1), 8):
        content, targets = step_inputs(size, spec, features)
        step.bind_targets(targets)
        assert step(content[None].astype(np.float32))[1].shape == (1, *content.shape[:2], 3)
    assert len(step._sized) == SIZED_SESSIONS
    with pytest.raises(ValueError, match="no input"):
        specialize(onnx.load(str(seed_step_graph), load_external_data=False), {"picture": (1, 8, 8, 3)})


def test_gradient_left_on_the_device_is_not_overwritten_by_the_next_call(seed_step_graph, bound):
    image, targets = bound
    step = OrtStep(seed_step_graph, provider="cpu", winograd=False)
    step.bind_targets(targets)
    loss, grad, parts = step.on_device(ort.OrtValue.ortvalue_from_numpy(image))
    kept = grad.numpy().copy()
    assert loss == step(image)[0] and np.array_equal(kept, step(image)[1])
    step.on_device(ort.OrtValue.ortvalue_from_numpy(np.clip(image + 0.1, 0, 1)))
    assert np.array_equal(kept, grad.numpy())


def test_lbfgs_beside_the_step_follows_the_host_lbfgs(seed_step_graph, bound):
    image, targets = bound
    step = OrtStep(seed_step_graph, provider="cpu", winograd=False)
    step.bind_targets(targets)
    host, device, pictures = [], [], []
    on_host = lbfgs(step, image, 30, callback=lambda i, loss, parts, x, s: host.append(loss))

    def heard(i, loss, parts, picture, seconds):
        device.append(loss)
        if i == 3:
            pictures.append(picture())
    on_device = lbfgs_on_device(step, image, 30, callback=heard)
    # the same iterates up to rounding at first (the compact form and the two-loop recursion differ
    # in the last bits), then the same descent
    assert np.allclose(host[:4], device[:4], rtol=1e-3)
    assert on_device.iterations == 30 and on_device.loss < 0.2 * device[0]
    assert abs(on_device.loss - on_host.loss) <= 0.1 * on_host.loss
    assert pictures[0].shape == image.shape and pictures[0].dtype == np.float32
    assert on_device.image.shape == image.shape and 0 <= on_device.image.min() and on_device.image.max() <= 1
    assert 1 <= len(on_device.state) <= 20 and on_device.state[0][0].shape == image.shape
    # carried pairs start the next run with curvature: its first trial is a unit step, not the
    # gradient's small first step, and it goes further in 5 evaluations
    fresh = lbfgs_on_device(step, image, 5)
    carried = lbfgs_on_device(step, image, 5, pairs=on_device.state)
    assert carried.loss < fresh.loss


def test_stylizer_runs_lbfgs_beside_the_step_where_asked(store, weights, content_image, style_image, monkeypatch):
    from engine import stylizer as module
    from engine.settings import Settings
    monkeypatch.setattr(module, "DEVICE_LOOP", ("cpu",))
    seen = []
    engine = module.Stylizer(weights, provider="cpu", threads=1, store=store)
    settings = Settings(size=128, scales=2, min_size=80, iterations=6, step_engine="ort", targets="ort")
    plan = engine.plan(settings, content_image.shape)
    assert len(plan.shapes) == 2   # the second scale starts from the first's pairs
    outcome = engine.run(content_image, [style_image], settings, callback=lambda p: seen.append(p))
    assert "L-BFGS on the CPU beside it" in outcome.step
    assert outcome.iterations == 12 and outcome.image.shape[2] == 3 and max(outcome.image.shape[:2]) == 128
    assert seen[-1].image.shape == (1, *seen[-1].shape, 3) and seen[-1].image.dtype == np.float32
    monkeypatch.setattr(module, "DEVICE_LOOP", ())
    assert "beside it" not in engine.run(content_image, [style_image], settings).step



def test_lbfgs_with_a_step_bound_to_fixed_buffers_is_the_same_run(seed_step_graph, bound):
    # a CUDA-graph step reads its image from, and writes its gradient to, buffers of its own (here
    # bound the same way on the CPU): the optimizer stages each trial there and keeps copies
    image, targets = bound
    runs = {}
    for graph in (False, True):
        step = OrtStep(seed_step_graph, provider="cpu", winograd=False, sized=True, cuda_graph=graph)
        step.bind_targets(targets)
        assert (step.image_buffer is not None) == graph
        losses = []
        result = lbfgs_on_device(step, image, 12, callback=lambda i, loss, parts, x, s: losses.append(loss))
        runs[graph] = losses, result
        host = step(image)   # the host call through the same buffers
        assert host[1].shape == image.shape and np.isfinite(host[0])
    assert runs[True][0] == runs[False][0]
    assert np.array_equal(runs[True][1].image, runs[False][1].image)


def test_the_optimizers_graphs_are_never_captured(seed_step_graph):
    # its graphs bind new outputs at every run; a CUDA-graph replay would write into the first run's
    # buffers and leave the new ones empty (seen on the H200: "Only OrtValues that are Tensors ...")
    step = OrtStep(seed_step_graph, provider="cpu", winograd=False, sized=True, cuda_graph=True,
                   cuda_options={"use_tf32": "1"})
    assert step._session_options["cuda_options"]["enable_cuda_graph"] == "1"
    assert step.sibling_cuda_options == {"use_tf32": "1"}
