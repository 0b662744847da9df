"""Frames in and out with PyAV (FFmpeg), one at a time, so that memory does not grow with the clip:
frames decoded lazily and brought to the working size as they come; the output encoded frame by
frame into a file beside its final name (renamed when closed), in the container its suffix names,
with the source's audio interleaved as the video grows."""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}


class VideoError(ValueError):
    """A video that cannot be read or written, in one line."""
    exit_status = 1   # a problem with an input, not with how the command was used


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


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


@contextlib.contextmanager
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
        raise VideoError(f"{path}: not a video FFmpeg can read ({_first_line(exc)})") from None


@dataclass(frozen=True)
class Source:
    """What a run needs to know of its input before decoding any frame."""
    path: Path
    frames: int              # counted from the packets (no decoding)
    rate: Fraction           # frames per second (the average: the output has a constant rate)
    width: int
    height: int
    audio: str | None        # codec of the first audio stream


def probe(path) -> Source:
    """Refuse, before any work, a file with no video stream FFmpeg can read; count its frames by
    demuxing (every video packet is one frame; a container's own count is often missing)."""
    path = Path(path)
    with _opened(path) as container:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate or stream.guessed_rate or 25)
        count = sum(1 for packet in container.demux(stream) if packet.size)
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        if count == 0:
            raise VideoError(f"{path}: has no video frames")
        return Source(path, count, rate, stream.codec_context.width, stream.codec_context.height, audio)


def frames(path, shape, start: int = 0, stop: int | None = None, also=()):
    """``(index, uint8 (h, w, 3) RGB at shape)`` for frames ``start`` to ``stop`` and the earlier
    frames numbered in ``also`` (a resumed run's references), decoded one at a time. Frames are
    numbered as decoded, from the file's first, the same in every reader; the others before
    ``start`` are decoded and dropped unconverted. Each frame is scaled by FFmpeg straight from its
    decoded form, so a 1080p frame never exists as a full-size RGB array."""
    path = Path(path)
    h, w = shape
    also = set(also)
    with _opened(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if stop is not None and index >= stop:
                break
            if index >= start or index in also:
                yield index, _rgb(frame, w, h)


def _rgb(frame, w: int, h: int) -> np.ndarray:
    # the source's own colour matrix (BT.709 for HD, usually): FFmpeg assumes BT.601 otherwise
    colorspace = frame.colorspace if frame.colorspace in (1, 5, 6, 9) else None
    return frame.reformat(width=w, height=h, format="rgb24", src_colorspace=colorspace,
                          interpolation="LANCZOS").to_ndarray()


def check_output(path) -> Path:
    """Refuse, before any work, an output that could not be written."""
    from engine.images import check_output_path
    return check_output_path(path, CONTAINERS, VideoError)


def audio_plan(source: Path, output: Path) -> tuple[str | None, str]:
    """How the source's audio reaches ``output``: ``("copy", ...)`` when its container takes the
    codec as it is (tried by muxing one packet in memory: FFmpeg knows, we need not keep a table),
    ``("aac", ...)`` re-encoded when it does not, ``(None, ...)`` when there is none. The text says
    which, in a few words."""
    fmt = CONTAINERS[output.suffix.lower()]
    with _opened(source) as container:
        if not container.streams.audio:
            return None, "none in the input"
        stream = container.streams.audio[0]
        name = stream.codec_context.name
        try:
            packet = next(p for p in container.demux(stream) if p.dts is not None)
        except StopIteration:
            return None, "none in the input (an empty audio stream)"
        try:
            with av.open(io.BytesIO(), "w", format=fmt) as trial:
                packet.stream = trial.add_stream_from_template(stream)
                trial.mux(packet)
        except (av.FFmpegError, ValueError):
            return "aac", f"{name} cannot go into {output.suffix} as it is: re-encoded to AAC (.mkv takes it as it is)"
        return "copy", f"{name}, copied"


class VideoWriter:
    """H.264 (yuv420p, crf 18, so even sides) at ``rate``, encoded as frames come, into a temporary
    file beside ``path``; ``close`` renames it into place, so ``path`` is whole or absent. With
    ``audio`` ("copy" or "aac") the source's audio from ``start_seconds`` is muxed alongside, up to
    the end of the last frame written."""

    def __init__(self, path, rate: Fraction, shape, *, source=None, audio: str | None = None,
                 start_seconds: float = 0.0):
        self.path, self.rate = Path(path), Fraction(rate)
        h, w = shape
        if h % 2 or w % 2:
            raise VideoError(f"frames of {w}x{h}: H.264 in yuv420p needs even sides")
        fd, self.tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.close(fd)
        self.count, self._audio = 0, None
        try:
            self.out = av.open(self.tmp, "w", format=CONTAINERS[self.path.suffix.lower()])
            self.video = self.out.add_stream("libx264", rate=self.rate)
            self.video.width, self.video.height, self.video.pix_fmt = w, h, "yuv420p"
            # x264's macroblock tree makes the bitstream vary from run to run (seen at 456x256 and
            # 64x48, with one thread): without it the same pictures always make the same file, so a
            # resumed run's video is the uninterrupted run's (about a third larger at crf 18)
            self.video.options = {"crf": "18", "x264-params": "mbtree=0"}
            if audio and source is not None:
                self._audio = _AudioTrack(self.out, Path(source), audio, start_seconds)
        except BaseException:
            self._remove()
            raise

    def write(self, image: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts, frame.time_base = self.count, 1 / self.rate
        try:
            for packet in self.video.encode(frame):
                self.out.mux(packet)
            self.count += 1
            if self._audio:
                self._audio.until(self.count / self.rate)
        except av.FFmpegError as exc:
            raise VideoError(f"{self.path}: could not be written ({_first_line(exc)})") from None

    def close(self) -> bool:
        """Flush, finish the file and move it into place. False when no frame was written (then
        nothing is left behind)."""
        if self.count == 0:
            self.discard()
            return False
        try:
            for packet in self.video.encode():
                self.out.mux(packet)
            if self._audio:
                self._audio.until(self.count / self.rate)
                self._audio.close()
            self.out.close()
        except av.FFmpegError as exc:
            self.discard()
            raise VideoError(f"{self.path}: could not be written ({_first_line(exc)})") from None
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.path)
        return True

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            if self._audio:
                self._audio.close()
            self.out.close()
        self._remove()

    def _remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)

    @property
    def audio_written(self) -> bool:
        return bool(self._audio and self._audio.written)


