"""Small helpers for editing ONNX graphs in place, shared by the step exporter's rewrites
(``exporter.step``) and the CPU provider's (``engine.ort.winograd``). No TensorFlow here."""
from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
from onnx import helper


def use_counts(graph: onnx.GraphProto) -> Counter:
    """How many node inputs name each value (initializers included)."""
    return Counter(name for node in graph.node for name in node.input)


def attributes(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def remove_unused_initializers(graph: onnx.GraphProto, counts: Counter) -> None:
    """Drop the initializers whose count fell to zero (``counts`` from ``use_counts``, kept up
    to date by the caller; names it does not hold count as used)."""
    unused = [i for i in graph.initializer if counts.get(i.name, 1) == 0]
    for init in unused:
        graph.initializer.remove(init)


def input_gradient_kernels(kernels: np.ndarray) -> np.ndarray:
    """``(out, in, kh, kw)`` kernels -> the kernels of the stride-1 convolution that computes that
    convolution's input gradient: channels swapped, flipped in space. (A stride-1 ``ConvTranspose``
    is the ``Conv`` with these kernels.)"""
    return np.ascontiguousarray(kernels.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
