"""Clips whose true motion is known, made from real photographs: one panned (and optionally zoomed)
by a camera, and one standing still while a cut-out of another moves across it; with a sine tone for
audio. The tests and the video benchmarks make theirs with these."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


def panned_frames(photo: np.ndarray, count: int, shape, *, step: float = 2.0, zoom: float = 1.0) -> list:
    return list(iter_panned(photo, count, shape, step=step, zoom=zoom))


def iter_panned(photo: np.ndarray, count: int, shape, *, step: float = 2.0, zoom: float = 1.0):
    """``count`` frames of ``shape`` (h, w), one at a time: a window over 60% of the photo moving
    right by ``step`` px a frame (so the content moves left by ``step``), scaled by ``zoom`` a frame
    about its centre. A window that reaches the photo's edge turns back, and the zoom turns back
    every 60 frames, so a clip may be of any length."""
    h, w = shape
    ph, pw = photo.shape[:2]
    scale = 0.6 * min((ph - 8) / h, (pw - 8) / w)    # photo px per frame px
    travel = max(1.0, (pw - 8) / scale - w)         # frame px the window can go before the edge
    image = Image.fromarray(photo)
    for t in range(count):
        x = _bounce(t * step, travel)
        z = zoom ** _bounce(t, 60)
        cw, ch = w * scale / z, h * scale / z
        left, top = 4 + x * scale, 4
        box = (left + (w * scale - cw) / 2, top + (h * scale - ch) / 2, left + (w * scale + cw) / 2,
               top + (h * scale + ch) / 2)
        yield np.asarray(image.resize((w, h), Image.BICUBIC, box=box))


def _bounce(x: float, span: float) -> float:
    """``x`` going back and forth between 0 and ``span``."""
    x = x % (2 * span)
    return x if x <= span else 2 * span - x


def pasted_frames(background: np.ndarray, cutout: np.ndarray, count: int, shape, *, band: float = 0.5,
                  size: float = 0.4) -> list:
    return list(iter_pasted(background, cutout, count, shape, band=band, size=size))


def iter_pasted(background: np.ndarray, cutout: np.ndarray, count: int, shape, *, band: float = 0.5,
                size: float = 0.4):
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
    for t in range(count):
        left = round(-side + (w + side) * t / max(1, count - 1))
        frame = still.astype(np.float32)
        a, b = max(0, left), min(w, left + side)
        if b > a:
            region = frame[top:top + side, a:b]
            cut = patch[:, a - left:b - left]
            mask = alpha[:, a - left:b - left]
            frame[top:top + side, a:b] = mask * cut + (1 - mask) * region
        yield np.clip(np.round(frame), 0, 255).astype(np.uint8)


def write_clip(path, frames, rate: int = 12, *, tone: bool = True, preset: str = "medium",
               audio_codec: str = "aac") -> int:
    """H.264 frames (a list or any iterable) at ``rate`` fps, with a 440 Hz tone as long as the clip
    (``audio_codec``: aac, or pcm_s16le for a container that takes it); the container follows the
    suffix. Returns the number of frames."""
    from .io import CONTAINERS
    count = 0
    with av.open(str(path), "w", format=CONTAINERS.get(Path(path).suffix.lower(), "mp4")) as out:
        video = out.add_stream("libx264", rate=rate)
        video.options = {"preset": preset}
        audio = out.add_stream(audio_codec, rate=44100) if tone else None
        for image in frames:
            if count == 0:
                video.width, video.height, video.pix_fmt = image.shape[1], image.shape[0], "yuv420p"
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
            count += 1
        for packet in video.encode():
            out.mux(packet)
        if audio is not None:
            samples = int(44100 * count / rate)
            wave = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 44100)).astype(np.float32)
            for begin in range(0, samples, 1024):
                chunk = wave[begin:begin + 1024][None]
                if audio_codec == "pcm_s16le":
                    frame = av.AudioFrame.from_ndarray((chunk * 32767).astype(np.int16), format="s16", layout="mono")
                else:
                    frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = 44100, begin, Fraction(1, 44100)
                for packet in audio.encode(frame):
                    out.mux(packet)
            for packet in audio.encode():
                out.mux(packet)
    return count