def leftovers(path) -> list[Path]:
    """Temporary files a killed run left beside ``path`` (a writer's, or an atomic write's)."""
    path = Path(path)
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


class _AudioTrack:
    """The source's first audio stream, from ``start`` seconds, fed to ``out`` as far as asked:
    packets copied as they are, or decoded and re-encoded to AAC."""

    def __init__(self, out, source: Path, mode: str, start: float):
        self.source = av.open(str(source))
        self.stream = self.source.streams.audio[0]
        self.mode, self.start, self.written = mode, start, False
        if mode == "copy":
            self.track = out.add_stream_from_template(self.stream)
            self.items = (p for p in self.source.demux(self.stream) if p.pts is not None and p.dts is not None)
        else:
            context = self.stream.codec_context
            # by channel count: AAC refuses a layout whose order has no name ("2 channels", from PCM)
            layout = {1: "mono", 2: "stereo"}.get(context.layout.nb_channels, context.layout.name)
            self.track = out.add_stream("aac", rate=context.sample_rate, layout=layout)
            self.items = self.source.decode(self.stream)
        self.out, self.pending = out, None

    def until(self, seconds: float) -> None:
        """Mux everything that starts before ``seconds`` of the output."""
        base = self.stream.time_base
        while True:
            item = self.pending or next(self.items, None)
            self.pending = None
            if item is None:
                return
            at = float(item.pts * base) - self.start
            if at < 0:
                continue
            if at >= seconds:
                self.pending = item
                return
            self._mux(item, int(round(self.start / base)))

    def _mux(self, item, offset: int) -> None:
        if self.mode == "copy":
            item.pts -= offset
            item.dts -= offset
            item.stream = self.track
            self.out.mux(item)
        else:
            item.pts -= offset
            for packet in self.track.encode(item):
                self.out.mux(packet)
        self.written = True

    def close(self) -> None:
        if self.mode != "copy" and self.written:
            for packet in self.track.encode():
                self.out.mux(packet)
        self.source.close()
