"""The style-transfer objective as a value-and-gradient function (TensorFlow GradientTape).

The optimizers in ``engine.optimize`` see only ``f(x) -> (loss, gradient, parts)`` on numpy
arrays, so another step engine (``engine.ort_step``) can stand in for this one without them knowing.
"""
from __future__ import annotations

import numpy as np

from models.keras_vgg19 import preprocess, tf

from . import losses


def objective_parts(trunk, image, *, grams: dict, contents: dict, style_layers: dict, content_layers: dict,
                    loss_weights):
    """``J = content_weight * Σ w_l J_content,l + style_weight * Σ w_l J_style,l + tv_weight * J_var``.

    The one definition of the objective: ``TfObjective`` calls it with constants, the exported
    ONNX step (``exporter.step``) with graph inputs. ``grams``, ``contents`` and the per-layer
    weights are keyed by layer name; ``loss_weights`` is (content, style, tv). With the seed's
    layers, even style weights and (1e4, 1, 10) this is exactly ``NST.total_cost``.
    Returns ``(total, j_content, j_style, j_var)``.
    """
    features = trunk(preprocess(image))
    zero = tf.constant(0.0, image.dtype)
    j_style = (losses.style_cost([features[n] for n in style_layers], [grams[n] for n in style_layers],
                                 [style_layers[n] for n in style_layers]) if style_layers else zero)
    j_content = (tf.add_n([content_layers[n] * losses.content_cost(features[n], contents[n])
                           for n in content_layers]) if content_layers else zero)
    j_var = losses.variational_cost(image)
    total = loss_weights[0] * j_content + loss_weights[1] * j_style + loss_weights[2] * j_var
    return total, j_content, j_style, j_var


class TfObjective:
    """``objective_parts`` with fixed targets, value and gradient by GradientTape.

    One instance serves one image size: the step is compiled (XLA when ``jit``) for that shape.
    ``dtype`` float64 gives the reference that the float32 engines are judged against.
    """

    def __init__(self, trunk, *, style_layers: dict, content_layers: dict, gram_targets: dict,
                 content_targets: dict, content_weight: float, style_weight: float, tv_weight: float,
                 shape, jit: bool = True, dtype=tf.float32):
        self.shape, self.dtype = tuple(shape), dtype
        grams = {n: tf.constant(np.asarray(gram_targets[n])[None], dtype) for n in style_layers}
        contents = {n: tf.constant(content_targets[n], dtype) for n in content_layers}
        style_w = {n: float(w) for n, w in style_layers.items()}
        content_w = {n: float(w) for n, w in content_layers.items()}
        loss_weights = tuple(float(w) for w in (content_weight, style_weight, tv_weight))

        @tf.function(jit_compile=jit, input_signature=[tf.TensorSpec(self.shape, dtype)])
        def value_and_grad(image):
            with tf.GradientTape() as tape:
                tape.watch(image)
                total, j_content, j_style, j_var = objective_parts(
                    trunk, image, grams=grams, contents=contents, style_layers=style_w,
                    content_layers=content_w, loss_weights=loss_weights)
            return total, tape.gradient(total, image), j_content, j_style, j_var

        self._step = value_and_grad
        self._jit = jit

    def describe(self) -> str:
        return f"TensorFlow {tf.__version__} GradientTape ({'XLA' if self._jit else 'tf.function'}, CPU)"

    def __call__(self, image: np.ndarray):
        total, grad, j_content, j_style, j_var = self._step(tf.constant(image, self.dtype))
        return float(total), grad.numpy(), {"content": float(j_content), "style": float(j_style),
                                            "tv": float(j_var)}
