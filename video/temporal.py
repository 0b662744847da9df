"""The short-term temporal loss of Ruder, Dosovitskiy and Brox (2016), eq. 7, as a pixel-space
penalty the engine adds to either step engine's loss and gradient:

    L = weight / D * sum_x c(x) * (x_t(x) - w(x))^2

w the previous output warped onto this frame, c the consistency mask, D the number of values
(h * w * 3, the paper's dimensionality). Images here are in [0, 1], not Caffe's [0, 255], so the
paper's weight of 2e2 does not carry over."""
from __future__ import annotations

import numpy as np
from PIL import Image


def _resize(array: np.ndarray, shape) -> np.ndarray:
    h, w = shape
    if array.shape[:2] == (h, w):
        return array
    channels = array[..., None] if array.ndim == 2 else array
    out = np.stack([np.asarray(Image.fromarray(channels[..., c]).resize((w, h), Image.BILINEAR))
                    for c in range(channels.shape[-1])], -1)
    return out[..., 0] if array.ndim == 2 else out


class TemporalLoss:
    """``penalty(x) -> (value, gradient)`` for the float32 (1, h, w, 3) image of any scale: the
    target and mask are resized to that scale once and remembered."""

    def __init__(self, warped: np.ndarray, mask: np.ndarray, weight: float):
        self.warped = warped.astype(np.float32) / 255.0 if warped.dtype == np.uint8 else warped.astype(np.float32)
        self.mask = mask.astype(np.float32)
        self.weight = float(weight)
        self._at: dict = {}

    def _targets(self, shape):
        if shape not in self._at:
            self._at[shape] = (_resize(self.warped, shape)[None], _resize(self.mask, shape)[None, ..., None])
        return self._at[shape]

    def __call__(self, x: np.ndarray):
        target, mask = self._targets(tuple(x.shape[1:3]))
        difference = x - target
        scale = self.weight / x.size
        return scale * float(np.sum(mask * difference ** 2)), (2 * scale * mask * difference).astype(np.float32)
