"""Labelling and writing exported ONNX files, the same way for every exporter."""
from __future__ import annotations

import json
from pathlib import Path

from models.keras_vgg19 import keras, tf  # first: it imports TensorFlow quietly

import onnx  # noqa: E402
import tf2onnx  # noqa: E402

from models.atomic import atomic_path  # noqa: E402

OPSET = 17


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
