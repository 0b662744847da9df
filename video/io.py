"""Frames in and out with PyAV (FFmpeg): decode to uint8 RGB, encode H.264, audio passed through
without re-encoding, the output written beside its final name and renamed when whole."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from models.atomic import atomic_path


class VideoError(ValueError):
    """A video that cannot be read or written, in one line."""
    exit_status = 1   # a problem with an input, not with how the command was used


@dataclass
class Clip:
    frames: list             # uint8 (h, w, 3) RGB
    rate: Fraction           # frames per second
    start: int               # index of the first frame kept


def parse_range(text: str | None) -> tuple[int, int | None]:
    """``A:B`` -> (A, B); either side may be empty."""
    if not text:
        return 0, None
    a, sep, b = text.partition(":")
    try:
        start, stop = int(a) if a else 0, int(b) if b else None
    except ValueError:
        raise VideoError(f"--frames {text!r}: expected A:B with whole numbers") from None
    if not sep or start < 0 or (stop is not None and stop <= start):
        raise VideoError(f"--frames {text!r}: expected A:B with 0 <= A < B")
    return start, stop


@contextmanager
def _opened(path: Path):
    """The container of ``path`` with a video stream; any FFmpeg failure, there or in the body, one line."""
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: has no video stream")
            yield container
    except VideoError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(f"{path}: not a video FFmpeg can read ({str(exc).splitlines()[0]})") from None


def probe(path) -> None:
    """Refuse, before any work, a file with no video stream FFmpeg can read."""
    with _opened(Path(path)):
        pass


def read_frames(path, start: int = 0, stop: int | None = None) -> Clip:
    path = Path(path)
    with _opened(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        frames = []
        for index, frame in enumerate(container.decode(stream)):
            if stop is not None and index >= stop:
                break
            if index >= start:
                frames.append(frame.to_ndarray(format="rgb24"))
    if not frames:
        raise VideoError(f"{path}: no frames in the range asked for")
    return Clip(frames, Fraction(rate), start)


def write_video(path, frames, rate: Fraction, *, audio_from=None, start_seconds: float = 0.0,
                stop_seconds: float | None = None) -> bool:
    """H.264 (yuv420p, so even sides) at ``rate``; the audio of ``audio_from`` between the two
    times, its packets copied as they are. True when audio was copied."""
    path = Path(path)
    h, w = frames[0].shape[:2]
    if h % 2 or w % 2:
        raise VideoError(f"frames of {w}x{h}: H.264 in yuv420p needs even sides")
    try:
        return _write(path, frames, rate, audio_from, start_seconds, stop_seconds)
    except av.FFmpegError as exc:
        raise VideoError(f"{path}: could not be written ({str(exc).splitlines()[0]})") from None


def _write(path, frames, rate, audio_from, start_seconds, stop_seconds) -> bool:
    h, w = frames[0].shape[:2]
    audio = False
    with atomic_path(path) as tmp:
        with av.open(tmp, "w", format="mp4") as out:
            video = out.add_stream("libx264", rate=rate)
            video.width, video.height, video.pix_fmt = w, h, "yuv420p"
            video.options = {"crf": "18"}
            source = av.open(str(audio_from)) if audio_from else None
            try:
                in_audio = source.streams.audio[0] if source and source.streams.audio else None
                out_audio = out.add_stream_from_template(in_audio) if in_audio is not None else None
                for image in frames:
                    for packet in video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                        out.mux(packet)
                for packet in video.encode():
                    out.mux(packet)
                if out_audio is not None:
                    audio = _copy_audio(source, in_audio, out, out_audio, start_seconds, stop_seconds)
            finally:
                if source:
                    source.close()
    return audio


def _copy_audio(source, in_audio, out, out_audio, start_seconds, stop_seconds) -> bool:
    base = in_audio.time_base
    offset = int(start_seconds / base)
    copied = False
    for packet in source.demux(in_audio):
        if packet.pts is None or packet.dts is None:
            continue  # the demuxer's flush packet
        seconds = float(packet.pts * base)
        if seconds < start_seconds or (stop_seconds is not None and seconds >= stop_seconds):
            continue
        packet.pts -= offset
        packet.dts -= offset
        packet.stream = out_audio
        out.mux(packet)
        copied = True
    return copied
