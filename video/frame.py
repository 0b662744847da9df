"""One frame, as a worker makes it: the optical flow from each earlier frame it follows (computed
here, beside the engine, so that no flow travels), those outputs warped onto it, the temporal loss
they make, and the engine's run from where they agree."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import flow
from .temporal import TemporalLoss


# an earlier output trusted on less of the frame than this is not followed: across a scene cut, or
# from a chunk's lead 40+ frames back on a pan, the flow is noise and its few trusted specks
# (2-6% of the frame) pasted fragments that took ~30 frames to settle (flicker 1.6-2.0 against 1.3)
MIN_COVERAGE = 0.2


@dataclass(frozen=True)
class FrameJob:
    index: int                 # the frame's number in the clip
    chunk: int
    settings: object           # engine.settings.Settings, its size the frame's longest side
    weight: float              # of the temporal loss; 0: the frame on its own
    references: tuple = ()     # the earlier frames it follows (their numbers), nearest first
    shares: tuple = ()         # each reference's weight, relative to ``weight`` (default 1 each)
    handover: float = 0.0      # in a chunk's overlap: the share of the weight on the next chunk's picture
                               # (the chunk's own references keep the rest)
    sharp: bool = False        # bicubic warps
    still: float = 0.0         # px: the references after the first count only where the picture moved less
                               # than about this since them (0: everywhere)
    one_scale: bool = False    # a frame that follows earlier outputs runs its last scale only
    effort: float = 1.0        # the share of the last scale's evaluations it runs (a bridged overlap's frames
                               # start from their targets' blend and need fewer)


@dataclass
class Made:
    index: int
    chunk: int
    image: np.ndarray = field(repr=False)   # uint8 (h, w, 3)
    notes: dict                             # what the work folder keeps beside the picture


def image_of(output) -> np.ndarray:
    return output.image if isinstance(output, Made) else output


def last_scale(settings, effort: float = 1.0):
    """``settings`` run on their last scale alone, with ``effort`` times its evaluations. A frame
    that follows earlier outputs starts from them, already at its own picture's scale: coarse scales
    would shrink that start and make it again (at 256 px, 165 evaluations a frame instead of 55 for
    the same flicker, warping error and sharpness: docs/BENCHMARKS.md)."""
    _, evaluations = settings.schedule()[-1]
    return settings.replace(scales=1, scale_iterations=(), iterations=max(1, round(evaluations * effort)),
                            scale_stop=0.0)


def make_frame(job: FrameJob, frame: np.ndarray, styles, *earlier, toward=None, stylizer=None) -> Made:
    """``earlier``: the input frame and the output of each reference, in turn (``frame_a, output_a,
    frame_b, output_b, ...``), outputs as ``Made`` or uint8 arrays. ``toward``: in an overlap, the
    next chunk's picture of this frame. ``stylizer``: the engine (default: this worker's)."""
    start = time.perf_counter()
    if stylizer is None:
        from batch.cluster import engine
        stylizer = engine()
    import cv2
    cv2.setNumThreads(stylizer.threads or 0)   # DIS would otherwise take every core of the machine
    targets, coverage = [], []
    shares = job.shares or (1.0,) * (len(earlier) // 2)
    for nth, (earlier_frame, earlier_output, share) in enumerate(zip(earlier[::2], earlier[1::2], shares)):
        backward, mask = flow.pair(earlier_frame, frame)
        if job.still and nth:   # an older output (the anchor): only where the picture stood still since
            mask = mask * np.exp(-np.sum(backward ** 2, -1) / job.still ** 2)
        coverage.append(round(float(mask.mean()), 4))
        if coverage[-1] < MIN_COVERAGE:
            continue
        targets.append((flow.warp(image_of(earlier_output), backward, sharp=job.sharp), share * mask))
    flow_seconds = time.perf_counter() - start
    if toward is not None and job.handover > 0:
        # the next chunk's picture takes the share ``handover`` of the weight at every pixel (all of it
        # where nothing earlier is trusted), the chunk's own outputs the rest
        own = sum(c for _, c in targets) if targets else np.zeros(frame.shape[:2], np.float32)
        targets = [(w, (1 - job.handover) * c) for w, c in targets]
        targets.append((image_of(toward), (job.handover * np.maximum(own, 1.0)).astype(np.float32)))
    if job.weight > 0 and targets:
        penalty = TemporalLoss(targets, job.weight)
        # where nothing earlier is trusted, the nearest output warped (its border repeated) would
        # smear into what newly came into view: start there from the frame, as a first frame does
        init = penalty.start(frame)
        settings = job.settings.replace(init="image")
        if job.one_scale or job.effort < 1:
            settings = last_scale(settings, job.effort)
        outcome = stylizer.run(frame, styles, settings, init_image=init, penalty=penalty)
    else:
        outcome = stylizer.run(frame, styles, job.settings)
    notes = {"references": list(job.references), "coverage": coverage, "loss": outcome.loss,
             "evaluations": outcome.iterations, "seconds": round(time.perf_counter() - start, 3),
             "flow_seconds": round(flow_seconds, 3)}
    if job.handover:
        notes["handover"] = job.handover
    return Made(job.index, job.chunk, outcome.image, notes)
