"""A video end to end, as a stream: the clip cut into chunks that the cluster's workers stylize at
the same time, each chunk's frames in order (each follows the ones before it); frames decoded as a
chunk needs them, flows computed beside the engine on the worker, every finished frame kept in the
work folder at once and encoded as soon as the frames before it are final.

Memory does not grow with the clip: this process holds, per chunk, the frame in flight and the two
it follows (at the working size), one decoder per chunk, and the encoder; workers hold their
engine. A finished frame is on disk before the next one is asked for, so a killed run loses the
frames in progress only, and the same command resumes.

Temporal consistency (Ruder, Dosovitskiy and Brox 2016, long-term): each frame follows the previous
output and an anchor, the oldest output of its chunk that still covers at least half of it (warped
straight from there, so what stands still is pulled back to how it was first painted, not to a copy
of a copy): the previous frame keeps motion smooth, the anchor keeps a still background from
drifting frame after frame (docs/BENCHMARKS.md)."""
from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from batch.jobs import sha256

from . import chunks as chunking
from .frame import MIN_COVERAGE, FrameJob, Made, last_scale, make_frame
from .io import VideoError, VideoWriter, audio_plan, check_output, frames, leftovers, parse_range, probe
from .workdir import WorkDir

__all__ = ["VideoError", "prepare", "run", "stylize_video", "final_frames", "frame_shape", "Report", "Job", "Temporal"]
ANCHOR_COVERAGE = 0.5   # an anchor that covers less of the frame than this gives way to the frame


@dataclass(frozen=True)
class Temporal:
    """How each frame follows earlier outputs (kept in the work folder's manifest). The defaults are
    what the benchmarks chose (docs/BENCHMARKS.md); the rest is there to measure against."""
    weight: float = 1e11       # of the temporal loss; 0: every frame on its own
    anchor: bool = True        # follow the anchor too, not only the previous output
    # the anchor's weight against the previous output's: with 1, a still background wandered by 3x
    # the difference of consecutive frames as a moving object changed the style's statistics; with 3,
    # 1.9x (48 frames at 128 px); once the picture's edges were trusted (flow.consistency_mask), 3:
    # 0.12 from frame 10 to the last against 0.066 between consecutive frames, 6: 0.050 against
    # 0.053, 10: 0.037 against 0.044 (the clip's flicker 0.55, 0.59, 0.62)
    anchor_weight: float = 10.0
    # px: the anchor counts where the picture moved less than about this since it (a Gaussian of the
    # flow's length): on a pan, long-range flow jitters and pulling towards it flickered (1.7 against
    # 1.3 for the previous frame alone); where things stand still it is exact, and drift is there
    still: float = 1.0
    sharp: bool = True         # bicubic warps: bilinear ones, a copy of a copy, blurred a pan to a wash
    # a frame that follows earlier outputs starts from them at its full size, on the last scale alone
    # (Ruder et al.'s initialisation; 2.7x faster at 256 px); the coarse scales are for a chunk's first frame
    one_scale: bool = True
    # of the evaluations, for an earlier chunk's frames in a bridged overlap: they start from the blend of
    # their own previous output and the next chunk's picture, and are pulled towards that blend; a quarter
    # bridged as well as all of them (32 frames after 64: 1.23x the inside's flicker against 1.24x), so
    # the default overlap is 4x as long for the same work (video.chunks.auto_overlap)
    overlap_effort: float = 0.25


@dataclass
class Report:
    frames: int              # in the output video
    total: int               # the clip's (or the range's)
    made: int                # frames this run stylized (overlaps included)
    resumed: int             # frames found finished in the work folder
    width: int
    height: int
    fps: float
    seconds: float
    audio: str
    chunks: int
    interrupted: bool = False
    written: bool = False    # an output file exists now
    work_dir: Path | None = None           # kept: interrupted, or asked to
    peak_mb: dict = field(default_factory=dict)   # this process's and each worker's VmHWM


def frame_shape(shape, size: int) -> tuple[int, int]:
    """(h, w) with the longest side ``size`` and both sides even (H.264 in yuv420p)."""
    h, w = shape[:2]
    scale = size / max(h, w)
    return max(2, round(h * scale / 2) * 2), max(2, round(w * scale / 2) * 2)


def _sha256_image(image: np.ndarray) -> str:
    return hashlib.sha256(repr(image.shape).encode() + np.ascontiguousarray(image).tobytes()).hexdigest()


