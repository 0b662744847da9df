"""The style-transfer objective as a value-and-gradient function (TensorFlow GradientTape).

The optimizers in ``engine.optimize`` see only ``f(x) -> (loss, gradient, parts)`` on numpy
arrays, so another step engine (``engine.ort.step``) can stand in for this one without them knowing.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from models.keras_vgg19 import preprocess, tf

from . import losses, style_losses
from ..spec import STYLE_INPUTS, step_feeds


def objective_parts(trunk, image, *, grams: dict, contents: dict, style_layers: dict, content_layers: dict,
                    loss_weights, style_masks: dict | None = None, content_masks: dict | None = None,
                    region_weights=None, style_loss: str = "gram"):
    """``J = content_weight * Σ w_l J_content,l + style_weight * Σ w_l J_style,l + tv_weight * J_var``.

    The one definition of the objective: ``TfStep`` calls it with bound targets, the exported
    ONNX step (``exporter.step``) with graph inputs. ``grams`` ``(R, c, c)``, ``contents``, the
    masks (``engine.masks.layer_masks``) and the per-layer weights are keyed by layer name;
    ``region_weights`` ``(R,)`` weigh the style regions; ``loss_weights`` is (content, style, tv).
    Without masks (None) the loss is the unmasked one, the same number as one region of ones
    computed without the masks' passes over every feature map. ``style_loss`` ``w2`` or
    ``sliced``: ``grams`` holds, by layer, that loss's targets by input kind
    (``engine.spec.STYLE_INPUTS``; masks are for the Gram loss only). With the seed's layers, even
    style weights and (1e4, 1, 10) this is exactly ``NST.total_cost``. Returns ``(total,
    j_content, j_style, j_var)``.
    """
    features = trunk(preprocess(image))
    zero = tf.constant(0.0, image.dtype)

    def style(n):
        if style_loss == "w2":
            return style_losses.w2_layer_cost(features[n], grams[n]["mean"], grams[n]["cov_sqrt"])
        if style_loss == "sliced":
            return style_losses.sliced_layer_cost(features[n], grams[n]["projection"], grams[n]["sorted"])
        if style_masks is None:
            return losses.layer_style_cost(features[n], grams[n])
        return losses.masked_layer_style_cost(features[n], style_masks[n], grams[n], region_weights)

    def content(n):
        if content_masks is None:
            return losses.content_cost(features[n], contents[n])
        return losses.masked_content_cost(features[n], contents[n], content_masks[n])

    j_style = tf.add_n([style_layers[n] * style(n) for n in style_layers]) if style_layers else zero
    j_content = tf.add_n([content_layers[n] * content(n) for n in content_layers]) if content_layers else zero
    j_var = losses.variational_cost(image)
    total = loss_weights[0] * j_content + loss_weights[1] * j_style + loss_weights[2] * j_var
    return total, j_content, j_style, j_var


def value_and_gradient(trunk, image, *, grams: dict, contents: dict, style_masks: dict | None,
                       content_masks: dict | None, region_weights, style_layers, content_layers, style_weights,
                       content_weights, loss_weights, style_loss: str = "gram"):
    """``(total, d total / d image, j_content, j_style, j_var)``, the per-layer weights given as
    tensors in the order of ``style_layers`` and ``content_layers``: how both step engines take
    them (``TfStep`` as inputs of its compiled function, the exporter as graph inputs)."""
    with tf.GradientTape() as tape:
        tape.watch(image)
        total, j_content, j_style, j_var = objective_parts(
            trunk, image, grams=grams, contents=contents, style_masks=style_masks, content_masks=content_masks,
            region_weights=region_weights,
            style_layers={n: style_weights[i] for i, n in enumerate(style_layers)},
            content_layers={n: content_weights[i] for i, n in enumerate(content_layers)},
            loss_weights=loss_weights, style_loss=style_loss)
    return total, tape.gradient(total, image), j_content, j_style, j_var


def step_from_feeds(trunk, image, feeds: dict, style_layers, content_layers):
    """``value_and_gradient`` with its targets and weights as ``step_feeds`` names them: how the
    TensorFlow step calls it, and what the exporter traces into the step graph. Feeds without
    ``region_weights`` are those of a step without masks; the style loss is the one whose inputs
    the feeds hold."""
    masked = "region_weights" in feeds
    kind = next((k for k, names in STYLE_INPUTS.items() if all(f"{m}.{n}" in feeds for n in style_layers for m in names)),
                "gram")
    if kind == "gram":
        grams = {n: feeds[f"gram.{n}"] for n in style_layers}
    else:
        grams = {n: {m: feeds[f"{m}.{n}"] for m in STYLE_INPUTS[kind]} for n in style_layers}
    return value_and_gradient(
        trunk, image, grams=grams, style_loss=kind,
        contents={n: feeds[f"content.{n}"] for n in content_layers},
        style_masks={n: feeds[f"mask.{n}"] for n in style_layers} if masked else None,
        content_masks={n: feeds[f"content_mask.{n}"] for n in content_layers} if masked else None,
        region_weights=feeds.get("region_weights"), style_layers=style_layers, content_layers=content_layers,
        style_weights=feeds["style_layer_weights"], content_weights=feeds["content_layer_weights"],
        loss_weights=feeds["loss_weights"])


class TfStep:
    """``objective_parts`` by ``GradientTape``: the reference step engine, with ``OrtStep``'s interface.

    The targets and weights are inputs of the compiled function, not constants in it, so one
    instance serves every run and scale of its layers: ``bind_targets`` once per scale, then call.
    XLA (``jit``) compiles once per image size. ``dtype`` float64 gives the reference that the
    float32 engines are judged against.
    """

    def __init__(self, trunk, *, style_layers, content_layers, jit: bool = True, dtype=tf.float32,
                 style_loss: str = "gram"):
        self.style_layers, self.content_layers = tuple(style_layers), tuple(content_layers)
        self.style_loss = style_loss
        self.dtype, self._jit = dtype, jit
        self._bound = None

        # without XLA, shapes generalise after a few: tiles of many sizes do not each trace anew
        @tf.function(jit_compile=jit, reduce_retracing=not jit)
        def step(image, feeds):
            return step_from_feeds(trunk, image, feeds, self.style_layers, self.content_layers)

        self._step = step

    def bind_targets(self, targets) -> None:
        """As ``OrtStep.bind_targets`` (the same ``Targets``, made into the same feeds by ``step_feeds``)."""
        if (set(targets.style_layers) != set(self.style_layers)
                or set(targets.content_layers) != set(self.content_layers)):
            raise ValueError("the targets' layers differ from this step's")
        masked = any(v is not None for v in (targets.style_masks, targets.content_mask, targets.region_weights))
        spec = SimpleNamespace(style_layers=self.style_layers, content_layers=self.content_layers, masked=masked,
                               style_loss=self.style_loss)
        self._bound = {name: tf.constant(value, self.dtype) for name, value in step_feeds(spec, targets).items()}

    def describe(self) -> str:
        return f"TensorFlow {tf.__version__} GradientTape ({'XLA' if self._jit else 'tf.function'}, CPU)"

    def __call__(self, image: np.ndarray):
        if self._bound is None:
            raise RuntimeError("bind_targets() first")
        total, grad, j_content, j_style, j_var = self._step(tf.constant(image, self.dtype), self._bound)
        return float(total), grad.numpy(), {"content": float(j_content), "style": float(j_style),
                                            "tv": float(j_var)}
