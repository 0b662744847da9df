"""``nst parity``: TensorFlow vs ONNX Runtime features, per layer, against a tolerance."""
from __future__ import annotations

from pathlib import Path

from engine.errors import UsageError
from engine.options import add_weights_option


def add_parser(sub) -> None:
    p = sub.add_parser("parity", help="compare TensorFlow and ONNX Runtime features, per layer",
                       description="Run TensorFlow and ONNX Runtime on the same real and random images at several "
                                   "sizes and print per layer the max absolute and max relative error (max abs "
                                   "error / max abs value). Exits 1 when a tolerance is exceeded.")
    p.add_argument("--model", help="the .onnx to check (default: export the default spec)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32")
    p.add_argument("--provider", choices=("auto", "cpu", "cuda"), default="cpu")
    p.add_argument("--tf32", action="store_true", help="allow TF32 on CUDA (tolerance 2e-3)")
    p.add_argument("--pooling", choices=("avg", "max"), default="avg")
    p.add_argument("--sizes", help="HxW list, e.g. 64x64,333x517 (default: 64x64,256x256,333x517,512x512)")
    p.add_argument("--tolerance", type=float, help="override the precision's tolerance")
    p.add_argument("--save-reference", metavar="FILE.npz", help="only compute and save the TensorFlow side")
    p.add_argument("--reference", metavar="FILE.npz",
                   help="check against a saved TensorFlow side (no TensorFlow needed)")
    p.add_argument("--json", metavar="FILE", help="also write the table as JSON")
    add_weights_option(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from engine.ort.backend import OrtFeatures

    from . import PARITY_SIZES, PRECISION_TOLERANCE, dump_json, format_report, load_reference, run_parity
    sizes = PARITY_SIZES
    if args.sizes:
        try:
            sizes = tuple(tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(","))
        except ValueError:
            raise UsageError(f"--sizes {args.sizes!r}: expected sizes like 64x64,333x517") from None
    if args.reference:
        spec, cases = load_reference(args.reference)
        model = Path(args.model) if args.model else None
        reference_name = f"saved TensorFlow reference {args.reference}"
    else:
        from engine.spec import DEFAULT_LAYERS, FeatureSpec
        from engine.store import ArtifactStore
        from engine.tf.backend import TfFeatures
        from models.weights import load_weights

        from . import parity_images
        weights = load_weights(args.weights)
        spec = FeatureSpec(weights.sha256, DEFAULT_LAYERS, args.pooling)
        reference = TfFeatures(spec, weights)
        if args.save_reference:
            from . import save_reference
            count = save_reference(args.save_reference, spec, reference, sizes)
            print(f"saved TensorFlow outputs for {count} images to {args.save_reference}")
            return 0
        model = Path(args.model) if args.model else ArtifactStore().feature_model(spec, args.precision)
        cases = [(image, reference(image[None])) for size in sizes for image in parity_images(size)]
        reference_name = reference.describe()
    if model is None:
        raise UsageError("--reference needs --model (the .onnx file to check)")
    options = {"use_tf32": "1" if args.tf32 else "0"}
    candidate = OrtFeatures(model, spec=spec, provider=args.provider, cuda_options=options)
    tf32 = candidate.provider == "cuda" and args.tf32 and candidate.precision == "fp32"
    precision = "tf32" if tf32 else candidate.precision
    tolerance = args.tolerance or PRECISION_TOLERANCE[precision]
    ok, report = run_parity(cases, candidate, tolerance)
    print(f"reference: {reference_name}\ncandidate: {candidate.describe()} ({model})")
    print(format_report(report, tolerance))
    worst = max(r["max_rel"] for r in report)
    print(f"{'PASS' if ok else 'FAIL'}: worst max relative error {worst:.2e}, tolerance {tolerance:.0e} ({precision})")
    if args.json:
        dump_json(args.json, {"ok": ok, "provider": candidate.provider, "precision": precision,
                              "tolerance": tolerance, "rows": report})
    return 0 if ok else 1
