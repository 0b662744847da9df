"""Winograd F(4x4, 3x3) and F(6x6, 3x3) convolutions for the step graph on ONNX Runtime's CPU provider.

On this 2-core machine the step's 28 convolutions run at 92-97% of the float32 matrix-product
rate, so only fewer multiplications make them faster. Winograd's minimal filtering computes an
m x m block of a 3x3 convolution's output from an (m+2) x (m+2) input tile with (m+2)^2 products
per channel pair instead of 9 m^2 (Lavin & Gray, 2016): 36 instead of 144 for m = 4, 64 instead
of 324 for m = 6. The kernels are transformed once (``U = G w G^T``), each input tile is
transformed (``B^T d B``), the tile positions become independent matrix products over the
channels, and the output is transformed back (``A^T m A``).

The rewrite is made of ONNX operators chosen for how ONNX Runtime's CPU provider runs them:
the input transform is a strided convolution over the channels laid out as a batch (MLAS's
direct kernel), the products one batched ``MatMul`` (ONNX Runtime's ``FusedMatMul`` with the
kernels transposed for an input gradient, which shares its forward convolution's transformed
kernels), the output transform a small ``MatMul`` and a ``DepthToSpace``. The transforms cost
memory passes that the products repay only where channels are many and maps small, and how
many depends on the CPU (``block_size``, from ``scripts/winograd_layers.py``). GPU providers
keep the graph as exported: cuDNN picks its own algorithms.

In float32 a layer rewritten with m = 4 differs from the direct convolution by about 2-5e-6
(relative l2), with m = 6 by about 3-7e-6 (``scripts/winograd_layers.py``). The whole step's gradient stays within 1e-3 of
float64, as the parity tests require; at 256 and 512 px it is 2e-4 off (``bench --steps``), like
TensorFlow's own float32 step: a few ReLU units whose sign differs from float64's, not
accumulated rounding.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .. import cpu
from .graph import attributes, input_gradient_kernels, remove_unused_initializers, use_counts

# Interpolation points, with infinity. The usual sets have -2 for 1/2 (Lavin & Gray); these are
# closed under p -> 1/p, which makes the transformed kernels of a convolution's input gradient
# (its kernels flipped and transposed) a reordering of the forward ones, so both directions share
# one copy (F(4x4): float32 error per tile 1.0e-6 against 6e-7 for the usual set).
POINTS = {4: (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(1, 2)),
          6: (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2), Fraction(1, 2), Fraction(-1, 2))}


def _matrices(points):
    """Toom-Cook matrices ``B^T (a x a), G (a x 3), A^T (m x a)`` for F(m, 3) on ``points`` and
    infinity (``a = len(points) + 1``, ``m = a - 2``)."""
    n, r = len(points) + 1, 3
    m = n - r + 1
    at, g = np.zeros((m, n)), np.zeros((n, r))
    for j, p in enumerate(points):
        f = float(np.prod([p - q for q in points if q != p]))
        at[:, j] = [float(p ** i) for i in range(m)]
        g[j] = [float(p ** k) / f for k in range(r)]
    at[m - 1, n - 1] = g[n - 1, r - 1] = 1
    # B^T solves sum_j AT[i, j] G[j, k] BT[j, l] = [l == i + k]: y_i = sum_k g_k d_(i+k)
    system = np.array([at[i] * g[:, k] for i in range(m) for k in range(r)])
    bt = np.zeros((n, n))
    for col in range(n):
        target = np.array([1.0 if col == i + k else 0.0 for i in range(m) for k in range(r)])
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


class Tiling:
    """F(m x m, 3x3): its matrices and how a flipped kernel's transform reorders."""

    def __init__(self, m: int):
        self.m, self.a = m, m + 2
        self.bt, self.g, self.at = _matrices(POINTS[m])
        self.flip_order, self.flip_scale = _flip(self.g)

    def kernel_transform(self, w: np.ndarray) -> np.ndarray:
        """``(Cout, Cin, 3, 3)`` kernels -> ``(a*a, Cout, Cin)``, one matrix per tile position."""
        # two BLAS products, not one four-index einsum: 0.05 s instead of 0.15 s a 512-channel layer
        # (F(4x4)), which every run's start waits for
        g = self.g
        u = np.tensordot(np.tensordot(g, w.astype(np.float64), axes=([1], [2])), g, axes=([3], [1]))  # (r, o, c, s)
        return u.transpose(0, 3, 1, 2).astype(np.float32).reshape(self.a * self.a, w.shape[0], w.shape[1])

    def transforms(self, shared: bool):
        """Input-transform kernels ``(a*a, 1, a, a)`` and output transform ``(m*m, a*a)``.

        ``shared``: for an input gradient whose kernels are the forward kernels ``w`` flipped and
        transposed, computed with ``U(w)`` transposed: tile position ``k`` then needs
        ``U(w)[order(k)]`` scaled, which the two transforms absorb."""
        a, m = self.a, self.m
        inputs = np.einsum("ra,sb->rsab", self.bt, self.bt).reshape(a * a, a, a)
        outputs = np.einsum("yr,xs->yxrs", self.at, self.at).reshape(m * m, a * a)
        if shared:
            order = (self.flip_order[:, None] * a + self.flip_order[None, :]).reshape(-1)
            scale = np.outer(self.flip_scale, self.flip_scale).reshape(-1)
            inverse = np.argsort(order)
            inputs = inputs[inverse]
            outputs = outputs[:, inverse] * scale[inverse]
        return inputs[:, None].astype(np.float32), outputs.astype(np.float32)


