"""``nst video``: a video, frame by frame, without flicker."""
from __future__ import annotations

import sys
from pathlib import Path

from batch.command import CLUSTER_DEFAULTS, add_cluster_options, cluster_settings
from engine.errors import UsageError
from engine.options import add_settings_options


def add_parser(sub) -> None:
    p = sub.add_parser("video", help="a video, frame by frame, without flicker",
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
    add_settings_options(p, **CLUSTER_DEFAULTS, size=256)
    add_cluster_options(p)
    p.set_defaults(run=run)


def run(args) -> int:
    try:
        from batch.cluster import connect

        from .io import VideoError, parse_range, probe
        from .run import check_output, stylize_video
    except ImportError as exc:
        raise UsageError(f"video needs the cluster and video extras (pip install -e \".[cluster,video]\"): "
                         f"{exc}") from None
    from engine.images import bundled, load_image
    settings = cluster_settings(args)
    if not (args.temporal_weight >= 0 and args.temporal_weight != float("inf")):   # nan too
        raise UsageError(f"--temporal-weight must be a finite number, 0 or more, not {args.temporal_weight}")
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
    check_output(args.output)
    probe(args.input)  # before the cluster starts
    with connect(args.scheduler, args.workers, weights=args.weights, provider=provider) as client:
        report = stylize_video(client, args.input, args.output, styles, settings,
                               temporal_weight=args.temporal_weight, frames=args.frames, weights=args.weights,
                               provider=provider, threads=args.threads, quiet=args.quiet, log=log)
    print(f"done: {report.frames} frames {report.width}x{report.height} at {report.fps} fps in "
          f"{report.seconds:.1f} s (flow {report.flow_seconds:.1f} s); audio {report.audio}; wrote {args.output}")
    return 0
