"""The fixed targets of a style transfer: content features and blended style Gram matrices,
computed once per scale by either feature backend (``OrtFeatures`` or ``TfFeatures``)."""
from __future__ import annotations

import numpy as np


def gram_numpy(features: np.ndarray) -> np.ndarray:
    """Gram matrix of ``(1, h, w, c)`` features divided by ``h * w``, as ``losses.gram_matrix``."""
    _, h, w, c = features.shape
    flat = features.reshape(h * w, c).astype(np.float32)
    return (flat.T @ flat) / np.float32(h * w)


def compute_targets(backend, content: np.ndarray, styles: list, blend, style_layers, content_layers):
    """``(content features by layer, blended Grams by layer)`` of float ``(h, w, 3)`` images in
    [0, 1]; ``blend`` holds one weight per style image (summing to 1)."""
    features = backend(content[None])
    content_targets = {n: features[n] for n in content_layers}
    grams = {n: 0.0 for n in style_layers}
    for style, share in zip(styles, blend):
        style_features = backend(style[None])
        for n in style_layers:
            grams[n] = grams[n] + share * gram_numpy(style_features[n])
    return content_targets, grams
