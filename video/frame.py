"""One frame, as a worker makes it: the optical flow from each earlier frame it follows (computed
here, beside the engine, so that no flow travels), those outputs warped onto it, the temporal loss
they make, and the engine's run from where they agree."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import flow
from .temporal import TemporalLoss


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
    oldest_first: float = 1.0  # how much of a reference's weight stays where an older one is trusted
    sharp: bool = False        # bicubic warps


@dataclass
class Made:
    index: int
    chunk: int
    image: np.ndarray = field(repr=False)   # uint8 (h, w, 3)
    notes: dict                             # what the work folder keeps beside the picture


def image_of(output) -> np.ndarray:
    return output.image if isinstance(output, Made) else output


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
    keep = 1.0 - job.handover
    shares = job.shares or (1.0,) * (len(earlier) // 2)
    masks = []
    for earlier_frame, earlier_output, share in zip(earlier[::2], earlier[1::2], shares):
        backward, mask = flow.pair(earlier_frame, frame)
        targets.append((flow.warp(image_of(earlier_output), backward, sharp=job.sharp), keep * share * mask))
        masks.append(mask)
        coverage.append(round(float(mask.mean()), 4))
    if job.oldest_first < 1.0:   # where an older output is trusted, a nearer one (a copy of a copy) yields
        for j in range(len(targets) - 1):
            older = np.max(masks[j + 1:], axis=0)
            targets[j] = (targets[j][0], targets[j][1] * (1 - (1 - job.oldest_first) * older))
    flow_seconds = time.perf_counter() - start
    if toward is not None and job.handover > 0:   # its share of all the weight the chunk's own have
        weight = job.handover * sum(shares)
        targets.append((image_of(toward), np.full(frame.shape[:2], weight, np.float32)))
    if job.weight > 0 and targets:
        penalty = TemporalLoss(targets, job.weight)
        # where nothing earlier is trusted, the nearest output warped (its border repeated) would
        # smear into what newly came into view: start there from the frame, as a first frame does
        init = penalty.start(frame)
        outcome = stylizer.run(frame, styles, job.settings.replace(init="image"), init_image=init, penalty=penalty)
    else:
        outcome = stylizer.run(frame, styles, job.settings)
    notes = {"references": list(job.references), "coverage": coverage, "loss": outcome.loss,
             "evaluations": outcome.iterations, "seconds": round(time.perf_counter() - start, 3),
             "flow_seconds": round(flow_seconds, 3)}
    if job.handover:
        notes["handover"] = job.handover
    return Made(job.index, job.chunk, outcome.image, notes)
