"""The fixed targets of a style transfer: content features and blended style Gram matrices,
computed once per scale by either feature backend (``OrtFeatures`` or ``TfFeatures``)."""
from __future__ import annotations

import numpy as np


def gram_numpy(features: np.ndarray) -> np.ndarray:
    """Gram matrix of ``(1, h, w, c)`` features divided by ``h * w``, as ``losses.gram_matrix``."""
    _, h, w, c = features.shape
    flat = features.reshape(h * w, c).astype(np.float32)
    return (flat.T @ flat) / np.float32(h * w)


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