class _Chain:
    """One chunk's frames in order, as this process feeds them to the cluster: its decoder, the
    frames and outputs its next frame follows, and its frame in flight."""

    def __init__(self, chunk, border: str, work: WorkDir, source: Path, shape, long_term: bool = True, lead=None):
        self.chunk, self.border, self.work, self.long_term = chunk, border, work, long_term
        # the chunk before, whose first picture this chunk's first frame follows: two chunks then
        # meet at their overlap as two runs of one stylization (where the scene is still in view),
        # not two stylizations 16 apart (0-255; docs/BENCHMARKS.md)
        self.lead = lead if border != "cut" else None
        self.order = list(chunk.frames)
        self.position = work.done(chunk.index, self.order)
        self.inputs: dict[int, np.ndarray] = {}
        self.outputs: dict[int, np.ndarray] = {}
        self.anchor = chunk.start
        self.future = None
        needed = ()
        if self.position:   # resumed: the last finished frame says which anchor comes next
            last = self.order[self.position - 1]
            image, notes = work.load(chunk.index, last)
            self.anchor = notes.get("next_anchor", last)
            self.outputs[last] = image
            if self.anchor != last:
                self.outputs[self.anchor] = work.load(chunk.index, self.anchor)[0]
            needed = {last, self.anchor}
        elif self.lead is not None:
            needed = {self.lead.start}
        self.finished = self.position >= len(self.order)
        self.decoder = None if self.finished else \
            frames(source, shape, self.order[self.position] if not self.finished else chunk.end, chunk.end, needed)

    @property
    def next_frame(self) -> int:
        return self.order[self.position]

    def references(self, t: int) -> list[int]:
        """The earlier frames ``t`` follows, nearest first."""
        if t == self.chunk.start:
            return [self.lead.start] if self.lead is not None else []
        refs = [t - 1]
        if self.long_term and self.anchor < t - 1:
            refs.append(self.anchor)
        return refs

    def ready(self, t: int) -> bool:
        """Whether frame ``t`` can start: a first frame waits for the lead's first picture."""
        if t != self.chunk.start or self.lead is None or self.lead.start in self.outputs:
            return True
        if not self.work.has(self.lead.index, self.lead.start):
            return False
        self.outputs[self.lead.start] = self.work.load(self.lead.index, self.lead.start)[0]
        return True

    def read_until(self, t: int) -> np.ndarray:
        for index, image in self.decoder:
            self.inputs[index] = image
            if index == t:
                return image
        raise EOFError

    def toward(self, t: int):
        """In a bridged overlap, the next chunk's picture of ``t``; False while it is not made yet;
        None elsewhere."""
        if self.border != "bridge" or t < self.chunk.stop:
            return None
        following = self.chunk.index + 1
        return self.work.load(following, t)[0] if self.work.has(following, t) else False

    def anchor_after(self, made: Made) -> int:
        """The anchor of the frames after this one: the same, while it still covers enough of them
        (the coverage of its consistency mask here); else this frame."""
        refs, coverage = made.notes["references"], made.notes["coverage"]
        if self.anchor in refs and coverage[refs.index(self.anchor)] >= ANCHOR_COVERAGE:
            return self.anchor
        return made.index

    def finish(self, made: Made, anchor: int) -> None:
        t, self.anchor = made.index, anchor
        self.outputs[t] = made.image
        for store in (self.inputs, self.outputs):
            for index in [i for i in store if i not in (t, anchor)]:
                del store[index]
        self.position += 1
        self.future = None
        self.finished = self.position >= len(self.order)


@dataclass
class Job:
    """A video settled before any frame is made: its input, frames, shape, settings, chunks and the
    work folder it holds (``prepare``)."""
    source: Path
    output: Path
    rate: object             # Fraction
    first: int
    last: int
    shape: tuple
    settings: object         # engine Settings, sized to the frames
    styles: list
    temporal: Temporal
    border: str
    layout: tuple
    work: WorkDir
    audio: tuple             # (mode, words) from io.audio_plan