TILINGS = {m: Tiling(m) for m in POINTS}


def block_size(cin: int, cout: int, wide_vectors: bool | None = None) -> int | None:
    """The output block (4 or 6) for a ``cin -> cout`` 3x3 convolution, or None: the direct one.

    One layer at a time at VGG19's 512x341 shapes (``scripts/winograd_layers.py``). The AVX2 EPYC
    (2026-11-26, F(4x4) only): 2.3x at 512 channels, 1.4x at 256, 0.8x at 128 -> 128; so from block
    3 on, F(4x4). The Zen 4 EPYC (AVX-512, 2026-12-01): with 64 channels on a side both tilings
    lose (0.7-0.9x); 128 -> 128 at 170x256 F(4x4) 1.25x, F(6x6) 1.35x; 256 channels F(6x6) 1.5-1.9x,
    as F(4x4) or a little faster; 512 channels F(6x6) a little faster one layer at a time, but in
    the whole step 0-1% faster at 512 px, 10% slower at 256 px (11x16 maps waste more of an 8x8
    tile) and 1.6x the transformed kernels' memory, so F(4x4) there. The step against F(4x4) from
    block 3 on (``python -m bench.graphs GRAPH --rules avx2,avx512 --size S``, two runs): 1.04x and
    1.05x at 512 px, 1.05x and 1.04x at 256 px, 0.96x and 0.95x at 128 px.
    ``wide_vectors``: AVX-512 (default: this CPU's); the Xeon's AVX-512 takes the Zen 4's rule,
    not measured there."""
    if wide_vectors is None:
        wide_vectors = "avx512f" in cpu.flags()
    narrow, wide = min(cin, cout), max(cin, cout)
    if not wide_vectors:
        return 4 if narrow >= 128 and wide >= 256 else None
    if narrow < 128:
        return None
    return 6 if wide <= 256 else 4


def eligible(w: np.ndarray, attrs: dict) -> bool:
    """A stride-1 'same' 3x3 convolution, which a tiling can compute (whether it pays is
    ``block_size``'s). Its input's height and width may be unknown: the rewrite reads them at run time."""
    if w.ndim != 4 or w.shape[2:] != (3, 3):
        return False
    if attrs.get("group", 1) != 1:
        return False
    if list(attrs.get("strides", [1, 1])) != [1, 1] or list(attrs.get("dilations", [1, 1])) != [1, 1]:
        return False
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    # 'same': one pixel each side, given explicitly or (at any image size, from tf2onnx) as SAME_*
    if auto_pad == "NOTSET" and list(attrs.get("pads", [0, 0, 0, 0])) != [1, 1, 1, 1]:
        return False
    if auto_pad not in ("NOTSET", "SAME_UPPER", "SAME_LOWER"):
        return False
    return True


