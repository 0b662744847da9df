"""What each style loss compares the picture's features with, made from the style images' features
in numpy (no TensorFlow: the ONNX Runtime feature extractor gives numpy arrays).

``--style-loss``: ``gram`` (Gatys et al.: each layer's Gram matrix), ``w2`` (the Gaussian
Wasserstein-2 distance: each layer's mean and the square root of its covariance) or ``sliced``
(the sliced Wasserstein distance: the features projected on fixed random directions, sorted).
The losses themselves are in ``engine.tf.losses`` and ``engine.tf.style_losses``.

Several styles blend as their distributions mix: Grams and means by weight (so a blended
covariance is the mixture's), sorted projections by weight (the 1-D Wasserstein barycentre).
The ``w2`` and ``sliced`` losses are scaled per layer so that a blank picture costs what it costs
under the Gram loss: ``--style-weight`` then means about the same strength for all three.
"""
from __future__ import annotations

import numpy as np

from .masks import pools_before
from .targets import gram_numpy

STYLE_LOSSES = ("gram", "w2", "sliced")


def layer_shape(shape, layer: str) -> tuple[int, int]:
    """The ``(h, w)`` of ``layer``'s feature map for an image of ``shape`` (VALID 2x2 pooling)."""
    h, w = shape
    for _ in range(pools_before(layer)):
        h, w = h // 2, w // 2
    return h, w


def projections(layer: str, channels: int, seed: int) -> np.ndarray:
    """``(c, c)`` orthonormal directions for ``layer``, the same for every style of a run's scale
    (blending needs one set), drawn anew per scale and seed."""
    rng = np.random.default_rng([seed, sum(map(ord, layer))])
    q, r = np.linalg.qr(rng.standard_normal((channels, channels)))
    return (q * np.sign(np.diag(r))).astype(np.float32)


def _quantiles(values: np.ndarray, count: int) -> np.ndarray:
    """Each row of sorted ``(k, m)`` values (largest first) resampled to ``count`` quantiles."""
    m = values.shape[1]
    if m == count:
        return values
    at = (np.arange(count) + 0.5) / count * m - 0.5
    return np.stack([np.interp(at, np.arange(m), row) for row in values]).astype(np.float32)


def style_statistics(kind: str, features: dict, layers, *, shape=None, seed: int = 0) -> dict:
    """One style image's statistics by layer, from its ``(1, h, w, c)`` features. ``sliced``
    needs the picture's ``shape`` (each layer's sorted values are resampled to its pixel count)
    and the ``seed`` of this scale's directions."""
    stats = {}
    for n in layers:
        f = features[n]
        gram = gram_numpy(f)
        if kind == "gram":
            stats[n] = gram
        elif kind == "w2":
            stats[n] = {"gram": gram, "mean": f.reshape(-1, f.shape[-1]).mean(axis=0, dtype=np.float64)}
        elif kind == "sliced":
            h, w = layer_shape(shape, n)
            directions = projections(n, f.shape[-1], seed)
            values = -np.sort(-(f.reshape(-1, f.shape[-1]) @ directions).T, axis=1)
            stats[n] = {"gram": gram, "projection": directions, "sorted": _quantiles(values, h * w)}
        else:
            raise ValueError(f"unknown style loss {kind!r}; expected one of {', '.join(STYLE_LOSSES)}")
    return stats


def blend_statistics(kind: str, stats: list, blend, layers) -> dict:
    """The targets of the blended styles (``blend``: one weight per style, summing to 1): for
    ``gram`` the Grams by layer, as ``engine.targets.blend_grams``; for the others a dict per layer
    that ``engine.spec.step_feeds`` takes apart."""
    out = {}
    for n in layers:
        gram = sum(share * (s[n] if kind == "gram" else s[n]["gram"]) for s, share in zip(stats, blend))
        if kind == "gram":
            out[n] = gram
            continue
        c = gram.shape[-1]
        blank_gram_cost = float(np.mean(np.square(gram, dtype=np.float64)))
        if kind == "w2":
            mean = sum(share * s[n]["mean"] for s, share in zip(stats, blend))
            cov = gram.astype(np.float64) - np.outer(mean, mean)
            values, vectors = np.linalg.eigh((cov + cov.T) / 2)
            root = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
            blank = float(np.mean(mean ** 2) + np.trace(cov) / c)
            out[n] = {"mean": mean.astype(np.float32).reshape(1, 1, c), "cov_sqrt": root.astype(np.float32)[None],
                      "scale": blank_gram_cost / max(blank, 1e-30)}
        else:
            ordered = sum(share * s[n]["sorted"] for s, share in zip(stats, blend)).astype(np.float32)
            blank = float(np.trace(gram)) / c
            out[n] = {"projection": stats[0][n]["projection"], "sorted": ordered,
                      "scale": blank_gram_cost / max(blank, 1e-30)}
    return out
