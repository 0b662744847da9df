"""The fixed targets of a style transfer: content features and blended style Gram matrices,
computed once per scale by either feature backend (``OrtFeatures`` or ``TfFeatures``), and
``Targets``, what one scale's step is bound to."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Targets:
    """What one scale's step compares the picture with and how it weighs the losses: the typed form
    of the step graph's inputs (``engine.spec.step_feeds`` makes them arrays). Both step engines
    and ``TiledStep`` are bound to one per scale."""
    shape: tuple                 # (h, w) of the pictures the step will be given
    grams: Mapping               # layer -> Gram matrices (R, c, c), one per style region (or (c, c): one)
    contents: Mapping            # layer -> content features (1, h', w', c)
    style_layers: Mapping        # layer -> weight
    content_layers: Mapping      # layer -> weight
    loss_weights: tuple          # (content, style, tv)
    style_masks: np.ndarray | None = None     # (R, h, w) in [0, 1]: where each region's Grams apply
    region_weights: np.ndarray | None = None  # (R,): how each region weighs (default ones)
    content_mask: np.ndarray | None = None    # (h, w) in [0, 1]: where the content is kept (default ones)
    content_image: np.ndarray | None = None   # float (h, w, 3): a tiled step takes each tile's contents from it

    def tile(self, box, contents: Mapping, share: float) -> "Targets":
        """The targets of the tile ``box`` (y0, y1, x0, x1) of this scale: its own content features,
        its part of the masks, and the content and style losses weighed by its ``share`` of the picture
        (total variation is a sum over neighbours and needs no weighing)."""
        y0, y1, x0, x1 = box
        content_w, style_w, tv_w = self.loss_weights
        return dataclasses.replace(
            self, shape=(y1 - y0, x1 - x0), contents=contents, loss_weights=(content_w * share, style_w * share, tv_w),
            style_masks=None if self.style_masks is None else self.style_masks[:, y0:y1, x0:x1],
            content_mask=None if self.content_mask is None else self.content_mask[y0:y1, x0:x1], content_image=None)


def gram_sum(features: np.ndarray) -> tuple[np.ndarray, int]:
    """``(F^T F, n)`` of features ``(..., c)`` over their ``n`` positions: a Gram matrix before it is
    divided by ``n``, so that sums over tiles add up to the whole picture's."""
    flat = features.reshape(-1, features.shape[-1]).astype(np.float32)
    return flat.T @ flat, flat.shape[0]


def gram_numpy(features: np.ndarray) -> np.ndarray:
    """Gram matrix of ``(1, h, w, c)`` features divided by ``h * w``, as ``losses.gram_matrix``."""
    total, positions = gram_sum(features)
    return total / np.float32(positions)


def style_grams(backend, style: np.ndarray, layers) -> dict:
    """The Gram matrix of each of ``layers`` for one float ``(h, w, 3)`` style image in [0, 1]."""
    features = backend(style[None])
    return {n: gram_numpy(features[n]) for n in layers}


def blend_grams(grams: list, blend, layers) -> dict:
    """``sum_i blend[i] * grams[i]`` per layer; ``blend`` holds one weight per style (summing to 1)."""
    return {n: sum(share * g[n] for g, share in zip(grams, blend)) for n in layers}


def compute_targets(backend, content: np.ndarray, styles: list, blend, style_layers, content_layers):
    """``(content features by layer, blended Grams by layer)`` of float ``(h, w, 3)`` images in
    [0, 1]; ``blend`` holds one weight per style image (summing to 1)."""
    features = backend(content[None])
    content_targets = {n: features[n] for n in content_layers}
    return content_targets, blend_grams([style_grams(backend, s, style_layers) for s in styles], blend, style_layers)
