"""``nst batch``: contents x styles on a Dask cluster, and the options batch and video share."""
from __future__ import annotations

import sys
from pathlib import Path

from engine.errors import Stopped, UsageError
from engine.options import add_count, add_engine_options, add_settings_options, add_weights_option, settings_from_args

# workers hold no TensorFlow: they run the exported models
CLUSTER_DEFAULTS = {"step_engine": "ort", "targets": "ort"}


def add_cluster_options(p) -> None:
    add_count(p, "--workers", help="processes of the local cluster, one thread each (default: every core)")
    p.add_argument("--scheduler", metavar="tcp://HOST:8786",
                   help="use a Dask cluster someone runs instead of a local one on 127.0.0.1")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")
    add_engine_options(p)
    add_weights_option(p)


def cluster_settings(args):
    """The settings of a batch or a video, which run the exported models on workers."""
    settings = settings_from_args(args)
    if settings.init == "image":
        raise UsageError("--init takes content or noise here (an init image is per picture)")
    if settings.step_engine != "ort" or settings.targets != "ort":
        raise UsageError("batch and video run the exported models: --step-engine ort and --targets ort")
    return settings


def add_parser(sub) -> None:
    p = sub.add_parser("batch", help="every content image in every style, on a Dask cluster",
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
    add_count(p, "--retries", at_least=0, default=2, help="tries again for a picture whose run failed or whose "
                                                           "worker died under it (killed, out of memory)")
    add_settings_options(p, **CLUSTER_DEFAULTS)
    add_cluster_options(p)
    p.set_defaults(run=run)


def run(args) -> int:
    try:
        from .cluster import connect
        from .jobs import BatchError, expand, make_jobs
        from .run import BatchInterrupted, export_first, run_batch, summary
    except ImportError as exc:
        raise UsageError(f"batch needs the cluster extra (pip install -e \".[cluster]\"): {exc}") from None
    from engine.images import bundled
    settings = cluster_settings(args)
    try:
        contents = expand(args.contents)
        styles = expand(args.style) if args.style else [p for p in bundled("style") if p.stem == "starry_night"]
        settings.check_styles(len(styles) if args.blend else 1)
        out_dir = Path(args.output_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        from models.weights import load_weights
        weights = load_weights(args.weights)
        jobs = make_jobs(contents, styles, settings, out_dir, blend=args.blend, weights=weights.sha256)
    except BatchError as exc:
        raise UsageError(str(exc)) from None
    log = (lambda *a: None) if args.quiet else (lambda message: print(message, file=sys.stderr))
    provider = "cpu" if args.provider == "auto" else args.provider
    export_first(settings, weights, provider, log)
    with connect(args.scheduler, args.workers, weights=args.weights, provider=provider) as client:
        try:
            results = run_batch(client, jobs, retries=args.retries, quiet=args.quiet)
        except BatchInterrupted as exc:
            print(summary(exc.results))
            raise Stopped("interrupted: run the same command again to make the rest") from None
    print(summary(results))
    return 1 if any(r.status == "failed" for r in results) else 0
