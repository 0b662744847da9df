"""A clip whose true motion is known: a photograph panned (and optionally zoomed) by a camera,
with a sine tone for audio. The tests and the flicker benchmark make theirs with it."""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
from PIL import Image


def panned_frames(photo: np.ndarray, count: int, shape, *, step: float = 2.0, zoom: float = 1.0) -> list:
    """``count`` frames of ``shape`` (h, w): a window moving right by ``step`` px a frame (so the
    content moves left by ``step``), scaled by ``zoom`` a frame about its centre."""
    h, w = shape
    image = Image.fromarray(photo)
    frames = []
    for t in range(count):
        scale = zoom ** t
        cw, ch = w / scale, h / scale
        left = 4 + t * step
        box = (left + (w - cw) / 2, 4 + (h - ch) / 2, left + (w + cw) / 2, 4 + (h + ch) / 2)
        frames.append(np.asarray(image.resize((w, h), Image.BICUBIC, box=box)))
    return frames


def write_clip(path, frames, rate: int = 12, *, tone: bool = True) -> None:
    """H.264 frames at ``rate`` fps, with a 440 Hz AAC tone as long as the clip."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        audio = out.add_stream("aac", rate=44100) if tone else None
        for image in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if audio is not None:
            samples = int(44100 * len(frames) / rate)
            wave = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 44100)).astype(np.float32)
            for begin in range(0, samples, 1024):
                chunk = wave[begin:begin + 1024][None]
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = 44100, begin, Fraction(1, 44100)
                for packet in audio.encode(frame):
                    out.mux(packet)
            for packet in audio.encode():
                out.mux(packet)
