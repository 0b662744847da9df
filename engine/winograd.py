"""Winograd F(4x4, 3x3) convolutions for the step graph on ONNX Runtime's CPU provider.

On this 2-core machine the step's 28 convolutions run at 92-97% of the float32 matrix-product
rate, so only fewer multiplications make them faster. Winograd's minimal filtering computes a
4x4 block of a 3x3 convolution's output from a 6x6 input tile with 36 products per channel
pair instead of 144 (Lavin & Gray, 2016): the kernels are transformed once (``U = G w G^T``),
each input tile is transformed (``B^T d B``), the 36 tile positions become 36 independent
matrix products over the channels, and the output is transformed back (``A^T m A``).

The rewrite is made of ONNX operators chosen for how ONNX Runtime's CPU provider runs them:
the input transform is a 6x6/stride-4 convolution over the channels laid out as a batch
(MLAS's direct kernel), the 36 products one batched ``MatMul`` (ONNX Runtime's ``FusedMatMul``
with the kernels transposed for an input gradient, which shares its forward convolution's
transformed kernels), the output transform a small ``MatMul`` and a ``DepthToSpace``. The
transforms cost memory passes that the products repay only where channels are many and maps
small: block 3 onwards in VGG19 (one layer, measured here: 2.3x at 512 channels, 1.4x at 256,
0.8x at 128 - so 128-channel layers stay direct). GPU providers keep the graph as exported:
cuDNN picks its own algorithms.

In float32 a rewritten layer differs from the direct convolution by about 3-5e-6 (relative l2,
``scripts/winograd_layers.py``). The whole step's gradient stays within 1e-3 of float64, as the
parity tests require; at 256 and 512 px it is 2e-4 off (``bench --steps``), like TensorFlow's own
float32 step: a few ReLU units whose sign differs from float64's, not accumulated rounding.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .onnx_graph import attributes, input_gradient_kernels, remove_unused_initializers, use_counts

M = 4          # output block
A = M + 2      # input tile
# Interpolation points 0, 1, -1, 2, 1/2 and infinity. The usual set has -2 for 1/2 (Lavin &
# Gray); this one is closed under p -> 1/p, which makes the transformed kernels of a
# convolution's input gradient (its kernels flipped and transposed) a reordering of the
# forward ones, so both directions share one copy (measured float32 error per tile: 1.0e-6
# against 6e-7 for the usual set).
POINTS = (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(1, 2))

# Where the products repay the transforms (see the module docstring).
MIN_CHANNELS = 128
MIN_WIDER = 256


def _matrices(points):
    """Toom-Cook matrices ``B^T (6x6), G (6x3), A^T (4x6)`` for F(4, 3) on ``points`` and infinity."""
    n, r = A, 3
    at, g = np.zeros((M, n)), np.zeros((n, r))
    for j, p in enumerate(points):
        f = float(np.prod([p - q for q in points if q != p]))
        at[:, j] = [float(p ** i) for i in range(M)]
        g[j] = [float(p ** k) / f for k in range(r)]
    at[M - 1, n - 1] = g[n - 1, r - 1] = 1
    # B^T solves sum_j AT[i, j] G[j, k] BT[j, l] = [l == i + k]: y_i = sum_k g_k d_(i+k)
    system = np.array([at[i] * g[:, k] for i in range(M) for k in range(r)])
    bt = np.zeros((n, n))
    for col in range(n):
        target = np.array([1.0 if col == i + k else 0.0 for i in range(M) for k in range(r)])
        bt[:, col] = np.linalg.lstsq(system, target, rcond=None)[0]
        assert np.allclose(system @ bt[:, col], target)
    return bt, g, at


def _flip(g):
    """``g[:, ::-1] == diag(scale) @ g[order]``: how a flipped kernel's transform reorders."""
    flipped = g[:, ::-1]
    order, scale = [], []
    for row in flipped:
        for j, other in enumerate(g):
            k = np.flatnonzero(other)[0]
            if np.allclose(row, row[k] / other[k] * other):
                order.append(j)
                scale.append(row[k] / other[k])
                break
    assert len(order) == len(g), "the interpolation points are not closed under p -> 1/p"
    return np.array(order), np.array(scale)


