"""Pictures larger than memory: the last scales of a run in overlapping tiles.

Each evaluation covers the picture with tiles whose cores partition it and whose margins
(``halo``) give the network context, at an offset drawn afresh each time, so that no tile edge
stays in one place long enough to leave a seam. A tile's loss is the usual one on its own pixels
(its Grams against the style's, taken from the style at the whole picture's scale; its content
against the content picture's same crop), weighted by its share of the picture; only its core's
gradient is kept. Total variation is a sum of neighbour differences and needs no weighting.

The objective therefore changes a little from one evaluation to the next, which L-BFGS's line
search and curvature pairs do not tolerate (and its history would be 20 x 2 copies of the whole
picture): tiled scales run Adam with an average of its iterates.

Memory: one tile's step at a time, plus a few copies of the whole picture (the image, its
gradient, Adam's moments, the average); ``estimate_mb`` is the model the plan uses to choose
the tile, measured on this project's step engines (docs/BENCHMARKS.md).
"""
from __future__ import annotations

import numpy as np

from .masks import pools_before
from .targets import gram_sum

ALIGN = 16          # every pooling grid of VGG19 lines up with a tile that starts at a multiple of 16 px
HALO = 64           # px of context around a tile's core (a quarter of a smaller tile)
MIN_TILE = 256      # the smallest tile the memory limit chooses: a smaller one is mostly margin
# peak resident memory of a step at h x w px: (base MB, KB per pixel), measured at 256-768 px a
# side with `python -m bench.memory` (VmHWM of a process running the step once), rounded up
STEP_MEMORY = {"ort": (550.0, 2.6), "tf": (1000.0, 1.85)}
FEATURES_KB_PER_PX = 1.0     # the feature extractor's forward pass, for content targets per tile (0.8
                             # let a 2048 px run with a 3000 MB limit peak at 3030 MB)
# the feature extractor's session, held beside the step through a tiled run (a whole-picture run drops
# it): a 384x256 picture in tiles of 256 px peaked at 822 MB against 790 modelled without it
FEATURES_SESSION_MB = 50.0
LBFGS_KB_PER_PX = 20 * 2 * 12 / 1024   # L-BFGS's history: 20 pairs of float32 RGB pictures
WHOLE_PICTURE_BYTES_PER_PX = 3 * 4 * 9   # image, gradient, best, Adam's two moments, average, content, masks


def estimate_mb(engine: str, h: int, w: int) -> float:
    """What a whole-picture scale at h x w needs, in MB: the step and L-BFGS's history."""
    base, per_px = STEP_MEMORY[engine]
    return base + (per_px + LBFGS_KB_PER_PX) * h * w / 1024


def tiled_estimate_mb(engine: str, h: int, w: int, tile: int) -> float:
    base, per_px = STEP_MEMORY[engine]
    return (base + FEATURES_SESSION_MB + (per_px + FEATURES_KB_PER_PX) * tile * tile / 1024
            + WHOLE_PICTURE_BYTES_PER_PX * h * w / 2 ** 20)


