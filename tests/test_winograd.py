"""Winograd F(4x4, 3x3) and F(6x6, 3x3) rewrites of 3x3 convolutions, against ONNX Runtime's direct convolution."""
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


@pytest.mark.parametrize("m", sorted(winograd.TILINGS))
def test_transforms_are_exact_in_float64(m):
    t = winograd.TILINGS[m]
    rng = np.random.default_rng(0)
    for _ in range(20):
        d, g = rng.standard_normal((m + 2, m + 2)), rng.standard_normal((3, 3))
        direct = np.array([[np.sum(d[i:i + 3, j:j + 3] * g) for j in range(m)] for i in range(m)])
        y = t.at @ ((t.g @ g @ t.g.T) * (t.bt @ d @ t.bt.T)) @ t.at.T
        np.testing.assert_allclose(y, direct, rtol=0, atol=1e-12)
    # a flipped kernel's transform is the forward one's, reordered and scaled (the shared twin)
    np.testing.assert_allclose(t.g[:, ::-1], t.flip_scale[:, None] * t.g[t.flip_order])


# (tiling rule, convolutions rewritten, transformed copies, whether 128 -> 128 is left alone)
RULES = {
    "F(4x4) from 256 channels": (lambda cin, cout: 4 if max(cin, cout) >= 256 else None, 2, 1, True),
    "F(6x6) from 256 channels": (lambda cin, cout: 6 if max(cin, cout) >= 256 else None, 2, 1, True),
    "AVX2 rule": (lambda cin, cout: winograd.block_size(cin, cout, wide_vectors=False), 2, 1, True),
    "AVX-512 rule": (lambda cin, cout: winograd.block_size(cin, cout, wide_vectors=True), 3, 2, False),
    "F(6x6) at 128, F(4x4) at 256": (lambda cin, cout: 4 if max(cin, cout) >= 256 else 6, 3, 2, False),
}


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("shape", [(16, 24), (13, 22)])
def test_rewrite_matches_direct_convolution(shape, rule):
    choose, rewritten_count, copies, narrow_left = RULES[rule]
    rng = np.random.default_rng(1)
    model = _model(*shape, rng)
    feeds = {"x": np.maximum(rng.standard_normal((1, 128, *shape)), 0).astype(np.float32),
             "g": rng.standard_normal((1, 256, *shape)).astype(np.float32)}
    expected = _session(model).run(None, feeds)
    rewritten, external, count = winograd.rewrite(model, choose=choose)
    assert count == rewritten_count        # never the stride-2 conv
    assert len(external) == copies         # the twin shares the forward conv's transformed kernels
    assert not {"k", "twin"} & {i.name for i in rewritten.graph.initializer}
    got = _session(rewritten, external).run(None, feeds)
    for name, e, g in zip(("y", "gx", "n", "s"), expected, got):
        assert g.shape == e.shape, name
        error = np.linalg.norm(g - e) / np.linalg.norm(e)
        assert error < 2e-5, (name, error)
    assert np.array_equal(got[2], expected[2]) == narrow_left   # left alone: the very same computation


def test_tiling_per_layer_and_cpu():
    vgg19 = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512), (512, 512)]
    blocks = {wide: [winograd.block_size(cin, cout, wide_vectors=wide) for cin, cout in vgg19] for wide in (False, True)}
    assert blocks[False] == [None, None, None, None, 4, 4, 4, 4]
    assert blocks[True] == [None, None, None, 6, 6, 6, 4, 4]
    # an input gradient (channels swapped) gets its forward convolution's tiling, so they can share kernels
    assert all(winograd.block_size(b, a, wide_vectors=w) == winograd.block_size(a, b, wide_vectors=w)
               for a, b in vgg19 for w in (False, True))
    assert winograd.block_size(128, 128) == (6 if "avx512f" in winograd.cpu.flags() else None)


def test_bench_graphs_refuses_an_unknown_rule_in_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    done = subprocess.run([sys.executable, "-m", "bench.graphs", str(tmp_path / "step.onnx"), "--rules", "avx2,f8"],
                          capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == ["--rules: unknown f8; expected cpu, avx2, avx512, f4, f6, direct"]