def prepare(source, output, styles, settings, *, temporal: Temporal = Temporal(), frames_range: str | None = None,
            chunks: int = 1, overlap: int | None = None, border: str = "bridge", work_dir=None,
            adopt_chunks: bool = True) -> Job:
    """Check everything and take the work folder (``OUTPUT.frames`` by default), before a cluster
    starts: a bad input, output or folder is one line (VideoError) at once. The clip is cut into
    ``chunks`` for workers to make at once; with ``adopt_chunks`` a folder's earlier run's chunks
    are kept (resuming with another number of workers makes the same video)."""
    output = check_output(output)
    info = probe(source)
    first, last = parse_range(frames_range)
    last = info.frames if last is None else min(last, info.frames)
    if first >= last:
        raise VideoError(f"{source}: has {info.frames} frames; none in the range {frames_range}")
    shape = frame_shape((info.height, info.width), settings.size)
    settings = settings.replace(size=max(shape))
    manifest = {
        "source": {"path": str(info.path.resolve())},
        "input": {"sha256": sha256(info.path), "frames": [first, last]},
        "styles": [_sha256_image(s) for s in styles],
        "settings": settings.to_dict(),
        "video": {**asdict(temporal), "anchor_coverage": ANCHOR_COVERAGE, "shape": list(shape),
                  "overlap": "auto" if overlap is None else overlap,
                  "border": border, "lead": True, "bridge_shares": "even",
                  # older folders' frames were made with the edges untrusted and every reference followed
                  "edges": "half a pixel", "min_coverage": MIN_COVERAGE},
        "layout": [[c.start, c.stop, c.end]
                   for c in chunking.plan(first, last, chunks, overlap, border, _effort(temporal, border, settings))],
    }
    work_path = Path(work_dir) if work_dir else output.with_name(output.name + ".frames")
    work = WorkDir.open(work_path, manifest, adopt=("layout",) if adopt_chunks else ())
    layout = tuple(chunking.Chunk(i, *c) for i, c in enumerate(work.manifest["layout"]))
    try:
        audio = audio_plan(info.path, output)
    except BaseException:
        work.close()
        raise
    return Job(info.path, output, info.rate, first, last, shape, settings, list(styles), temporal, border, layout,
               work, audio)


def _effort(temporal: Temporal, border: str, settings) -> float:
    """An overlap frame's work against a frame's: the bridge's run fewer evaluations (as many as
    ``video.frame.last_scale`` gives them: at least one, so with one a frame the overlap is whole
    frames), a blend's are whole pictures, and so are frames without a temporal loss."""
    if border != "bridge" or not temporal.weight:
        return 1.0
    evaluations = settings.schedule()[-1][1]
    return last_scale(settings, temporal.overlap_effort).iterations / evaluations


def stylize_video(client, source, output, styles, settings, *, chunks: int | None = None, keep_frames: bool = False,
                  stop=None, quiet: bool = False, log=None, **options) -> Report:
    """``prepare`` (``chunks`` default: one per worker of ``client``) then ``run``."""
    workers = len(client.scheduler_info()["workers"]) or 1
    job = prepare(source, output, styles, settings, chunks=chunks or workers, adopt_chunks=chunks is None, **options)
    return run(client, job, keep_frames=keep_frames, stop=stop, quiet=quiet, log=log)


def run(client, job: Job, *, keep_frames: bool = False, stop=None, quiet: bool = False, log=None) -> Report:
    """Make ``job``'s video on the cluster of ``client``. ``stop``: an event; once set, no new frame
    is started, the frames in progress are finished and the video of the frames done so far is
    written (KeyboardInterrupt: the same without waiting for them). The work folder is removed
    when the video is whole, unless ``keep_frames``."""
    from distributed import wait
    from tqdm import tqdm
    log = log or (lambda *_: None)
    start_time = time.perf_counter()
    work, layout, border, first, last = job.work, job.layout, job.border, job.first, job.last
    workers = len(client.scheduler_info()["workers"])
    for leftover in leftovers(job.output):   # a killed run's unfinished video (this run holds the folder)
        leftover.unlink(missing_ok=True)
    audio_mode, audio_text = job.audio
    chains = [_Chain(c, border, work, job.source, job.shape, job.temporal.anchor,
                     lead=layout[c.index - 1] if c.index else None) for c in layout]
    total = sum(len(c.order) for c in chains)
    resumed = sum(c.position for c in chains)
    h, w = job.shape
    log(f"{last - first} frames of {w}x{h} at {float(job.rate):g} fps in {len(layout)} chunk(s) on {workers} "
        f"worker(s); audio: {audio_text}")
    if resumed:
        log(f"resuming: {resumed} of {total} frames already made in {work.path}")
    writer = VideoWriter(job.output, job.rate, job.shape, source=job.source, audio=audio_mode,
                         start_seconds=float(first / job.rate))
    encoded = first
    styles_future = client.scatter([job.styles], broadcast=True)[0]
    bar = tqdm(total=total, initial=resumed, unit="frame", disable=quiet, file=sys.stderr, dynamic_ncols=True)
    made = 0

    def encode_ready() -> None:
        nonlocal encoded
        while encoded < last:
            frame = _final(work, layout, border, encoded)
            if frame is None:
                return
            writer.write(frame)
            encoded += 1

    try:
        encode_ready()
        while True:
            stopping = stop is not None and stop.is_set()
            if not stopping:
                for chain in chains:
                    if chain.future is None and not chain.finished:
                        _submit(client, chain, job.settings, job.temporal, styles_future, log)
            flying = {c.future: c for c in chains if c.future is not None}
            if not flying:
                if stopping or all(c.finished for c in chains):
                    break
                raise VideoError("the chunks wait on each other: a frame an overlap needs was never made")
            try:   # a short wait, so that a Ctrl-C's stop is seen soon
                done, _ = wait(list(flying), timeout=0.5, return_when="FIRST_COMPLETED")
            except TimeoutError:
                continue
            for future in done:
                chain = flying[future]
                try:
                    result = future.result()
                except Exception as exc:  # noqa: BLE001 - a frame that failed twice more: the run stops
                    raise VideoError(f"frame {chain.next_frame}: {(str(exc).splitlines() or [type(exc).__name__])[0]}"
                                     f"; the frames made are kept in {work.path}") from None
                anchor = chain.anchor_after(result)
                work.save(chain.chunk.index, result.index, result.image, {**result.notes, "next_anchor": anchor})
                chain.finish(result, anchor)
                made += 1
                bar.update(1)
                bar.set_postfix_str(f"frame {result.index}, loss {result.notes['loss']:.3g}", refresh=False)
            encode_ready()
    except KeyboardInterrupt:   # the second Ctrl-C: the frames in progress are dropped
        for chain in chains:
            if chain.future is not None:
                chain.future.cancel()
    except BaseException:
        bar.close()
        writer.discard()
        work.close()
        raise
    finally:
        bar.close()
    interrupted = any(not c.finished for c in chains)
    written = writer.close()
    keep = interrupted or keep_frames
    work.close() if keep else work.remove()
    if audio_mode and not writer.audio_written:
        audio_text = "none in these frames' time"
    return Report(writer.count, last - first, made, resumed, w, h, float(job.rate), time.perf_counter() - start_time,
                  audio_text, len(layout), interrupted, written, work.path if keep else None, _peaks(client))


