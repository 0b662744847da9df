"""The whole loss-and-gradient step -> ONNX, once per (spec, image size): the TensorFlow-free step engine.

The graph is traced from ``engine.objective.objective_parts``, the same code the TensorFlow
step runs, under a ``GradientTape``; tf2onnx converts it with ``exporter.grad_ops`` for the four
gradient ops it lacks. Its inputs are the image (RGB [0, 1], NHWC, fixed size), the content
targets, the style Gram matrices and the weights (per layer and per loss); its outputs are the
total loss, its parts and the gradient with respect to the image.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.keras_vgg19 import build_trunk, preprocess, tf  # first: it imports TensorFlow quietly

import onnx  # noqa: E402
import tf2onnx  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402

from engine.losses import gram_matrix  # noqa: E402
from engine.objective import objective_parts  # noqa: E402
from engine.onnx_graph import attributes, input_gradient_kernels, remove_unused_initializers, use_counts  # noqa: E402
from engine.ort_backend import METADATA_STEP  # noqa: E402
from engine.spec import StepSpec  # noqa: E402

from .cache import step_mismatch, step_path  # noqa: E402
from .grad_ops import HANDLERS  # noqa: E402
from .onnx_file import OPSET, label, write_atomically  # noqa: E402

# Checked at export against the very tf.function that was converted, on random inputs. The
# graphs compute the same sums in other orders; float32 rounding differs by about 1e-5 of the
# loss and 2e-4 of the gradient at 512 px (the tests judge both against float64).
LOSS_TOLERANCE = 1e-4
GRAD_TOLERANCE = 2e-3


class StepExportError(RuntimeError):
    """The step graph could not be made or failed its check."""


@dataclass
class StepExportResult:
    path: Path
    spec: StepSpec
    reused: bool
    seconds: float = 0.0
    loss_rel_error: float | None = None
    grad_rel_error: float | None = None


def input_names(spec: StepSpec) -> list[str]:
    return (["image"] + [f"content.{n}" for n in spec.content_layers] + [f"gram.{n}" for n in spec.style_layers]
            + ["style_layer_weights", "content_layer_weights", "loss_weights"])


def step_function(spec: StepSpec, weights):
    """The ``tf.function`` to convert, with its input signature (all shapes fixed)."""
    trunk = build_trunk(weights, spec.features.layers, spec.features.pooling)
    shapes = {n: tuple(t.shape) for n, t in trunk(tf.zeros((1, spec.height, spec.width, 3))).items()}
    names = input_names(spec)
    signature = ([tf.TensorSpec((1, spec.height, spec.width, 3), tf.float32)]
                 + [tf.TensorSpec(shapes[n], tf.float32) for n in spec.content_layers]
                 + [tf.TensorSpec((1, shapes[n][-1], shapes[n][-1]), tf.float32) for n in spec.style_layers]
                 + [tf.TensorSpec((len(spec.style_layers),), tf.float32),
                    tf.TensorSpec((len(spec.content_layers),), tf.float32), tf.TensorSpec((3,), tf.float32)])
    signature = [tf.TensorSpec(s.shape, s.dtype, name=n) for s, n in zip(signature, names)]
    n_content, n_style = len(spec.content_layers), len(spec.style_layers)

    @tf.function(input_signature=signature)
    def step(image, *rest):
        contents = dict(zip(spec.content_layers, rest[:n_content]))
        grams = dict(zip(spec.style_layers, rest[n_content:n_content + n_style]))
        style_w, content_w, loss_weights = rest[n_content + n_style:]
        with tf.GradientTape() as tape:
            tape.watch(image)
            total, j_content, j_style, j_var = objective_parts(
                trunk, image, grams=grams, contents=contents,
                style_layers={n: style_w[i] for i, n in enumerate(spec.style_layers)},
                content_layers={n: content_w[i] for i, n in enumerate(spec.content_layers)},
                loss_weights=loss_weights)
        return {"loss": tf.identity(total), "content": tf.identity(j_content), "style": tf.identity(j_style),
                "tv": tf.identity(j_var), "grad": tape.gradient(total, image)}

    return step, signature, trunk


def convtranspose_as_conv(model: onnx.ModelProto) -> int:
    """Rewrite each stride-1 ``ConvTranspose`` (the input gradients of 'same' convolutions) as the
    equivalent ``Conv``: kernel flipped in space, input and output channels swapped, padding
    ``k - 1 - p``. Exact, and ONNX Runtime's CPU ``Conv`` (NCHWc) is much faster than its
    ``ConvTranspose``: the 14 of them at 512x341 took 1.53 s as ConvTranspose and about 0.7 s as
    Conv (ONNX Runtime's profiler, this 2-core machine); the whole step went 2.77 s -> 2.28 s."""
    inits = {i.name: i for i in model.graph.initializer}
    consumers = use_counts(model.graph)
    rewritten = 0
    for node in model.graph.node:
        if node.op_type != "ConvTranspose" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        attrs = attributes(node)
        if (set(attrs.get("strides", [1, 1])) != {1} or set(attrs.get("dilations", [1, 1])) != {1}
                or attrs.get("group", 1) != 1 or "output_shape" in attrs or any(attrs.get("output_padding", []))
                or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")):
            continue
        kernel = numpy_helper.to_array(inits[node.input[1]])
        kh, kw = kernel.shape[2:]
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        conv_kernel = input_gradient_kernels(kernel)
        name = f"{node.input[1]}__as_conv_{rewritten}"
        model.graph.initializer.append(numpy_helper.from_array(conv_kernel, name))
        consumers[node.input[1]] -= 1
        node.op_type = "Conv"
        del node.attribute[:]
        node.attribute.extend([
            helper.make_attribute("kernel_shape", [kh, kw]), helper.make_attribute("strides", [1, 1]),
            helper.make_attribute("dilations", [1, 1]),
            helper.make_attribute("pads", [kh - 1 - pads[0], kw - 1 - pads[1], kh - 1 - pads[2], kw - 1 - pads[3]])])
        node.input[1] = name
        rewritten += 1
    remove_unused_initializers(model.graph, consumers)
    return rewritten


def _check_inputs(spec: StepSpec, trunk, seed: int = 0) -> list[np.ndarray]:
    """Random but realistic inputs: targets computed from other random images."""
    rng = np.random.default_rng(seed)
    size = (1, spec.height, spec.width, 3)
    image, content, style = (rng.random(size, dtype=np.float32) for _ in range(3))
    content_f = trunk(preprocess(tf.constant(content)))
    style_f = trunk(preprocess(tf.constant(style)))
    return ([image] + [content_f[n].numpy() for n in spec.content_layers]
            + [gram_matrix(style_f[n]).numpy() for n in spec.style_layers]
            + [np.full(len(spec.style_layers), 1 / max(1, len(spec.style_layers)), np.float32),
               np.ones(len(spec.content_layers), np.float32), np.array([1e4, 1.0, 10.0], np.float32)])


def _label(model: onnx.ModelProto, spec: StepSpec, extra: dict) -> None:
    label(model, {
        METADATA_STEP: spec.to_json(), "nst.weights_sha256": spec.features.weights_sha256,
        "nst.inputs": "image: float32 (1, H, W, 3) RGB in [0, 1]; content.<layer>; gram.<layer> (1, c, c); "
                      "style_layer_weights; content_layer_weights; loss_weights (content, style, tv)",
        "nst.outputs": "loss, content, style, tv: float32 scalars; grad: d loss / d image, (1, H, W, 3)",
        **extra}, f"VGG19 style-transfer {spec.describe()}")


def check_step(model: onnx.ModelProto, spec: StepSpec, step, trunk) -> tuple[float, float]:
    """ONNX Runtime CPU vs the converted tf.function, same inputs: (loss, gradient) relative errors."""
    import onnxruntime as ort
    inputs = _check_inputs(spec, trunk)
    reference = step(*[tf.constant(x) for x in inputs])
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    loss, grad = session.run(["loss", "grad"], dict(zip(input_names(spec), inputs)))
    ref_loss, ref_grad = float(reference["loss"]), reference["grad"].numpy()
    loss_err = abs(float(loss) - ref_loss) / max(abs(ref_loss), 1e-30)
    grad_err = float(np.linalg.norm(grad - ref_grad) / max(np.linalg.norm(ref_grad), 1e-30))
    return loss_err, grad_err


def export_step(spec: StepSpec, weights, path=None, *, force: bool = False, check: bool = True,
                log=print) -> StepExportResult:
    """Write the step graph for ``spec`` (reused when it exists, unless ``force``)."""
    if spec.features.pooling != "avg":
        raise StepExportError("the ONNX step supports average pooling only (--pooling avg); "
                              "use --step-engine tf for max pooling")
    path = Path(path) if path else step_path(spec)
    if path.exists() and not force:
        mismatch = step_mismatch(path, spec)
        if mismatch is None:
            return StepExportResult(path, spec, reused=True)
        log(f"replacing it: {mismatch}")
    start = time.perf_counter()
    step, signature, trunk = step_function(spec, weights)
    try:
        model, _ = tf2onnx.convert.from_function(step, input_signature=signature, opset=OPSET,
                                                 custom_op_handlers=dict(HANDLERS))
    except Exception as exc:
        raise StepExportError(f"tf2onnx could not convert the step: {str(exc).splitlines()[0]}") from None
    convtranspose_as_conv(model)
    onnx.checker.check_model(model)
    result = StepExportResult(path, spec, reused=False)
    extra = {}
    if check:
        result.loss_rel_error, result.grad_rel_error = check_step(model, spec, step, trunk)
        if result.loss_rel_error > LOSS_TOLERANCE or result.grad_rel_error > GRAD_TOLERANCE:
            raise StepExportError(
                f"step check failed at {spec.width}x{spec.height}: loss error {result.loss_rel_error:.1e} "
                f"(limit {LOSS_TOLERANCE:.0e}), gradient error {result.grad_rel_error:.1e} "
                f"(limit {GRAD_TOLERANCE:.0e}) against TensorFlow; nothing was written")
        extra = {"nst.check_vs_tensorflow_cpu": json.dumps(
            {"loss_rel": result.loss_rel_error, "grad_l2_rel": result.grad_rel_error})}
    _label(model, spec, extra)
    write_atomically(model, path)
    result.seconds = time.perf_counter() - start
    return result