def one_image(graph: onnx.GraphProto) -> bool:
    """Every 4-D input of the graph holds one image (batch 1), so every convolution in it sees one:
    the rewrite lays channels out as a batch, which a batch of images would scramble. (Inside a
    step graph the gradient's batch size is not known statically, so each convolution's own
    input shape cannot tell.) Where an input is named ``image``, as in the step graphs, it alone
    is judged: their masks' first axis counts style regions, summed before any convolution."""
    inputs = [i for i in graph.input if i.name == "image"] or list(graph.input)
    ranked = [i.type.tensor_type.shape.dim for i in inputs if len(i.type.tensor_type.shape.dim) == 4]
    return bool(ranked) and all(dims[0].dim_value == 1 for dims in ranked)


def _external(name: str, array: np.ndarray) -> onnx.TensorProto:
    """A tensor whose data ONNX Runtime gets from memory (``add_external_initializers``)."""
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=array.shape,
                         data_location=TensorProto.EXTERNAL)
    for key, value in (("location", name), ("offset", "0"), ("length", str(array.nbytes))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def _replacement(node, cin: int, cout: int, kernels: str, shared: bool, bias_name: str | None, tiling: Tiling):
    """The nodes and initializers computing ``node`` (a 3x3 'same' Conv of a ``(1, cin, h, w)``
    input) by ``tiling``, with the transformed kernels ``kernels`` (``U``, or the forward twin's
    ``U`` when ``shared``). The input's height and width are read at run time: the transform's
    convolution pads it (one pixel before, m after: exactly ``ceil(h / m)`` tiles down, whatever
    ``h``) and the output is cropped back to ``h x w``."""
    p = f"{node.name or node.output[0]}/winograd"
    i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
    M, A = tiling.m, tiling.a  # noqa: N806
    input_transform, output_transform = tiling.transforms(shared)
    inits = {
        f"{p}/hw_start": i64(2), f"{p}/hw_end": i64(4),
        f"{p}/as_batch": i64(cin, 1, 0, 0),        # 0: the height and width, as they are
        f"{p}/input_transform": input_transform,
        f"{p}/tiles": i64(cin, A * A, -1),
        f"{p}/rows": i64(A * A, -1),
        f"{p}/output_transform": output_transform,
        f"{p}/blocks_head": i64(1, M * M * cout),
        f"{p}/crop_start": i64(0, 0), f"{p}/crop_axes": i64(2, 3),
    }
    if shared:
        product = helper.make_node("FusedMatMul", [kernels, f"{p}/vt"], [f"{p}/m"], domain="com.microsoft", transA=1)
    else:
        product = helper.make_node("MatMul", [kernels, f"{p}/vt"], [f"{p}/m"])
    nodes = [
        helper.make_node("Shape", [node.input[0]], [f"{p}/shape"]),
        helper.make_node("Slice", [f"{p}/shape", f"{p}/hw_start", f"{p}/hw_end"], [f"{p}/hw"]),
        # each channel as one image of a batch: the transform is then a plain 1-channel convolution,
        # which pads inside MLAS's kernel (a Pad node was a memory pass: 2% of a step at 512 px).
        # Tiles start every m pixels from -1 and read m + 2: padding 1 before and m after gives
        # floor((h + 1 + m - (m + 2)) / m) + 1 = ceil(h / m) of them, no tile wasted
        helper.make_node("Reshape", [node.input[0], f"{p}/as_batch"], [f"{p}/batch"]),
        helper.make_node("Conv", [f"{p}/batch", f"{p}/input_transform"], [f"{p}/v"], strides=[M, M],
                         pads=[1, 1, M, M]),
        helper.make_node("Reshape", [f"{p}/v", f"{p}/tiles"], [f"{p}/v3"]),
        helper.make_node("Transpose", [f"{p}/v3"], [f"{p}/vt"], perm=[1, 0, 2]),
        product,
        helper.make_node("Reshape", [f"{p}/m", f"{p}/rows"], [f"{p}/m2"]),
        helper.make_node("MatMul", [f"{p}/output_transform", f"{p}/m2"], [f"{p}/y"]),
        # back to (1, m*m cout, blocks down, blocks across), the block counts from the tiles' shape
        helper.make_node("Shape", [f"{p}/v"], [f"{p}/v_shape"]),
        helper.make_node("Slice", [f"{p}/v_shape", f"{p}/hw_start", f"{p}/hw_end"], [f"{p}/block_counts"]),
        helper.make_node("Concat", [f"{p}/blocks_head", f"{p}/block_counts"], [f"{p}/blocks"], axis=0),
        helper.make_node("Reshape", [f"{p}/y", f"{p}/blocks"], [f"{p}/yb"]),
        helper.make_node("DepthToSpace", [f"{p}/yb"], [f"{p}/full"], blocksize=M, mode="DCR"),
        helper.make_node("Slice", [f"{p}/full", f"{p}/crop_start", f"{p}/hw", f"{p}/crop_axes"], [f"{p}/cropped"]),
    ]
    if bias_name:
        inits[f"{p}/bias_shape"] = i64(1, cout, 1, 1)
        nodes += [helper.make_node("Reshape", [bias_name, f"{p}/bias_shape"], [f"{p}/bias"]),
                  helper.make_node("Add", [f"{p}/cropped", f"{p}/bias"], [node.output[0]])]
    else:
        nodes[-1].output[0] = node.output[0]
    return nodes, inits


def rewrite(model: onnx.ModelProto, choose=None) -> tuple[onnx.ModelProto, dict[str, np.ndarray], int]:
    """``model`` (changed in place) with its 3x3 convolutions computed by Winograd where
    ``choose(cin, cout)`` gives an output block (4 or 6; None: left direct; default: ``block_size``
    on this CPU), the transformed kernels it needs from memory
    (``SessionOptions.add_external_initializers``), and how many convolutions were rewritten.

    Any image size: tiles, padding and crop follow the input's shape at run time. The graph must
    take one image (``one_image``), as the step graphs do; a convolution that is not a stride-1
    'same' 3x3 with constant kernels is left as it is. An input gradient's convolution (its
    kernels a forward one's flipped and transposed) shares the forward convolution's transformed
    kernels: ``choose`` gives both the same block, as its channels are the forward's swapped."""
    choose = choose or block_size
    graph = model.graph
    if not one_image(graph):
        return model, {}, 0
    initializers = {i.name: i for i in graph.initializer}
    uses = use_counts(graph)

    external: dict[str, np.ndarray] = {}
    forward: list[tuple[np.ndarray, str, int]] = []   # (input_gradient_kernels(w), the name of U(w), m)
    new_nodes, count = [], 0
    for node in graph.node:
        w_init = initializers.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        if w_init is None:
            new_nodes.append(node)
            continue
        w = numpy_helper.to_array(w_init)
        m = choose(w.shape[1], w.shape[0]) if eligible(w, attributes(node)) else None
        if m is None:
            new_nodes.append(node)
            continue
        tiling = TILINGS[m]
        twin = next((name for flipped, name, twin_m in forward
                     if twin_m == m and flipped.shape == w.shape and np.array_equal(flipped, w)), None)
        if twin is None:
            kernels = f"{node.name or node.output[0]}/winograd/kernels"
            external[kernels] = tiling.kernel_transform(w)
            graph.initializer.append(_external(kernels, external[kernels]))
            forward.append((input_gradient_kernels(w), kernels, m))
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        nodes, inits = _replacement(node, w.shape[1], w.shape[0], twin or kernels, twin is not None, bias, tiling)
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
