"""The VGG19 trunk as a Keras model on given weights, cut at the deepest layer asked for."""
from __future__ import annotations

import contextlib
import os

from .vgg19 import ALL_LAYERS, BGR_MEAN, deepest, layer_index


@contextlib.contextmanager
def _native_stderr_silenced():
    """TensorFlow's native libraries log 'could not find cuda drivers' on every CPU-only import,
    before any log level applies; hide the C-level stderr for the import alone."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# Level 3 also hides 'failed call to cuInit' on machines without a GPU; set it to 0 to debug.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
with _native_stderr_silenced():
    import keras
    import tensorflow as tf


def preprocess(rgb01):
    """``vgg19.preprocess_input(rgb01 * 255)``: RGB [0, 1] -> BGR minus the ImageNet mean."""
    return tf.reverse(rgb01, axis=[-1]) * 255.0 - tf.constant(BGR_MEAN, rgb01.dtype)


def build_trunk(weights, layers, pooling: str = "avg", dtype: str = "float32") -> keras.Model:
    """A frozen model: preprocessed BGR ``(N, H, W, 3)`` -> dict of the named layers' outputs.

    ``dtype="float64"`` builds the reference that float32 gradients are judged against;
    ``"mixed_bfloat16"`` computes the convolutions in bfloat16 (oneDNN's kernels on a CPU with
    AVX512_BF16 or AMX), taking and giving float32."""
    pool = {"avg": keras.layers.AveragePooling2D, "max": keras.layers.MaxPooling2D}[pooling]
    mixed = dtype.startswith("mixed_")
    inputs = keras.Input((None, None, 3), name="bgr", dtype="float32" if mixed else dtype)
    x, outputs = inputs, {}
    for name in ALL_LAYERS[:layer_index(deepest(layers)) + 1]:
        if name.endswith("pool"):
            x = pool(2, strides=2, name=name, dtype=dtype)(x)
        else:
            conv = keras.layers.Conv2D(weights.kernels[name].shape[-1], 3, padding="same",
                                       activation="relu", name=name, dtype=dtype)
            x = conv(x)
            conv.set_weights([weights.kernels[name], weights.biases[name]])
        if name in layers:   # the losses stay in float32: a Gram sums a whole feature map
            outputs[name] = keras.layers.Activation("linear", name=f"{name}_float32", dtype="float32")(x) \
                if mixed else x
    model = keras.Model(inputs, outputs, name=f"vgg19_{pooling}_to_{deepest(layers)}")
    model.trainable = False
    return model
