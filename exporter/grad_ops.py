"""tf2onnx handlers for the TensorFlow gradient ops it has no converter for.

A fixed-size step graph (``exporter.step``) leaves four of them. Each is rewritten with plain
ONNX ops; anything outside the cases handled is refused at export time, never guessed.
"""
from __future__ import annotations

import numpy as np
from tf2onnx import utils


def _const(ctx, name: str, value) -> str:
    return ctx.make_const(utils.make_name(name), np.asarray(value)).output[0]


def _static_shape(ctx, node, index: int) -> list[int]:
    source = node.inputs[index]
    if source is None or not source.is_const():
        raise ValueError(f"{node.type} {node.name}: its shape input is not a constant; "
                         "the step graph must be exported at a fixed size")
    return [int(v) for v in source.get_tensor_value(as_list=True)]


def relu_grad(ctx, node, name, args):
    """``ReluGrad(g, y)`` -> ``g * float(y > 0)`` (``y`` is the ReLU's output).

    Not ``Where(y > 0, g, 0)``: ONNX Runtime's CPU ``Where`` with a scalar operand took 33 ms
    on a 64x341x512 map here, Greater + Cast + Mul 16 ms, with identical results."""
    grad, activations = node.input
    onnx_type = ctx.get_dtype(grad)
    zero = _const(ctx, f"{name}_zero", np.zeros((), utils.map_onnx_to_numpy_type(onnx_type)))
    positive = ctx.make_node("Greater", [activations, zero]).output[0]
    mask = ctx.make_node("Cast", [positive], attr={"to": onnx_type}).output[0]
    node.type = "Mul"
    ctx.replace_inputs(node, [grad, mask])


def avg_pool_grad(ctx, node, name, args):
    """``AvgPoolGrad`` of 2x2, stride-2, VALID, NHWC pooling: each gradient value spread a quarter
    to its 2x2 window (a nearest 2x upsample times 0.25); the row and column that VALID pooling
    dropped from an odd-sized input get zero."""
    ksize, strides = node.get_attr_value("ksize"), node.get_attr_value("strides")
    padding = node.get_attr_value("padding")
    padding = padding.decode() if isinstance(padding, bytes) else padding
    data_format = node.get_attr_value("data_format", b"NHWC")
    data_format = data_format.decode() if isinstance(data_format, bytes) else data_format
    if list(ksize) != [1, 2, 2, 1] or list(strides) != [1, 2, 2, 1] or padding != "VALID" or data_format != "NHWC":
        raise ValueError(f"AvgPoolGrad {node.name}: only 2x2 stride-2 VALID NHWC pooling is supported "
                         f"(got ksize {ksize}, strides {strides}, {padding}, {data_format})")
    n, h, w, c = _static_shape(ctx, node, 0)
    grad = node.input[1]
    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(grad))
    roi = _const(ctx, f"{name}_roi", np.zeros((0,), np.float32))
    scales = _const(ctx, f"{name}_scales", np.array([1, 2, 2, 1], np.float32))
    upsampled = ctx.make_node("Resize", [grad, roi, scales],
                              attr={"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                                    "nearest_mode": "floor"}).output[0]
    quarter = _const(ctx, f"{name}_quarter", np.array(0.25, dtype))
    if h % 2 == 0 and w % 2 == 0:
        node.type = "Mul"
        ctx.replace_inputs(node, [upsampled, quarter])
        return
    scaled = ctx.make_node("Mul", [upsampled, quarter]).output[0]
    pads = _const(ctx, f"{name}_pads", np.array([0, 0, 0, 0, 0, h % 2, w % 2, 0], np.int64))
    node.type = "Pad"
    ctx.replace_inputs(node, [scaled, pads])


def shape_n(ctx, node, name, args):
    """``ShapeN(x1, x2, ...)`` -> one ``Shape`` (cast to the asked type) per input."""
    onnx_type = ctx.get_dtype(node.output[0])
    replacements = []
    for index, (source, output) in enumerate(zip(node.input, node.output)):
        shape = ctx.get_shape(source)
        if shape is not None and all(d is not None and d > 0 for d in shape):
            new = _const(ctx, f"{name}_{index}", np.array(shape, utils.map_onnx_to_numpy_type(onnx_type)))
        else:
            dynamic = ctx.make_node("Shape", [source]).output[0]
            new = ctx.make_node("Cast", [dynamic], attr={"to": onnx_type}).output[0]
        replacements.append((output, new))
    for output, new in replacements:
        ctx.replace_all_inputs(output, new)
    ctx.remove_node(node.name)


def strided_slice_grad(ctx, node, name, args):
    """``StridedSliceGrad`` of a unit-stride slice -> ``Pad`` of the incoming gradient with zeros."""
    shape = _static_shape(ctx, node, 0)
    begin, end, strides = (_static_shape(ctx, node, i) for i in (1, 2, 3))
    masks = {key: int(node.get_attr_value(key, 0)) for key in
             ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")}
    if (any(s != 1 for s in strides) or len(begin) != len(shape) or masks["ellipsis_mask"]
            or masks["new_axis_mask"] or masks["shrink_axis_mask"]):
        raise ValueError(f"StridedSliceGrad {node.name}: only unit-stride slices of every axis, without "
                         f"ellipsis, new or shrunk axes, are supported (strides {strides}, masks {masks})")
    # With those cases refused, TensorFlow's rules are Python's: a set mask bit means "from the
    # start" / "to the end", negative bounds count from the end.
    pads_before, pads_after = [], []
    for axis, size in enumerate(shape):
        start = None if masks["begin_mask"] >> axis & 1 else begin[axis]
        stop = None if masks["end_mask"] >> axis & 1 else end[axis]
        first, last, _ = slice(start, stop).indices(size)
        if last <= first:
            raise ValueError(f"StridedSliceGrad {node.name}: the slice of axis {axis} is empty")
        pads_before.append(first)
        pads_after.append(size - last)
    pads = pads_before + pads_after
    node.type = "Pad"
    ctx.replace_inputs(node, [node.input[4], _const(ctx, f"{name}_pads", np.array(pads, np.int64))])


HANDLERS = {
    "ReluGrad": (relu_grad, []),
    "AvgPoolGrad": (avg_pool_grad, []),
    "ShapeN": (shape_n, []),
    "StridedSliceGrad": (strided_slice_grad, []),
}
