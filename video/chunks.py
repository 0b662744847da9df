"""A clip cut into chunks that workers stylize at the same time, and how their borders meet.

Each chunk starts apart from the one before (its first frame follows only that chunk's first
picture, where they share the scene: ``video.run``), so at a border two stylizations of the same
scene meet: different textures, and a cut there flickers like independent frames. So each chunk but the last goes on ``overlap`` frames into the next one, over frames the
next chunk has already made (it started there), with its temporal targets handed over from its own
frames to the next chunk's pictures a step at a time ("bridge"): the video shows the earlier
chunk's frames up to the end of the overlap, which end close to the later chunk's, then the later
chunk's. ``"blend"`` instead cross-fades the two chunks' pictures over the overlap (the benchmark
compares them); ``"cut"`` has no overlap.

Chunks are sized so that every chunk has the same work, its overlap included."""
from __future__ import annotations

from dataclasses import dataclass

BORDERS = ("bridge", "blend", "cut")


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int     # its first frame, made on its own
    stop: int      # the next chunk's first frame (or the clip's end)
    end: int       # where what it makes ends: ``stop`` plus the overlap into the next chunk

    @property
    def frames(self) -> range:
        return range(self.start, self.end)


def auto_overlap(count: int, chunks: int, effort: float = 1.0) -> int:
    """The default overlap: half a chunk's frames, 8 to 48, as long as its frames' work (``effort``
    each) stays within an eighth of the chunk's. The two chunks' pictures where they meet differ the
    more the longer the chunk before ran on its own (the pan at 128 px: 12.9 of 0-255 after 20
    frames, 21 after 40, 26 after 64), and the overlap closes that gap a step a frame: 8 frames made
    the border 1.4x the flicker inside chunks of 20 frames but 2.1x after 44; 32 frames 1.24x after
    64; 40 frames 0.95x after 100. An overlap's frames at a quarter of the evaluations close it as
    well (32 frames: 1.23x), so a bridge at ``effort`` 0.25 gets half a chunk for an eighth's work."""
    chunks = max(1, chunks)
    own = count / chunks
    # at most half of what each chunk then has of its own (``plan``: its overlap's work counted in)
    return max(8, min(48, int(own / (2 + effort / chunks)), int(own / 8 / effort)))


def plan(start: int, stop: int, chunks: int, overlap: int | None = None,
         border: str = "bridge", effort: float = 1.0) -> tuple[Chunk, ...]:
    """Frames ``start`` to ``stop`` in at most ``chunks`` chunks, each with at least ``2 * overlap``
    frames of its own (fewer chunks when the clip is too short for that); ``overlap`` None: the
    default for the clip (``auto_overlap``). ``effort``: an overlap frame's work against a frame's
    own (its share of the evaluations), so that every chunk has the same work."""
    if border not in BORDERS:
        raise ValueError(f"border must be one of {', '.join(BORDERS)}, not {border!r}")
    if not 0 < effort <= 1:
        raise ValueError(f"effort must be in (0, 1], not {effort!r}")
    count = stop - start
    if border == "cut":
        overlap = 0
    elif overlap is None:
        overlap = auto_overlap(count, chunks, effort)
    chunks = max(1, min(chunks, count // max(1, 2 * overlap), count))
    extra = overlap * effort   # an overlap's work
    while chunks > 1 and (count + extra * (chunks - 1)) / chunks - extra < 2 * overlap:
        chunks -= 1
    share = (count + extra * (chunks - 1)) / chunks   # each chunk's work, its overlap included
    starts = [start + round(c * (share - extra)) for c in range(chunks)] + [stop]
    return tuple(Chunk(c, starts[c], starts[c + 1], min(stop, starts[c + 1] + (overlap if c < chunks - 1 else 0)))
                 for c in range(chunks))


def owner(layout, t: int) -> Chunk:
    """The chunk whose picture of frame ``t`` the video shows: the earlier of two that overlap there
    (with "blend", the one mixed with the next chunk's picture)."""
    for chunk in layout:
        if chunk.start <= t < chunk.end:
            return chunk
    raise IndexError(f"frame {t} is in no chunk")


def bridge_share(chunk: Chunk, t: int) -> float:
    """In a bridged overlap, the share of frame ``t``'s temporal weight on the next chunk's picture:
    1/(n+1), 1/n, ... 1/2 for the n frames of the overlap; 0 before it. Each frame then keeps
    (1 - share) of the gap between the two chunks' pictures, so the gap closes by an even step a
    frame (shares k/(n+1) closed it in a rush mid-overlap: pairs 3-4 above the rest's flicker)."""
    if t < chunk.stop:
        return 0.0
    return 1.0 / (chunk.end - t + 1)


def handover(chunk: Chunk, t: int) -> float:
    """In the overlap, how far frame ``t`` has gone over to the next chunk's picture of it: 1/(n+1),
    2/(n+1), ... n/(n+1) for the n frames of the overlap; 0 before it."""
    if t < chunk.stop:
        return 0.0
    return (t - chunk.stop + 1) / (chunk.end - chunk.stop + 1)
