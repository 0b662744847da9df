"""The losses of Gatys et al., written once and shared by the NST class, the fast loop and the exporter."""
from __future__ import annotations

import tensorflow as tf


def gram_matrix(features):
    """``(1, h, w, c)`` -> ``(1, c, c)``: feature correlations divided by ``h * w``."""
    shape = tf.shape(features)
    # a reshape and one batched product (not einsum): converted to ONNX, this stays a plain
    # MatMul instead of 5-D transposes of the whole feature map
    flat = tf.reshape(features, tf.stack([shape[0], shape[1] * shape[2], shape[3]]))
    return _gram(flat) / tf.cast(shape[1] * shape[2], features.dtype)


@tf.custom_gradient
def _gram(flat):
    """``flat^T flat`` for ``(b, n, c)``, with its gradient as one product, ``flat (g + g^T)``,
    where automatic differentiation makes two ``(n, c) x (c, c)`` products and adds them."""
    def grad(upstream):
        return tf.linalg.matmul(flat, upstream + tf.linalg.matrix_transpose(upstream))
    return tf.linalg.matmul(flat, flat, transpose_a=True), grad


def _mean_square(x):
    """``mean(x ** 2)`` as a mean of row means: the same number, but converted to ONNX the two
    short reductions keep float32 error near TensorFlow's (one long ReduceMean in ONNX Runtime
    was 1.3e-5 off float64 on a 512x512 Gram difference, this way ~1e-7). The row means keep
    their axis so that the gradient of a map of any size needs no ``DynamicStitch`` (which
    tf2onnx converts only for some index shapes)."""
    return tf.reduce_mean(tf.reduce_mean(tf.square(x), axis=-1, keepdims=True))


@tf.custom_gradient
def difference(a, b):
    """``a - b`` for two tensors of the same shape. Written with its gradient so that a trace at
    any image size needs no ``BroadcastGradientArgs``: TensorFlow emits one for a plain ``-``
    whenever it cannot prove two dynamic shapes equal, and tf2onnx has no converter for it."""
    def grad(upstream):
        return upstream, -upstream
    return a - b, grad


def layer_style_cost(features, gram_target):
    return _mean_square(difference(gram_matrix(features), gram_target))


def masked_gram_matrix(features, masks):
    """``(1, h, w, c)`` features and ``(R, h, w, 1)`` masks -> ``(R, c, c)``: each region's feature
    correlations, ``F^T diag(m) F / sum(m)``. One region of ones is ``gram_matrix``; a region is
    compared with its style's whole Gram, as in Gatys et al. 2017 (spatial control)."""
    shape = tf.shape(features)
    n = shape[1] * shape[2]
    flat = tf.reshape(features, tf.stack([1, n, shape[3]]))
    weights = tf.reshape(masks, tf.stack([tf.shape(masks)[0], n, 1]))
    area = tf.maximum(tf.reduce_sum(weights, axis=1, keepdims=True), tf.constant(1e-6, features.dtype))
    return times_fixed(_weighted_gram(flat, weights), 1.0 / area)


@tf.custom_gradient
def times_fixed(x, fixed):
    """``x * fixed`` where ``fixed`` (a mask, a weight) broadcasts into ``x`` and is never
    optimised: written with its gradient, like ``difference``, so that no ``BroadcastGradientArgs``
    enters a trace at any size."""
    def grad(upstream):
        return upstream * fixed, tf.zeros_like(fixed)
    return x * fixed, grad


@tf.custom_gradient
def _weighted_gram(flat, weights):
    """``(m * flat)^T flat`` per region for ``flat`` ``(1, n, c)`` and ``weights`` ``(R, n, 1)``,
    with the gradient with respect to ``flat`` as one product per region, ``Σ_r m_r flat (g_r + g_r^T)``;
    the masks are inputs, never optimised (no gradient)."""
    def grad(upstream):
        per_region = weights * tf.linalg.matmul(flat, upstream + tf.linalg.matrix_transpose(upstream))
        return tf.reduce_sum(per_region, axis=0, keepdims=True), tf.zeros_like(weights)
    return tf.linalg.matmul(weights * flat, flat, transpose_a=True), grad


def masked_layer_style_cost(features, masks, gram_targets, region_weights):
    """``Σ_r region_weights[r] * mean((G_r - T_r)^2)``: ``layer_style_cost`` of each masked region."""
    square = tf.square(difference(masked_gram_matrix(features, masks), gram_targets))
    # means that keep their axes: the gradient of a mean that drops them needs a DynamicStitch
    per_region = tf.reduce_mean(tf.reduce_mean(square, axis=-1, keepdims=True), axis=[1, 2], keepdims=True)
    return tf.reduce_sum(times_fixed(per_region, tf.reshape(region_weights, [-1, 1, 1])))


def masked_content_cost(features, target, mask):
    """``mean(m * (F - T)^2)``: ``content_cost`` where the ``(1, h, w, 1)`` mask is 1, less where it is less."""
    square = times_fixed(tf.square(difference(features, target)), mask)
    return tf.reduce_mean(tf.reduce_mean(square, axis=-1, keepdims=True))


def style_cost(features_by_layer, gram_targets, layer_weights):
    """Weighted sum of per-layer style costs; the three arguments are parallel sequences."""
    return tf.add_n([w * layer_style_cost(f, g)
                     for f, g, w in zip(features_by_layer, gram_targets, layer_weights)])


def content_cost(features, target):
    return _mean_square(difference(features, target))


def variational_cost(image):
    """Total variation: ``tf.image.total_variation`` summed over the batch (the sum of absolute
    differences between neighbouring pixels, down and across), with ``difference`` for the
    neighbours so that the step traces at any size."""
    down = difference(image[:, 1:, :, :], image[:, :-1, :, :])
    across = difference(image[:, :, 1:, :], image[:, :, :-1, :])
    return tf.reduce_sum(tf.abs(down)) + tf.reduce_sum(tf.abs(across))