def _submit(client, chain: _Chain, settings, temporal: Temporal, styles_future, log) -> None:
    t = chain.next_frame
    toward = chain.toward(t)
    if toward is False or not chain.ready(t):
        return   # the next chunk has not made this frame yet, or the lead its first: wait for it
    try:
        frame = chain.read_until(t)
    except EOFError:   # fewer frames than the container's packets promised
        log(f"the input ended before frame {t}")
        chain.finished = True
        return
    refs = chain.references(t)
    earlier = [a for r in refs for a in (chain.inputs[r], chain.outputs[r])]
    handover = chunking.bridge_share(chain.chunk, t) if toward is not None else 0.0
    shares = tuple(temporal.anchor_weight if r == chain.anchor and r != t - 1 else 1.0 for r in refs)
    job = FrameJob(t, chain.chunk.index, settings, temporal.weight if refs or toward is not None else 0.0,
                   references=tuple(refs), shares=shares, handover=handover, sharp=temporal.sharp,
                   still=temporal.still, one_scale=temporal.one_scale,
                   effort=temporal.overlap_effort if toward is not None else 1.0)
    # the frames travel with the task (they are small): a worker lost mid-frame leaves nothing behind
    # that a retry elsewhere would miss
    chain.future = client.submit(make_frame, job, frame, styles_future, *earlier, toward=toward,
                                 key=f"nst-frame-{chain.chunk.index}-{t}-{time.time_ns()}", pure=False, retries=2)


def _final(work: WorkDir, layout, border: str, t: int):
    """The video's picture of frame ``t``, or None while it is not made."""
    chunk = chunking.owner(layout, t)
    if not work.has(chunk.index, t):
        return None
    image = work.load(chunk.index, t)[0]
    if border == "blend" and t >= chunk.stop:
        if not work.has(chunk.index + 1, t):
            return None
        share = chunking.handover(chunk, t)
        other = work.load(chunk.index + 1, t)[0]
        image = np.clip(np.round((1 - share) * image + share * other.astype(np.float32)), 0, 255).astype(np.uint8)
    return image


def _peaks(client) -> dict:
    from engine.memory import peak_rss_mb
    peaks = {"client": round(peak_rss_mb())}
    try:
        for address, value in client.run(peak_rss_mb).items():
            peaks[address] = round(value)
    except Exception:   # noqa: BLE001 - a report, not the run: a worker gone by now has no figure
        pass
    return peaks



def final_frames(work_path):
    """The video's pictures, in order, from a kept work folder (``--keep-frames``, or one an
    interrupted run left): ``(index, uint8 image)`` as far as they are made."""
    import json
    work_path = Path(work_path)
    manifest = json.loads((work_path / "manifest.json").read_text())
    layout = tuple(chunking.Chunk(i, *c) for i, c in enumerate(manifest["layout"]))
    border = manifest["video"]["border"]
    work = WorkDir(work_path, manifest, None)
    first, last = manifest["input"]["frames"]
    for t in range(first, last):
        image = _final(work, layout, border, t)
        if image is None:
            return
        yield t, image
