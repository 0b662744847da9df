"""Colour control (Gatys et al. 2017, section 5): the output keeps the content's colours, by
luminance-only transfer (``engine.images.preserve_colors``, applied after the run) or by
recolouring the style images to the content's colour statistics before it; or the content is
recoloured to the style's, for a picture in the painting's palette.

Recolouring matches the mean and covariance of the RGB pixels with the symmetric
square-root transform (the "image analogies" variant of the paper: it rotates colours less than
a Cholesky transform).
"""
from __future__ import annotations

import numpy as np


def color_statistics(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(3,)`` and covariance ``(3, 3)`` of a uint8 RGB picture's pixels, in [0, 1]."""
    pixels = image.reshape(-1, 3).astype(np.float64) / 255.0
    return pixels.mean(axis=0), np.cov(pixels, rowvar=False) + 1e-5 * np.eye(3)


def mixed_statistics(images: list, weights) -> tuple[np.ndarray, np.ndarray]:
    """The statistics of a blend of pictures: their pixels pooled, each picture weighing ``weights[i]``."""
    stats = [color_statistics(i) for i in images]
    mean = sum(w * m for (m, _), w in zip(stats, weights))
    second = sum(w * (c + np.outer(m, m)) for (m, c), w in zip(stats, weights))
    return mean, second - np.outer(mean, mean)


def _sqrtm(matrix: np.ndarray, power: float) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.maximum(values, 1e-10) ** power) @ vectors.T


def match_colors(image: np.ndarray, mean: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """uint8 RGB ``image`` recoloured so that its pixels have ``mean`` and ``covariance``."""
    own_mean, own_cov = color_statistics(image)
    transform = _sqrtm(covariance, 0.5) @ _sqrtm(own_cov, -0.5)
    pixels = image.reshape(-1, 3).astype(np.float64) / 255.0
    out = (pixels - own_mean) @ transform.T + mean
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8).reshape(image.shape)