BT, G, AT = _matrices(POINTS)
FLIP_ORDER, FLIP_SCALE = _flip(G)


def kernel_transform(w: np.ndarray) -> np.ndarray:
    """``(Cout, Cin, 3, 3)`` kernels -> ``(36, Cout, Cin)``, one matrix per tile position."""
    u = np.einsum("ra,ocab,sb->rsoc", G, w.astype(np.float64), G)
    return u.reshape(A * A, w.shape[0], w.shape[1]).astype(np.float32)


def _transforms(shared: bool):
    """Input-transform kernels ``(36, 1, 6, 6)`` and output transform ``(16, 36)``.

    ``shared``: for an input gradient whose kernels are the forward kernels ``w`` flipped and
    transposed, computed with ``U(w)`` transposed: tile position ``k`` then needs
    ``U(w)[order(k)]`` scaled, which the two transforms absorb."""
    inputs = np.einsum("ra,sb->rsab", BT, BT).reshape(A * A, A, A)
    outputs = np.einsum("yr,xs->yxrs", AT, AT).reshape(M * M, A * A)
    if shared:
        order = (FLIP_ORDER[:, None] * A + FLIP_ORDER[None, :]).reshape(-1)
        scale = np.outer(FLIP_SCALE, FLIP_SCALE).reshape(-1)
        inverse = np.argsort(order)
        inputs = inputs[inverse]
        outputs = outputs[:, inverse] * scale[inverse]
    return inputs[:, None].astype(np.float32), outputs.astype(np.float32)


def eligible(input_shape, w: np.ndarray, attrs: dict) -> bool:
    if (len(input_shape) != 4 or input_shape[0] != 1 or any(not d for d in input_shape)
            or w.ndim != 4 or w.shape[2:] != (3, 3)):
        return False
    if attrs.get("group", 1) != 1 or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return False
    if list(attrs.get("strides", [1, 1])) != [1, 1] or list(attrs.get("dilations", [1, 1])) != [1, 1]:
        return False
    if list(attrs.get("pads", [0, 0, 0, 0])) != [1, 1, 1, 1]:
        return False
    cout, cin = w.shape[:2]
    return min(cin, cout) >= MIN_CHANNELS and max(cin, cout) >= MIN_WIDER


