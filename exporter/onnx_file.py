"""Converting, labelling and writing ONNX files, the same way for every exporter."""
from __future__ import annotations

import contextlib
import gc
import json
from pathlib import Path

from models.keras_vgg19 import keras, tf  # first: it imports TensorFlow quietly

import onnx  # noqa: E402
import tf2onnx  # noqa: E402

from models.atomic import atomic_path  # noqa: E402

OPSET = 17


def convert(function, signature, handlers=None) -> onnx.ModelProto:
    """``function`` (a ``tf.function``) at ``signature`` -> an ONNX model at ``OPSET``."""
    with _collected_between_passes():
        model, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=OPSET,
                                                 custom_op_handlers=dict(handlers or {}))
    return model


@contextlib.contextmanager
def _collected_between_passes():
    """A garbage collection before each of tf2onnx's optimizer passes. Each pass starts from a deep
    copy of the whole graph, weights included, and the copies it leaves are reference cycles that
    Python's collector keeps for long (it rarely runs full collections): a step export peaked at
    6.9 GB here, 2.2 GB with this, in the same time. tf2onnx offers no hook for it, so its table
    of passes is wrapped for the conversion (left alone if a later version names it otherwise)."""
    from tf2onnx import optimizer
    passes = getattr(optimizer, "_optimizers", None)
    if not isinstance(passes, dict):
        yield
        return

    def collecting(factory):
        def make():
            gc.collect()
            return factory()
        return make

    optimizer._optimizers = type(passes)((name, collecting(factory)) for name, factory in passes.items())
    try:
        yield
    finally:
        optimizer._optimizers = passes


def label(model: onnx.ModelProto, props: dict, doc: str) -> None:
    """Replace the model's metadata with ``props`` plus the versions of the tools that made it."""
    import onnxruntime
    props = {**props, "nst.tools": json.dumps({
        "tensorflow": tf.__version__, "keras": keras.__version__, "tf2onnx": tf2onnx.__version__,
        "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "opset": OPSET})}
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=str(value))
    model.doc_string = doc


def write_atomically(model: onnx.ModelProto, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        onnx.save(model, tmp)
