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