def halo_for(tile: int) -> int:
    return max(ALIGN, min(HALO, tile // 4 // ALIGN * ALIGN))


def fits(engine: str, h: int, w: int, limit_mb: float) -> bool:
    return min(estimate_mb(engine, h, w), tiled_estimate_mb(engine, h, w, MIN_TILE)) <= limit_mb


def choose_tile(engine: str, h: int, w: int, limit_mb: float) -> int | None:
    """0 when the whole picture fits in ``limit_mb``; else the largest tile side (a multiple of
    ``ALIGN``) that does; None when not even ``MIN_TILE`` does."""
    if estimate_mb(engine, h, w) <= limit_mb:
        return 0
    tile = (max(h, w) // ALIGN) * ALIGN
    while tile >= MIN_TILE:
        if tiled_estimate_mb(engine, h, w, tile) <= limit_mb:
            return tile
        tile -= ALIGN
    return None


def boxes(shape, tile: int, offset=(0, 0)):
    """``(core, tile)`` boxes ``(y0, y1, x0, x1)`` covering ``shape``: cores of ``tile - 2 * halo``
    px a side (the grid shifted by ``offset``) partition the picture; each tile is its core grown
    by ``halo`` on every side, kept inside the picture. Every edge is a multiple of ``ALIGN`` or a
    side of the picture."""
    h, w = shape
    halo = halo_for(tile)
    core = tile - 2 * halo

    def cuts(length, shift):
        edges = list(range(shift % core or core, length, core)) if length > core else []
        return [0, *edges, length]

    out = []
    ys, xs = cuts(h, offset[0]), cuts(w, offset[1])
    for y0, y1 in zip(ys, ys[1:]):
        for x0, x1 in zip(xs, xs[1:]):
            out.append(((y0, y1, x0, x1), (max(0, y0 - halo), min(h, y1 + halo), max(0, x0 - halo), min(w, x1 + halo))))
    return out


def tiled_grams(features, image: np.ndarray, layers, tile: int) -> dict:
    """The Gram matrices of float ``(H, W, 3)`` ``image`` (divided by each layer's map area), from
    its features computed tile by tile: the cores' features are summed, so that no tile's
    margin counts twice."""
    sums, areas = {}, {}
    for (cy0, cy1, cx0, cx1), (ty0, ty1, tx0, tx1) in boxes(image.shape[:2], tile):
        computed = features(np.ascontiguousarray(image[None, ty0:ty1, tx0:tx1]))
        for n in layers:
            s = 2 ** pools_before(n)
            total, positions = gram_sum(computed[n][0, (cy0 - ty0) // s:(cy1 - ty0) // s,
                                                    (cx0 - tx0) // s:(cx1 - tx0) // s])
            sums[n] = sums.get(n, 0) + total
            areas[n] = areas.get(n, 0) + positions
    return {n: sums[n] / np.float32(max(areas[n], 1)) for n in layers}


def total_variation(x: np.ndarray) -> float:
    return float(np.abs(np.diff(x, axis=1)).sum(dtype=np.float64) + np.abs(np.diff(x, axis=2)).sum(dtype=np.float64))


class TiledStep:
    """A step engine (``OrtStep`` or ``TfStep``) run over tiles: the value-and-gradient function
    of one scale of a picture too large for it. ``features`` computes the content targets of
    each tile (cached by tile: the offsets come from a small set)."""

    def __init__(self, step, features, *, tile: int, seed: int = 0, phases: int = 4):
        self.step, self.features, self.tile = step, features, tile
        core = tile - 2 * halo_for(tile)
        # a few offsets, each a multiple of ALIGN: the content targets of their tiles are computed once
        self.offsets = [(round(core * i / phases) // ALIGN * ALIGN, round(core * ((i * 3) % phases) / phases)
                         // ALIGN * ALIGN) for i in range(phases)]
        self.rng = np.random.default_rng(seed)
        self.targets = None
        self._content: dict = {}

    def bind_targets(self, targets) -> None:
        """As a step's; the tiles' content features come from ``targets.content_image`` (its
        ``contents`` are not needed)."""
        self.targets, self._content = targets, {}

    def describe(self) -> str:
        return f"{self.step.describe()}, in tiles of {self.tile} px"

    def _content_targets(self, box):
        if box not in self._content:
            ty0, ty1, tx0, tx1 = box
            layers = self.targets.content_layers
            computed = self.features(np.ascontiguousarray(self.targets.content_image[None, ty0:ty1, tx0:tx1])) \
                if layers else {}
            self._content[box] = {n: computed[n] for n in layers}
        return self._content[box]

    def __call__(self, x: np.ndarray):
        h, w = self.targets.shape
        offset = self.offsets[self.rng.integers(len(self.offsets))]
        grad = np.zeros_like(x, dtype=np.float32)
        parts = {"content": 0.0, "style": 0.0}
        for core, box in boxes((h, w), self.tile, offset):
            ty0, ty1, tx0, tx1 = box
            cy0, cy1, cx0, cx1 = core
            share = (ty1 - ty0) * (tx1 - tx0) / (h * w)
            self.step.bind_targets(self.targets.tile(box, self._content_targets(box), share))
            _, tile_grad, tile_parts = self.step(np.ascontiguousarray(x[:, ty0:ty1, tx0:tx1]))
            grad[:, cy0:cy1, cx0:cx1] = tile_grad[:, cy0 - ty0:cy1 - ty0, cx0 - tx0:cx1 - tx0]
            core_share = (cy1 - cy0) * (cx1 - cx0) / (h * w)   # the parts of the whole picture, approximately
            parts["content"] += core_share * tile_parts["content"]
            parts["style"] += core_share * tile_parts["style"]
        parts["tv"] = total_variation(x)
        content_w, style_w, tv_w = self.targets.loss_weights
        loss = content_w * parts["content"] + style_w * parts["style"] + tv_w * parts["tv"]
        return loss, grad, parts
