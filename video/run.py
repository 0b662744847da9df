"""A video end to end: decode, the flows of every frame pair in parallel on the cluster, then the
frames in order (each needs the one before), encode with the audio."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import flow
from .io import VideoError, parse_range, read_frames, write_video
from .temporal import TemporalLoss

__all__ = ["VideoError", "stylize_video", "compute_flows", "stylize_frames", "frame_shape"]
SUFFIXES = (".mp4", ".mov", ".mkv")


@dataclass
class Report:
    frames: int
    width: int
    height: int
    fps: float
    seconds: float
    flow_seconds: float
    audio: str
    outputs: list = field(repr=False, default_factory=list)
    flows: list = field(repr=False, default_factory=list)


def frame_shape(shape, size: int) -> tuple[int, int]:
    """(h, w) with the longest side ``size`` and both sides even (H.264 in yuv420p)."""
    h, w = shape[:2]
    scale = size / max(h, w)
    return max(2, round(h * scale / 2) * 2), max(2, round(w * scale / 2) * 2)


def check_output(path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise VideoError(f"{path}: unsupported output type {path.suffix or '(none)'}; use {', '.join(SUFFIXES)}")
    if not path.parent.is_dir():
        raise VideoError(f"{path}: the folder {path.parent} does not exist")
    return path


def compute_flows(client, frames) -> list:
    """(flow t -> t-1, mask) for t = 1..n-1, every pair a task on the cluster."""
    if len(frames) < 2:
        return []
    scattered = client.scatter(list(frames))
    futures = [client.submit(flow.pair, scattered[t - 1], scattered[t], pure=False, retries=2)
               for t in range(1, len(frames))]
    return client.gather(futures)


def stylize_frames(stylizer, frames, flows, styles, settings, *, temporal_weight: float, callback=None) -> list:
    """Each frame in order. With a temporal weight, frame t starts from the previous output warped
    onto it and is pulled towards it where the mask trusts the flow (Ruder et al. 2016, short-term);
    with 0, every frame is its own picture from the same settings."""
    settings = settings.replace(size=max(frames[0].shape[:2]))
    outputs = []
    for t, frame in enumerate(frames):
        if t == 0 or temporal_weight == 0:
            outcome = stylizer.run(frame, styles, settings)
        else:
            backward, mask = flows[t - 1]
            warped = flow.warp(outputs[-1], backward)
            outcome = stylizer.run(frame, styles, settings.replace(init="image"), init_image=warped,
                                   penalty=TemporalLoss(warped, mask, temporal_weight))
        outputs.append(outcome.image)
        if callback:
            callback(t, outcome)
    return outputs


def stylize_video(client, source, output, styles, settings, *, temporal_weight: float, frames: str | None = None,
                  weights=None, provider: str = "cpu", threads=None, quiet: bool = False, log=None) -> Report:
    from tqdm import tqdm

    from engine.images import resize_exact
    from engine.store import ArtifactStore
    from engine.stylizer import Stylizer
    from models.weights import load_weights
    output = check_output(output)
    start_index, stop_index = parse_range(frames)
    start = time.perf_counter()
    clip = read_frames(source, start_index, stop_index)
    shape = frame_shape(clip.frames[0].shape, settings.size)
    inputs = [resize_exact(f, shape) for f in clip.frames]
    flows = compute_flows(client, inputs) if temporal_weight > 0 else []
    flow_seconds = time.perf_counter() - start
    # The frames run here, one after another, with every core: each needs the one before.
    stylizer = Stylizer(load_weights(weights), provider=provider, threads=threads, store=ArtifactStore(log=log),
                        log=log)
    bar = tqdm(total=len(inputs), unit="frame", disable=quiet, file=sys.stderr, dynamic_ncols=True)

    def on_frame(t, outcome):
        bar.update(1)
        bar.set_postfix_str(f"loss {outcome.loss:.4g}", refresh=False)

    try:
        outputs = stylize_frames(stylizer, inputs, flows, styles, settings, temporal_weight=temporal_weight,
                                 callback=on_frame)
    finally:
        bar.close()
    rate = clip.rate
    audio = write_video(output, outputs, rate, audio_from=source, start_seconds=float(start_index / rate),
                        stop_seconds=float((start_index + len(inputs)) / rate))
    return Report(len(outputs), shape[1], shape[0], float(rate), time.perf_counter() - start, flow_seconds,
                  "copied" if audio else "none", outputs, flows)


def flicker(outputs, flows) -> float:
    """Mean over frames t >= 1 of the masked mean absolute difference (0-255) between output t and
    output t-1 warped onto it: what the eye sees as flicker where the scene did not change."""
    values = []
    for t in range(1, len(outputs)):
        backward, mask = flows[t - 1]
        warped = flow.warp(outputs[t - 1], backward).astype(np.float32)
        difference = np.abs(outputs[t].astype(np.float32) - warped).mean(-1)
        values.append(float((difference * mask).sum() / max(mask.sum(), 1.0)))
    return float(np.mean(values)) if values else 0.0
