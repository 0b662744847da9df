"""Winograd F(4x4, 3x3) rewrite of 3x3 convolutions, against ONNX Runtime's direct convolution."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.ort import winograd


def _session(model, external=None):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    values = [ort.OrtValue.ortvalue_from_numpy(a) for a in (external or {}).values()]
    if values:
        options.add_external_initializers(list(external), values)
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _model(h, w, rng):
    """A forward 3x3 conv with bias and ReLU, its input-gradient twin (kernels flipped and
    transposed), a 128 -> 128 conv and a stride-2 conv (both to be left alone)."""
    k = (rng.standard_normal((256, 128, 3, 3)) * 0.05).astype(np.float32)
    twin = np.ascontiguousarray(k.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
    narrow = (rng.standard_normal((128, 128, 3, 3)) * 0.05).astype(np.float32)
    strided = (rng.standard_normal((256, 256, 3, 3)) * 0.05).astype(np.float32)
    bias = rng.standard_normal(256).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "k", "bias"], ["c"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c"], ["y"]),
             helper.make_node("Conv", ["g", "twin"], ["gx"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x", "narrow"], ["n"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["y", "strided"], ["s"], pads=[1, 1, 1, 1], strides=[2, 2])]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 128, h, w]),
         helper.make_tensor_value_info("g", TensorProto.FLOAT, [1, 256, h, w])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "gx", "n", "s")],
        [numpy_helper.from_array(a, n) for a, n in ((k, "k"), (twin, "twin"), (narrow, "narrow"),
                                                     (strided, "strided"), (bias, "bias"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_transforms_are_exact_in_float64():
    rng = np.random.default_rng(0)
    for _ in range(20):
        d, g = rng.standard_normal((6, 6)), rng.standard_normal((3, 3))
        direct = np.array([[np.sum(d[i:i + 3, j:j + 3] * g) for j in range(4)] for i in range(4)])
        y = winograd.AT @ ((winograd.G @ g @ winograd.G.T) * (winograd.BT @ d @ winograd.BT.T)) @ winograd.AT.T
        np.testing.assert_allclose(y, direct, rtol=0, atol=1e-12)
    # a flipped kernel's transform is the forward one's, reordered and scaled (the shared twin)
    np.testing.assert_allclose(winograd.G[:, ::-1], winograd.FLIP_SCALE[:, None] * winograd.G[winograd.FLIP_ORDER])


@pytest.mark.parametrize("shape", [(16, 24), (13, 22)])
def test_rewrite_matches_direct_convolution(shape):
    rng = np.random.default_rng(1)
    model = _model(*shape, rng)
    feeds = {"x": np.maximum(rng.standard_normal((1, 128, *shape)), 0).astype(np.float32),
             "g": rng.standard_normal((1, 256, *shape)).astype(np.float32)}
    expected = _session(model).run(None, feeds)
    rewritten, external, count = winograd.rewrite(model)
    assert count == 2                      # the forward conv and its twin; not 128 -> 128, not stride 2
    assert len(external) == 1              # the twin shares the forward conv's transformed kernels
    assert not {"k", "twin"} & {i.name for i in rewritten.graph.initializer}
    got = _session(rewritten, external).run(None, feeds)
    for name, e, g in zip(("y", "gx", "n", "s"), expected, got):
        assert g.shape == e.shape, name
        error = np.linalg.norm(g - e) / np.linalg.norm(e)
        assert error < 2e-5, (name, error)
    assert np.array_equal(got[2], expected[2])   # left alone: the very same computation
