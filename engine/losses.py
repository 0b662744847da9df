"""The losses of Gatys et al., written once and shared by the NST class, the fast loop and the exporter."""
from __future__ import annotations

import tensorflow as tf


def gram_matrix(features):
    """``(1, h, w, c)`` -> ``(1, c, c)``: feature correlations divided by ``h * w``."""
    shape = tf.shape(features)
    # a reshape and one batched product (not einsum): converted to ONNX, this stays a plain
    # MatMul instead of 5-D transposes of the whole feature map
    flat = tf.reshape(features, tf.stack([shape[0], shape[1] * shape[2], shape[3]]))
    gram = tf.linalg.matmul(flat, flat, transpose_a=True)
    return gram / tf.cast(shape[1] * shape[2], features.dtype)


def layer_style_cost(features, gram_target):
    return tf.reduce_mean(tf.square(gram_matrix(features) - gram_target))


def style_cost(features_by_layer, gram_targets, layer_weights):
    """Weighted sum of per-layer style costs; the three arguments are parallel sequences."""
    return tf.add_n([w * layer_style_cost(f, g)
                     for f, g, w in zip(features_by_layer, gram_targets, layer_weights)])


def content_cost(features, target):
    return tf.reduce_mean(tf.square(features - target))


def variational_cost(image):
    """Total variation, ``tf.image.total_variation`` summed over the batch."""
    return tf.reduce_sum(tf.image.total_variation(image))
