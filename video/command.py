"""``nst video``: a video, frame by frame, without flicker, of any length, resumable."""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from batch.command import CLUSTER_DEFAULTS, add_cluster_options, cluster_settings
from engine.errors import Stopped, UsageError
from engine.options import add_count, add_settings_options

STOP_MESSAGE = ("stopping after the frames in progress (the video of the frames done is written); "
                "Ctrl-C again to stop now")


def add_parser(sub) -> None:
    p = sub.add_parser("video", help="a video, frame by frame, without flicker",
                       description="Stylize each frame of a video so that it does not flicker (Ruder, Dosovitskiy "
                                   "and Brox 2016): each frame follows the previous output and an anchor, the "
                                   "oldest output that still covers half of it, both warped onto it by optical flow "
                                   "(OpenCV DIS) where the forward-backward check trusts the flow. The clip is cut "
                                   "into chunks that the cluster's workers make at once, their borders handed over "
                                   "across an overlap. Every finished frame is kept in a work folder, so the same "
                                   "command resumes a run stopped anyhow; Ctrl-C stops after the frames in "
                                   "progress and writes the video of the frames done. Audio is copied where the "
                                   "container takes it, else re-encoded to AAC.")
    p.add_argument("input", help="the video to stylize")
    p.add_argument("--style", nargs="+", help="style image(s) (default: the bundled style/starry_night.jpg)")
    p.add_argument("-o", "--output", default="out.mp4", help="the stylized video: .mp4, .mkv or .mov (H.264)")
    p.add_argument("--temporal-weight", type=float, default=1e11,
                   help="weight of the temporal loss (images in [0, 1], mean over values; the content and "
                        "style losses are ~1e8 here); 0 stylizes each frame on its own")
    p.add_argument("--frames", metavar="A:B", help="only frames A (counted from 0) up to B, not included")
    p.add_argument("--work-dir", metavar="DIR", help="where finished frames are kept until the video is done "
                                                     "(default: OUTPUT.frames beside the output)")
    p.add_argument("--keep-frames", action="store_true", help="keep the work folder when the video is done")
    add_count(p, "--chunks", help="parts of the clip made at once (default: one per worker; a resumed run keeps "
                                  "the first run's)")
    add_count(p, "--overlap", at_least=0, help="frames over which one chunk hands over to the next (made twice, "
                                               "the second time with a quarter of the evaluations; default: half "
                                               "a chunk, 8 to 48)")
    add_settings_options(p, **CLUSTER_DEFAULTS, size=256)
    add_cluster_options(p)
    p.set_defaults(run=run)


def run(args) -> int:
    try:
        from batch.run import export_first

        from .cluster import connect
        from engine.interrupt import CtrlC
        from .io import VideoError, parse_range
        from .run import Temporal, prepare
        from .run import run as run_video
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

    @contextlib.contextmanager
    def video_job(workers: int):
        """The video's job, its work folder held until the block ends."""
        job = prepare(args.input, args.output, styles, settings, temporal=Temporal(weight=args.temporal_weight),
                      frames_range=args.frames, chunks=args.chunks or workers, adopt_chunks=args.chunks is None,
                      overlap=args.overlap, work_dir=args.work_dir)
        try:
            yield job
        finally:
            job.work.close()

    with contextlib.ExitStack() as stack:
        job = None
        if args.scheduler is None:   # input, output, settings and work folder checked before the cluster starts
            job = stack.enter_context(video_job(args.workers or os.cpu_count() or 1))
        export_first(settings, args.weights, provider, log)   # here: workers only load the models
        ctrl_c = stack.enter_context(CtrlC(log, STOP_MESSAGE))
        client = stack.enter_context(connect(args.scheduler, args.workers, weights=args.weights, provider=provider))
        if job is None:
            job = stack.enter_context(video_job(len(client.scheduler_info()["workers"]) or 1))
        report = run_video(client, job, keep_frames=args.keep_frames, stop=ctrl_c.event, quiet=args.quiet, log=log)
    where = f"{report.width}x{report.height} at {report.fps:g} fps, {report.chunks} chunk(s)"
    if report.interrupted:
        held = f"; the frames made are kept in {report.work_dir}" if report.work_dir else ""
        video = f"{args.output} holds the first {report.frames} of {report.total} frames" if report.written else \
            "no frame was final yet, so no video was written"
        raise Stopped(f"interrupted: {video} ({where}){held}; the same command resumes")
    print(f"done: {report.frames} frames {where} in {report.seconds:.1f} s ({report.made} made, {report.resumed} "
          f"resumed); audio: {report.audio}; wrote {args.output}")
    return 0