def _external(name: str, array: np.ndarray) -> onnx.TensorProto:
    """A tensor whose data ONNX Runtime gets from memory (``add_external_initializers``)."""
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=array.shape,
                         data_location=TensorProto.EXTERNAL)
    for key, value in (("location", name), ("offset", "0"), ("length", str(array.nbytes))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def _replacement(node, input_shape, cout: int, kernels: str, shared: bool, bias_name: str | None):
    """The nodes and initializers computing ``node`` (a 3x3 'same' Conv) by F(4x4, 3x3), with
    the transformed kernels ``kernels`` (``U``, or the forward twin's ``U`` when ``shared``)."""
    _, cin, h, wd = input_shape
    hp, wp = -(-h // M) * M, -(-wd // M) * M      # padded up to whole blocks
    hb, wb = hp // M, wp // M
    p = f"{node.name or node.output[0]}/winograd"
    i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
    input_transform, output_transform = _transforms(shared)
    inits = {
        f"{p}/pads": i64(0, 0, 1, 1, 0, 0, 1 + hp - h, 1 + wp - wd),
        f"{p}/as_batch": i64(cin, 1, hp + 2, wp + 2),
        f"{p}/input_transform": input_transform,
        f"{p}/tiles": i64(cin, A * A, hb * wb),
        f"{p}/rows": i64(A * A, cout * hb * wb),
        f"{p}/output_transform": output_transform,
        f"{p}/blocks": i64(1, M * M * cout, hb, wb),
    }
    if shared:
        product = helper.make_node("FusedMatMul", [kernels, f"{p}/vt"], [f"{p}/m"], domain="com.microsoft", transA=1)
    else:
        product = helper.make_node("MatMul", [kernels, f"{p}/vt"], [f"{p}/m"])
    out = node.output[0]
    nodes = [
        helper.make_node("Pad", [node.input[0], f"{p}/pads"], [f"{p}/padded"]),
        # each channel as one image of a batch: the transform is then a plain 1-channel convolution
        helper.make_node("Reshape", [f"{p}/padded", f"{p}/as_batch"], [f"{p}/batch"]),
        helper.make_node("Conv", [f"{p}/batch", f"{p}/input_transform"], [f"{p}/v"], strides=[M, M]),
        helper.make_node("Reshape", [f"{p}/v", f"{p}/tiles"], [f"{p}/v3"]),
        helper.make_node("Transpose", [f"{p}/v3"], [f"{p}/vt"], perm=[1, 0, 2]),
        product,
        helper.make_node("Reshape", [f"{p}/m", f"{p}/rows"], [f"{p}/m2"]),
        helper.make_node("MatMul", [f"{p}/output_transform", f"{p}/m2"], [f"{p}/y"]),
        helper.make_node("Reshape", [f"{p}/y", f"{p}/blocks"], [f"{p}/yb"]),
    ]
    last = f"{p}/full"
    nodes.append(helper.make_node("DepthToSpace", [f"{p}/yb"], [last], blocksize=M, mode="DCR"))
    if (hp, wp) != (h, wd):
        inits.update({f"{p}/crop_start": i64(0, 0), f"{p}/crop_end": i64(h, wd), f"{p}/crop_axes": i64(2, 3)})
        nodes.append(helper.make_node("Slice", [last, f"{p}/crop_start", f"{p}/crop_end", f"{p}/crop_axes"],
                                      [f"{p}/cropped"]))
        last = f"{p}/cropped"
    if bias_name:
        inits[f"{p}/bias_shape"] = i64(1, cout, 1, 1)
        nodes += [helper.make_node("Reshape", [bias_name, f"{p}/bias_shape"], [f"{p}/bias"]),
                  helper.make_node("Add", [last, f"{p}/bias"], [out])]
    else:
        nodes[-1].output[0] = out
    return nodes, inits


def rewrite(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, np.ndarray], int]:
    """``model`` with its eligible 3x3 convolutions computed by Winograd F(4x4, 3x3) (changed in
    place), the transformed kernels it needs from memory (``SessionOptions.add_external_initializers``),
    and how many convolutions were rewritten.

    Needs static input shapes (the step graphs have them); a convolution whose shape is not
    known, or that is not a stride-1 'same' 3x3 with constant kernels, is left as it is. An
    input gradient's convolution (its kernels a forward one's flipped and transposed) shares
    the forward convolution's transformed kernels."""
    graph = model.graph
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.graph.value_info) + list(inferred.graph.input)}
    del inferred
    initializers = {i.name: i for i in graph.initializer}
    uses = use_counts(graph)

    external: dict[str, np.ndarray] = {}
    forward: list[tuple[np.ndarray, str]] = []   # (input_gradient_kernels(w), the name of U(w))
    new_nodes, count = [], 0
    for node in graph.node:
        w_init = initializers.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        if w_init is None:
            new_nodes.append(node)
            continue
        w = numpy_helper.to_array(w_init)
        if not eligible(shapes.get(node.input[0], []), w, attributes(node)):
            new_nodes.append(node)
            continue
        twin = next((name for flipped, name in forward
                     if flipped.shape == w.shape and np.array_equal(flipped, w)), None)
        if twin is None:
            kernels = f"{node.name or node.output[0]}/winograd/kernels"
            external[kernels] = kernel_transform(w)
            graph.initializer.append(_external(kernels, external[kernels]))
            forward.append((input_gradient_kernels(w), kernels))
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        nodes, inits = _replacement(node, shapes[node.input[0]], w.shape[0], twin or kernels, twin is not None, bias)
        new_nodes += nodes
        graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in inits.items())
        uses[node.input[1]] -= 1
        count += 1
    del graph.node[:]
    graph.node.extend(new_nodes)
    remove_unused_initializers(graph, uses)
    if count and not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model, external, count
