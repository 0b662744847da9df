"""The style-transfer objective as a value-and-gradient function (TensorFlow GradientTape).

The optimizers in ``engine.optimize`` see only ``f(x) -> (loss, gradient, parts)`` on numpy
arrays, so another step engine can stand in for this one without them knowing.
"""
from __future__ import annotations

import numpy as np

from models.keras_vgg19 import preprocess, tf

from . import losses


class TfObjective:
    """``J = content_weight * Σ w_l J_content,l + style_weight * Σ w_l J_style,l + tv_weight * J_var``.

    With the seed's layers, even style weights and (1e4, 1, 10) this is exactly ``NST.total_cost``.
    One instance serves one image size: the step is compiled (XLA when ``jit``) for that shape.
    """

    def __init__(self, trunk, *, style_layers: dict, content_layers: dict, gram_targets: dict,
                 content_targets: dict, content_weight: float, style_weight: float, tv_weight: float,
                 shape, jit: bool = True):
        self.shape = tuple(shape)
        style_names = list(style_layers)
        content_names = list(content_layers)
        grams = [tf.constant(gram_targets[n][None], tf.float32) for n in style_names]
        contents = [tf.constant(content_targets[n], tf.float32) for n in content_names]
        style_w = [float(style_layers[n]) for n in style_names]
        content_w = [float(content_layers[n]) for n in content_names]
        weights = tuple(float(w) for w in (content_weight, style_weight, tv_weight))

        def parts(image):
            features = trunk(preprocess(image))
            j_style = (losses.style_cost([features[n] for n in style_names], grams, style_w)
                       if style_names else tf.constant(0.0))
            j_content = (tf.add_n([w * losses.content_cost(features[n], t)
                                   for n, t, w in zip(content_names, contents, content_w)])
                         if content_names else tf.constant(0.0))
            j_var = losses.variational_cost(image)
            total = weights[0] * j_content + weights[1] * j_style + weights[2] * j_var
            return total, j_content, j_style, j_var

        @tf.function(jit_compile=jit, input_signature=[tf.TensorSpec(self.shape, tf.float32)])
        def value_and_grad(image):
            with tf.GradientTape() as tape:
                tape.watch(image)
                total, j_content, j_style, j_var = parts(image)
            return total, tape.gradient(total, image), j_content, j_style, j_var

        self._step = value_and_grad

    def __call__(self, image: np.ndarray):
        total, grad, j_content, j_style, j_var = self._step(tf.constant(image, tf.float32))
        return float(total), grad.numpy(), {"content": float(j_content), "style": float(j_style),
                                            "tv": float(j_var)}


def gram_numpy(features: np.ndarray) -> np.ndarray:
    """Gram matrix of ``(1, h, w, c)`` features divided by ``h * w``, as ``losses.gram_matrix``."""
    _, h, w, c = features.shape
    flat = features.reshape(h * w, c).astype(np.float32)
    return (flat.T @ flat) / np.float32(h * w)
