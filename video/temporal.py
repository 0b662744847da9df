"""The temporal loss of Ruder, Dosovitskiy and Brox (2016, eq. 7; long-term form, eq. 9) as a
pixel-space penalty the engine adds to either step engine's loss and gradient:

    L = weight / D * sum_j sum_x c_j(x) * (x_t(x) - w_j(x))^2

w_j an earlier output warped onto this frame, c_j where that warp is trusted (its consistency
mask, times the reference's share), D the number of values (h * w * 3, the paper's
dimensionality). Images here are in [0, 1], not Caffe's [0, 255], so the paper's weight of 2e2
does not carry over.

Unlike the paper's long-term weights, which pull each pixel towards the nearest earlier frame
that saw it only, every reference pulls wherever it is trusted: where nothing moves, the nearest
frame is always there, and nearest-first weights would leave a still background free to drift
(docs/BENCHMARKS.md has the measurement)."""
from __future__ import annotations

import numpy as np

from engine.images import resize_field


def _float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)


class TemporalLoss:
    """``penalty(x) -> (value, gradient)`` for the float32 (1, h, w, 3) image of any scale.
    ``targets``: ``(warped, c)`` pairs, ``warped`` an image (uint8, or float in [0, 1]) and ``c`` its
    float (h, w) weights. The pairs are one quadratic, so they are kept as one: the weights' sum
    and the weighted mean of the targets, resized to each scale once."""

    def __init__(self, targets, weight: float):
        weights = sum(np.asarray(c, np.float32) for _, c in targets)
        mean = sum(_float(w) * np.asarray(c, np.float32)[..., None] for w, c in targets)
        self.mean = (mean / np.maximum(weights, 1e-12)[..., None]).astype(np.float32)
        self.weights = weights.astype(np.float32)
        # what the pairs add beyond the one quadratic, so that the value is the sum of each pair's
        self.rest = float(sum(np.sum(np.asarray(c, np.float32)[..., None] * _float(w) ** 2) for w, c in targets)
                          - np.sum(self.weights[..., None] * self.mean ** 2))
        self.weight = float(weight)
        self._at: dict = {}

    def _targets(self, shape):
        if shape not in self._at:
            self._at[shape] = (resize_field(self.mean, shape)[None], resize_field(self.weights, shape)[None, ..., None])
        return self._at[shape]

    def __call__(self, x: np.ndarray):
        target, weights = self._targets(tuple(x.shape[1:3]))
        difference = x - target
        scale = self.weight / x.size
        rest = self.rest * x.shape[1] * x.shape[2] / (self.weights.shape[0] * self.weights.shape[1])
        value = scale * (float(np.sum(weights * difference ** 2, dtype=np.float64)) + rest)
        return value, (2 * scale * weights * difference).astype(np.float32)

    def start(self, elsewhere: np.ndarray) -> np.ndarray:
        """The picture to start from: where the references are trusted, their weighted mean (the
        penalty's own minimum); elsewhere (newly seen, or where the flow fails) ``elsewhere``."""
        mixed = np.where((self.weights > 0)[..., None], self.mean, _float(elsewhere))
        return np.clip(np.round(mixed * 255), 0, 255).astype(np.uint8)
