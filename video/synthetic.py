"""Clips whose true motion is known, made from real photographs: one panned (and optionally zoomed)
by a camera, and one standing still while a cut-out of another moves across it; with a sine tone for
audio. The tests and the video benchmarks make theirs with these."""
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


def pasted_frames(background: np.ndarray, cutout: np.ndarray, count: int, shape, *, band: float = 0.5,
                  size: float = 0.4) -> list:
    """``count`` frames of ``shape`` (h, w): ``background`` standing still, and an elliptical cut-out
    of ``cutout`` (``size`` of the frame's height, soft edge) moving left to right across the part of
    the frame below ``band`` (a fraction of the height), from outside the frame on one side to outside
    on the other. Above the band nothing ever changes: what a stylization does there over time is its
    drift."""
    h, w = shape
    bh, bw = background.shape[:2]
    ch, cw = (bh, round(bh * w / h)) if bw * h > bh * w else (round(bw * h / w), bw)   # the middle, at w:h
    box = ((bw - cw) // 2, (bh - ch) // 2, (bw - cw) // 2 + cw, (bh - ch) // 2 + ch)
    still = np.asarray(Image.fromarray(background).resize((w, h), Image.LANCZOS, box=box))
    side = max(8, round(size * h))
    ph, pw = cutout.shape[:2]
    square = min(ph, pw)
    box = ((pw - square) // 2, (ph - square) // 2, (pw + square) // 2, (ph + square) // 2)
    patch = np.asarray(Image.fromarray(cutout).resize((side, side), Image.LANCZOS, box=box)).astype(np.float32)
    ys, xs = np.mgrid[:side, :side] + 0.5
    r = np.hypot(2 * xs / side - 1, 2 * ys / side - 1)
    alpha = np.clip((1 - r) * side / 4, 0, 1)[..., None]    # 1 inside, a 2 px ramp at the edge
    top = round(band * h + (h * (1 - band) - side) / 2)
    frames = []
    for t in range(count):
        left = round(-side + (w + side) * t / max(1, count - 1))
        frame = still.astype(np.float32)
        a, b = max(0, left), min(w, left + side)
        if b > a:
            region = frame[top:top + side, a:b]
            cut = patch[:, a - left:b - left]
            mask = alpha[:, a - left:b - left]
            frame[top:top + side, a:b] = mask * cut + (1 - mask) * region
        frames.append(np.clip(np.round(frame), 0, 255).astype(np.uint8))
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
