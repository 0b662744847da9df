"""Style losses that compare feature distributions rather than Gram matrices, written once for both
step engines (the exporter traces them into the step graph like the Gram loss).

- ``w2``: the Wasserstein-2 distance between the Gaussians with each layer's mean and covariance,
  ``|mu - mu_t|^2 + tr(C) + tr(C_t) - 2 tr((C_t^1/2 C C_t^1/2)^1/2)`` (as in crowsonkb's
  style-transfer-pytorch), means over the channels.
- ``sliced``: the sliced Wasserstein distance (Heitz et al. 2021): the features projected on
  ``k`` fixed directions, each projection's values sorted and compared with the style's sorted
  values (its quantiles, resampled to as many values).

ONNX has no eigendecomposition, so the matrix square root's trace is computed by coupled
Newton-Schulz iterations (matrix products only), whose by-product is the inverse square root
that its gradient needs; 20 iterations put the distance within 1e-3 of the eigendecomposition's
on VGG19's covariances (docs/BENCHMARKS.md). The targets (the style's mean and covariance square
root, or its sorted projections) come from ``engine.style_targets``.
"""
from __future__ import annotations

import tensorflow as tf

from .losses import _gram, _mean_square, difference

NEWTON_SCHULZ_STEPS = 20


def _flat(features):
    shape = tf.shape(features)
    return tf.reshape(features, tf.stack([1, shape[1] * shape[2], shape[3]])), shape[1] * shape[2]


@tf.custom_gradient
def trace_sqrt(m):
    """``tr(m^1/2)`` of a symmetric positive semi-definite ``(c, c)`` matrix (static ``c``), and its
    gradient ``m^-1/2 / 2``, both from one coupled Newton-Schulz iteration on ``m / |m|_F``."""
    eye = tf.eye(m.shape[-1], dtype=m.dtype)
    norm = tf.sqrt(tf.reduce_sum(tf.square(m))) + tf.constant(1e-30, m.dtype)
    y, z = m / norm, eye
    for _ in range(NEWTON_SCHULZ_STEPS):
        t = 0.5 * (3.0 * eye - tf.linalg.matmul(z, y))
        y, z = tf.linalg.matmul(y, t), tf.linalg.matmul(t, z)
    root = tf.sqrt(norm)

    def grad(upstream):
        return upstream * z / (2.0 * root)
    return tf.reduce_sum(y * eye) * root, grad


def w2_layer_cost(features, mean_target, cov_sqrt_target):
    """The Gaussian Wasserstein-2 distance of ``(1, h, w, c)`` features to the style's: its mean
    ``(1, 1, c)`` and the square root of its covariance ``(1, c, c)``, over ``c``."""
    flat, n = _flat(features)
    channels = features.shape[-1]
    mean = tf.reduce_mean(flat, axis=1, keepdims=True)
    cov = _gram(flat) / tf.cast(n, features.dtype) - tf.linalg.matmul(mean, mean, transpose_a=True)
    eye = tf.eye(channels, dtype=features.dtype)[None]
    bures = trace_sqrt(tf.reshape(tf.linalg.matmul(cov_sqrt_target, tf.linalg.matmul(cov, cov_sqrt_target)),
                                  [channels, channels]))
    spread = tf.reduce_sum(cov * eye) + tf.reduce_sum(tf.square(cov_sqrt_target)) - 2.0 * bures
    return tf.reduce_mean(tf.square(difference(mean, mean_target))) + spread / channels


@tf.custom_gradient
def _sorted_rows(values):
    """Each row of ``(k, n)`` sorted, largest first; the gradient goes back to where each value was."""
    k, n = tf.shape(values)[0], tf.shape(values)[1]
    ordered, where = tf.math.top_k(values, k=n, sorted=True)

    def grad(upstream):
        rows = tf.broadcast_to(tf.range(k)[:, None], tf.shape(where))
        return tf.scatter_nd(tf.stack([rows, where], axis=-1), upstream, tf.shape(values))
    return ordered, grad


def sliced_layer_cost(features, projection, sorted_target):
    """The sliced Wasserstein distance of ``(1, h, w, c)`` features to the style's: the features
    projected on the columns of ``projection`` ``(c, k)``, sorted, against the style's sorted
    projections resampled to ``h * w`` values, ``(k, h * w)``."""
    shape = tf.shape(features)
    rows = tf.reshape(features, tf.stack([shape[1] * shape[2], shape[3]]))
    projected = tf.linalg.matmul(projection, rows, transpose_a=True, transpose_b=True)   # (k, n)
    return _mean_square(difference(_sorted_rows(projected), sorted_target))
