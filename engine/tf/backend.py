"""The TensorFlow feature backend: the reference the ONNX export is checked against."""
from __future__ import annotations

import numpy as np

from models.keras_vgg19 import build_trunk, preprocess, tf

from ..spec import FeatureSpec


class TfFeatures:
    """RGB float32 ``(N, H, W, 3)`` in [0, 1] -> ``{layer: array}``, by TensorFlow."""

    provider = "cpu"
    precision = "fp32"

    def __init__(self, spec: FeatureSpec, weights):
        if weights.sha256 != spec.weights_sha256:
            raise ValueError("the weights given are not the ones the spec names")
        self.spec = spec
        self.trunk = build_trunk(weights, spec.layers, spec.pooling)
        self.function = tf.function(
            lambda image: self.trunk(preprocess(image)),
            input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32, name="image")])

    def __call__(self, images) -> dict[str, np.ndarray]:
        array = np.asarray(images, np.float32)
        if array.ndim == 3:
            array = array[None]
        return {name: value.numpy() for name, value in self.function(tf.constant(array)).items()}

    def describe(self) -> str:
        return f"TensorFlow {tf.__version__} (CPU, fp32)"
