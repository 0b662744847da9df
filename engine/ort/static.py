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


def specialize(model: onnx.ModelProto, shapes: dict[str, tuple], constants: dict[str, np.ndarray] | None = None) -> bytes:
    """``model`` serialized with the inputs named in ``shapes`` fixed to those shapes and the
    inputs in ``constants`` turned into initializers holding those arrays (``model`` is unchanged)."""
    constants = constants or {}
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

