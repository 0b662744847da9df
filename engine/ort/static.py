"""A step graph made for one image size: every input's shape fixed, and optionally the targets
made constants, so that ONNX Runtime folds the shape arithmetic the any-size graph does at run
time (Shape, Gather, Cast, Concat, ... 599 nodes -> 278 at 128 px, same loss to the last bit).

On CUDA that arithmetic runs on the host between kernels, with a copy each way per shape
value; folded away, every node runs on the device and the graph can be captured as a CUDA graph.
No TensorFlow here."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


def specialize(model: onnx.ModelProto, shapes: dict[str, tuple], constants: dict[str, np.ndarray] | None = None,
               half: str | None = None) -> bytes:
    """``model`` serialized with the inputs named in ``shapes`` fixed to those shapes and the
    inputs in ``constants`` turned into initializers holding those arrays (``model`` is unchanged);
    ``half``: its convolutions in float16 (``half_convs``'s ``which``)."""
    constants = constants or {}
    if half:
        fixed = half_convs(model, half)
    else:
        fixed = onnx.ModelProto()
        fixed.CopyFrom(model)
    graph = fixed.graph
    names = {i.name for i in graph.input}
    unknown = (set(shapes) | set(constants)) - names
    if unknown:
        raise ValueError(f"the graph has no input(s) {', '.join(sorted(unknown))}")
    kept = []
    for inp in graph.input:
        if inp.name in constants:
            graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(constants[inp.name]), inp.name))
            continue
        if inp.name in shapes:
            dims = inp.type.tensor_type.shape.dim
            shape = tuple(shapes[inp.name])
            if len(dims) != len(shape):
                raise ValueError(f"input {inp.name} has {len(dims)} dimensions, not {len(shape)}")
            for dim, value in zip(dims, shape):
                if dim.HasField("dim_value") and dim.dim_value != value:
                    raise ValueError(f"input {inp.name} is {dim.dim_value} where {value} was asked")
                dim.dim_value = int(value)
        kept.append(inp)
    del graph.input[:]
    graph.input.extend(kept)
    return fixed.SerializeToString()


def half_convs(model: onnx.ModelProto, which: str = "all") -> onnx.ModelProto:
    """``model`` with its convolutions computed in float16 (``which="forward"``: only those with a
    bias, i.e. VGG's own layers, not the gradient's transposed ones): each reads a float16 copy of
    its input and of its weights (converted once here) and its output is cast back to float32, so
    the losses, the Grams and everything between stays float32. On a GPU's tensor cores a float16
    convolution takes about half a TF32 one's time; the casts cost a pass over each activation."""
    if which not in ("all", "forward"):
        raise ValueError(f"which must be 'all' or 'forward', not {which!r}")
    half = onnx.ModelProto()
    half.CopyFrom(model)
    graph = half.graph
    initializers = {i.name: i for i in graph.initializer}
    converted: dict[str, str] = {}
    nodes = []

    def constant_half(name: str) -> str | None:
        if name not in initializers:
            return None
        if name not in converted:
            array = numpy_helper.to_array(initializers[name]).astype(np.float16)
            converted[name] = f"{name}/fp16"
            graph.initializer.append(numpy_helper.from_array(array, converted[name]))
        return converted[name]

    for node in graph.node:
        if node.op_type != "Conv" or (which == "forward" and len(node.input) < 3):
            nodes.append(node)
            continue
        inputs = []
        for position, name in enumerate(node.input):
            if not name:
                inputs.append(name)
                continue
            fixed = constant_half(name) if position > 0 else None
            if fixed is None:
                fixed = f"{node.name}/{position}/fp16"
                nodes.append(onnx.helper.make_node("Cast", [name], [fixed], to=onnx.TensorProto.FLOAT16))
            inputs.append(fixed)
        output = node.output[0]
        del node.input[:]
        node.input.extend(inputs)
        node.output[0] = f"{output}/fp16"
        nodes.append(node)
        nodes.append(onnx.helper.make_node("Cast", [node.output[0]], [output], to=onnx.TensorProto.FLOAT))
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return half
