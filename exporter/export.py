"""Keras VGG19 feature extractor -> ONNX, once: convert, check, label, verify parity."""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.keras_vgg19 import build_trunk, keras, tf  # first: it imports TensorFlow quietly

import onnx  # noqa: E402

from engine.ort.backend import METADATA_SPEC, OrtFeatures  # noqa: E402
from engine.spec import FeatureSpec  # noqa: E402
from engine.store import ArtifactStore, feature_mismatch  # noqa: E402
from engine.tf.backend import TfFeatures  # noqa: E402
from models.vgg19 import BGR_MEAN  # noqa: E402
from parity import PRECISION_TOLERANCE, compare, parity_images  # noqa: E402

from .onnx_file import convert, label, write_atomically  # noqa: E402

PRECISIONS = ("fp32", "fp16", "int8")
CHECK_SIZES = ((96, 128), (133, 97))


class ExportError(RuntimeError):
    """The export could not be made or failed its checks."""


@dataclass
class ExportResult:
    path: Path
    spec: FeatureSpec
    precision: str
    reused: bool
    seconds: float = 0.0
    max_rel_error: float | None = None   # worst layer, TensorFlow vs ONNX Runtime CPU
    checks: list = field(default_factory=list)


def feature_function(spec: FeatureSpec, weights, dtype=tf.float32):
    """The graph to convert: RGB [0, 1] NHWC -> dict of layer outputs (float32).

    The preprocessing is folded into the first convolution: flipping RGB to BGR and the
    factor 255 go into its kernel; the mean is subtracted (as ``mean / 255`` in RGB order)
    before it, so the zero padding sees exactly what ``preprocess_input`` gives it."""
    trunk = build_trunk(weights, spec.layers, spec.pooling)
    first = trunk.get_layer("block1_conv1")
    kernel, bias = first.get_weights()
    first.set_weights([kernel[:, :, ::-1, :] * 255.0, bias])
    if dtype != tf.float32:
        config = trunk.get_config()
        for layer in config["layers"]:
            layer["config"]["dtype"] = "float16"
        half = keras.Model.from_config(config)
        half.set_weights([w.astype(np.float16) for w in trunk.get_weights()])
        trunk = half
    rgb_mean = np.array(BGR_MEAN[::-1], np.float32) / 255.0  # a numpy constant, not a captured input

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32, name="image")])
    def features(image):
        outputs = trunk(tf.cast(image - rgb_mean, dtype))
        return {name: tf.cast(outputs[name], tf.float32, name=name) for name in spec.layers}

    return features


def _label(model: onnx.ModelProto, spec: FeatureSpec, precision: str, extra: dict) -> None:
    label(model, {METADATA_SPEC: spec.to_json(), "nst.weights_sha256": spec.weights_sha256,
                  "nst.precision": precision, "nst.input": "image: float32 (N, H, W, 3) RGB in [0, 1]",
                  "nst.outputs": "float32 (N, h, w, c) per layer, after ReLU (or pooling)", **extra},
          f"VGG19 feature extractor: {spec.describe()}")


def _quantize_int8(fp32_path: Path) -> onnx.ModelProto:
    """Static QDQ quantization of the convolutions, calibrated on the bundled images and noise.

    ``reduce_range`` (7-bit weights): without VNNI, AVX2's u8 x s8 multiply-add saturates in
    16 bits; measured here, full-range weights gave 0.24-0.58 max relative error, 7-bit 0.015-0.09."""
    import logging

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from engine.images import as_float, bundled, load_image, resize_longest

    images = [as_float(resize_longest(load_image(p), 160)) for p in bundled("content") + bundled("style")]
    images += [np.random.default_rng(seed).random((160, 160, 3), dtype=np.float32) for seed in (1, 2)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"image": image[None]} for image in images])

        def get_next(self):
            return next(self.batches, None)

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer warns through the root logger on every call
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "int8.onnx"
            quantize_static(str(fp32_path), str(out), Reader(), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            per_channel=True, reduce_range=True, op_types_to_quantize=["Conv"])
            return onnx.load(str(out))
    finally:
        root.setLevel(level)


def check_parity(path: Path, spec: FeatureSpec, reference: TfFeatures) -> tuple[float, list]:
    """TensorFlow vs ONNX Runtime CPU on a real and a random image at two sizes."""
    engine = OrtFeatures(path, spec=spec, provider="cpu")
    worst, checks = 0.0, []
    for size in CHECK_SIZES:
        for kind, image in zip(("example", "random"), parity_images(size)):
            rows = compare(reference(image[None]), engine(image[None]))
            err = max(r["max_rel"] for r in rows)
            checks.append({"size": size, "image": kind, "max_rel": err})
            worst = max(worst, err)
    return worst, checks


def export(spec: FeatureSpec, weights, path=None, *, precision: str = "fp32", force: bool = False,
           check: bool = True, log=print) -> ExportResult:
    """Write the ONNX model for ``spec`` (reused when it exists, unless ``force``)."""
    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    path = Path(path) if path else ArtifactStore().feature_path(spec, precision)
    if path.exists() and not force:
        mismatch = feature_mismatch(path, spec, precision)
        if mismatch is None:
            return ExportResult(path, spec, precision, reused=True)
        log(f"replacing it: {mismatch}")
    start = time.perf_counter()
    if precision == "int8":
        fp32 = export(spec, weights, ArtifactStore(path.parent).feature_path(spec, "fp32"), check=check, log=log)
        model = _quantize_int8(fp32.path)
    else:
        dtype = tf.float16 if precision == "fp16" else tf.float32
        signature = [tf.TensorSpec((None, None, None, 3), tf.float32, name="image")]
        model = convert(feature_function(spec, weights, dtype), signature)
    onnx.checker.check_model(model)
    _label(model, spec, precision, {})
    write_atomically(model, path)
    result = ExportResult(path, spec, precision, reused=False)
    if check:
        reference = TfFeatures(spec, weights)
        result.max_rel_error, result.checks = check_parity(path, spec, reference)
        tolerance = PRECISION_TOLERANCE[precision]
        if result.max_rel_error > tolerance:
            path.unlink()
            raise ExportError(f"parity check failed: max relative error {result.max_rel_error:.2e} "
                              f"exceeds {tolerance:.0e} for {precision}; the export was removed")
        model = onnx.load(str(path))
        _label(model, spec, precision, {"nst.parity_max_rel_error_cpu": f"{result.max_rel_error:.3e}"})
        write_atomically(model, path)
    result.seconds = time.perf_counter() - start
    return result
