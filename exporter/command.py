"""``nst export``: the VGG19 feature extractor to ONNX, once, checked and labelled."""
from __future__ import annotations

from pathlib import Path

from engine.options import add_weights_option


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="convert the VGG19 feature extractor to ONNX (once) and check it",
                       description="Convert the Keras VGG19 feature extractor to ONNX with tf2onnx (opset 17), "
                                   "run onnx.checker, label it with its spec, weights and tool versions, and check "
                                   "TensorFlow vs ONNX Runtime parity before reporting success. The model takes RGB "
                                   "float32 (N, H, W, 3) in [0, 1] and returns one output per layer.")
    p.add_argument("--layers", help="comma-separated VGG19 layers (default: the seed's style and content layers)")
    p.add_argument("--pooling", choices=("avg", "max"), default="avg")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32",
                   help="fp16: half-precision compute for CUDA, float32 in and out; int8: static QDQ "
                        "quantization calibrated on the bundled images, for CPU")
    p.add_argument("-o", "--output", help="where to write the .onnx (default: the cache directory)")
    p.add_argument("--force", action="store_true", help="export again even if the file exists")
    add_weights_option(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from engine.spec import DEFAULT_LAYERS, FeatureSpec
    from engine.store import ArtifactStore, export_lock
    from models.weights import load_weights

    from .export import export
    layers = tuple(args.layers.split(",")) if args.layers else DEFAULT_LAYERS
    weights = load_weights(args.weights)
    spec = FeatureSpec(weights.sha256, layers, args.pooling)
    print(f"weights: {weights.source}")
    path = Path(args.output) if args.output else ArtifactStore().feature_path(spec, args.precision)
    with export_lock(path):
        result = export(spec, weights, path, precision=args.precision, force=args.force)
    if result.reused:
        print(f"{result.path}: already exported for this spec (use --force to redo)")
        return 0
    print(f"exported {spec.describe()} [{args.precision}] to {result.path} in {result.seconds:.1f} s")
    print(f"parity, TensorFlow vs ONNX Runtime CPU, worst layer over {len(result.checks)} checks: "
          f"max relative error {result.max_rel_error:.2e}")
    return 0
