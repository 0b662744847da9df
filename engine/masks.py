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

    from .images import resize_field
    array = np.asarray(image)
    if array.ndim == 3:
        array = np.asarray(Image.fromarray(array).convert("L"))
    return np.clip(resize_field(array.astype(np.float32) / 255.0, shape), 0, 1)


def check_masks(masks, content_mask, styles: int) -> list | None:
    """Style masks, one per style image, as uint8 pictures (None: no spatial control), and the
    content mask's kind: what ``Stylizer.run`` takes, checked before any work (the CLI calls it
    before the weights load)."""
    from .settings import SettingsError
    if content_mask is not None:
        content_mask = np.asarray(content_mask)
        if content_mask.ndim not in (2, 3) or content_mask.dtype != np.uint8 or 0 in content_mask.shape:
            raise ValueError("the content mask must be a uint8 picture")
    if not masks:
        return None
    if len(masks) != styles:
        raise SettingsError("masks", f"gives {len(masks)} mask(s) for {styles} style image(s): one per style")
    masks = [np.asarray(m) for m in masks]
    for i, m in enumerate(masks):
        if m.ndim not in (2, 3) or m.dtype != np.uint8 or 0 in m.shape:
            raise ValueError(f"mask {i + 1} must be a uint8 picture, not {m.dtype} {m.shape}")
        if int(m.max()) == 0:
            raise SettingsError("masks", f"number {i + 1} is black everywhere: its style would apply nowhere")
    return masks
