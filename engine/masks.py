"""Spatial control (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer"):
masks in [0, 1] that say where each style applies and where the content must be kept, brought
to the resolution of every VGG19 layer the way the network brings the image there.

The step graphs take the masks per layer (``step_feeds``), so the graph itself holds no
downsampling and both step engines compute the one masked loss of ``engine.tf.losses``. A picture
without masks is the case of one region, all ones.
"""
from __future__ import annotations

import numpy as np

from models.vgg19 import ALL_LAYERS, layer_index


def pools_before(layer: str) -> int:
    return sum(1 for name in ALL_LAYERS[:layer_index(layer)] if name.endswith("pool"))


def _halve(masks: np.ndarray) -> np.ndarray:
    """2x2 average, VALID (an odd last row or column dropped), as the network's pooling does."""
    r, h, w = masks.shape
    m = masks[:, :h // 2 * 2, :w // 2 * 2]
    return m.reshape(r, h // 2, 2, w // 2, 2).mean(axis=(2, 4), dtype=np.float32)


def layer_masks(masks: np.ndarray, layers) -> dict[str, np.ndarray]:
    """``(R, H, W)`` masks at image resolution -> ``{layer: (R, h, w, 1)}`` float32 at each layer's."""
    pyramid = [np.asarray(masks, np.float32)]
    out = {}
    for layer in layers:
        while len(pyramid) <= pools_before(layer):
            pyramid.append(_halve(pyramid[-1]))
        out[layer] = np.ascontiguousarray(pyramid[pools_before(layer)][..., None])
    return out


def mask_from_image(image: np.ndarray, shape) -> np.ndarray:
    """A greyscale picture (uint8 ``(h, w)`` or ``(h, w, 3)``) -> float32 ``(H, W)`` in [0, 1] at
    ``shape`` (resized when its size differs: a mask drawn at another resolution still fits)."""
    from PIL import Image
    array = np.asarray(image)
    if array.ndim == 3:
        array = np.asarray(Image.fromarray(array).convert("L"))
    h, w = shape
    if array.shape != (h, w):
        array = np.asarray(Image.fromarray(array).resize((w, h), Image.Resampling.BILINEAR))
    return array.astype(np.float32) / 255.0

