"""The seed's ``NST`` class: the small, faithful, readable core (see docs/seed-contract.md).

Its losses are the shared ones in ``engine.tf.losses``; the fast ``stylize`` loop is built
beside it and does not change its behaviour.
"""
from __future__ import annotations

import functools
import numbers

import numpy as np

from models.keras_vgg19 import keras, tf
from models.weights import load_weights

from . import losses


@functools.lru_cache(maxsize=1)
def _weights():
    return load_weights()


def _is_rank4(value) -> bool:
    return isinstance(value, (tf.Tensor, tf.Variable)) and len(value.shape) == 4


def _non_negative(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value >= 0


class NST:
    """Neural style transfer (Gatys et al.) on VGG19 with average pooling."""

    style_layers = ['block1_conv1', 'block2_conv1', 'block3_conv1', 'block4_conv1', 'block5_conv1']
    content_layer = 'block5_conv2'

    def __init__(self, style_image, content_image, alpha=1e4, beta=1, var=10):
        if not isinstance(style_image, np.ndarray) or style_image.ndim != 3 or style_image.shape[2] != 3:
            raise TypeError('style_image must be a numpy.ndarray with shape (h, w, 3)')
        if not isinstance(content_image, np.ndarray) or content_image.ndim != 3 or content_image.shape[2] != 3:
            raise TypeError('content_image must be a numpy.ndarray with shape (h, w, 3)')
        if not _non_negative(alpha):
            raise TypeError('alpha must be a non-negative number')
        if not _non_negative(beta):
            raise TypeError('beta must be a non-negative number')
        if not _non_negative(var):
            raise TypeError('var must be a non-negative number')
        self.style_image = self.scale_image(style_image)
        self.content_image = self.scale_image(content_image)
        self.alpha = alpha
        self.beta = beta
        self.var = var
        self.load_model()
        self.generate_features()

    @staticmethod
    def scale_image(image):
        """Largest side to 512 px (bicubic), values to [0, 1]; returns ``(1, h_new, w_new, 3)``."""
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
            raise TypeError('image must be a numpy.ndarray with shape (h, w, 3)')
        h, w = image.shape[:2]
        scale = 512 / max(h, w)
        h_new, w_new = max(1, round(h * scale)), max(1, round(w * scale))
        resized = tf.image.resize(np.asarray(image, np.float32)[None], (h_new, w_new), method='bicubic')
        return tf.clip_by_value(resized / 255.0, 0.0, 1.0)

    def load_model(self):
        """Keras VGG19 (notop, ImageNet weights, frozen) with max pooling replaced by average pooling."""
        base = keras.applications.VGG19(include_top=False, weights=None)
        weights = _weights()
        for layer in base.layers:
            if layer.name in weights.kernels:
                layer.set_weights([weights.kernels[layer.name], weights.biases[layer.name]])
        x, outputs = base.input, {}
        for layer in base.layers[1:]:
            if isinstance(layer, keras.layers.MaxPooling2D):
                layer = keras.layers.AveragePooling2D(layer.pool_size, layer.strides, layer.padding, name=layer.name)
            x = layer(x)
            outputs[layer.name] = x
        model = keras.Model(base.input, [outputs[n] for n in self.style_layers + [self.content_layer]])
        model.trainable = False
        self.model = model

    @staticmethod
    def gram_matrix(input_layer):
        if not _is_rank4(input_layer):
            raise TypeError('input_layer must be a tensor of rank 4')
        return losses.gram_matrix(input_layer)

    def _features(self, image):
        return self.model(keras.applications.vgg19.preprocess_input(image * 255))

    def generate_features(self):
        style_outputs = self._features(self.style_image)
        self.gram_style_features = [self.gram_matrix(o) for o in style_outputs[:-1]]
        self.content_feature = self._features(self.content_image)[-1]

    def layer_style_cost(self, style_output, gram_target):
        if not _is_rank4(style_output):
            raise TypeError('style_output must be a tensor of rank 4')
        c = style_output.shape[-1]
        if not isinstance(gram_target, (tf.Tensor, tf.Variable)) or gram_target.shape != (1, c, c):
            raise TypeError(f'gram_target must be a tensor of shape [1, {c}, {c}]')
        return losses.layer_style_cost(style_output, gram_target)

    def style_cost(self, style_outputs):
        length = len(self.style_layers)
        if not isinstance(style_outputs, list) or len(style_outputs) != length:
            raise TypeError(f'style_outputs must be a list with a length of {length}')
        weight = 1 / length
        return tf.add_n([weight * self.layer_style_cost(o, g)
                         for o, g in zip(style_outputs, self.gram_style_features)])

    def content_cost(self, content_output):
        shape = self.content_feature.shape
        if not isinstance(content_output, (tf.Tensor, tf.Variable)) or content_output.shape != shape:
            raise TypeError(f'content_output must be a tensor of shape {shape}')
        return losses.content_cost(content_output, self.content_feature)

    @staticmethod
    def variational_cost(generated_image):
        return losses.variational_cost(generated_image)

    def total_cost(self, generated_image):
        shape = self.content_image.shape
        if not isinstance(generated_image, (tf.Tensor, tf.Variable)) or generated_image.shape != shape:
            raise TypeError(f'generated_image must be a tensor of shape {shape}')
        outputs = self._features(generated_image)
        J_content = self.content_cost(outputs[-1])
        J_style = self.style_cost(list(outputs[:-1]))
        J_var = self.variational_cost(generated_image)
        J = self.alpha * J_content + self.beta * J_style + self.var * J_var
        return J, J_content, J_style, J_var

    def compute_grads(self, generated_image):
        shape = self.content_image.shape
        if not isinstance(generated_image, (tf.Tensor, tf.Variable)) or generated_image.shape != shape:
            raise TypeError(f'generated_image must be a tensor of shape {shape}')
        with tf.GradientTape() as tape:
            tape.watch(generated_image)
            J, J_content, J_style, J_var = self.total_cost(generated_image)
        return tape.gradient(J, generated_image), J, J_content, J_style, J_var

    def generate_image(self, iterations=1000, step=None, lr=0.01, beta1=0.9, beta2=0.99):
        """Adam from the content image; returns the lowest-cost image seen, ``(h, w, 3)`` in [0, 1], and its cost."""
        if not isinstance(iterations, int) or isinstance(iterations, bool):
            raise TypeError('iterations must be an integer')
        if iterations <= 0:
            raise ValueError('iterations must be positive')
        if step is not None:
            if not isinstance(step, int) or isinstance(step, bool):
                raise TypeError('step must be an integer')
            if not 0 < step < iterations:
                raise ValueError('step must be positive and less than iterations')
        if not isinstance(lr, numbers.Real) or isinstance(lr, bool):
            raise TypeError('lr must be a number')
        if lr <= 0:
            raise ValueError('lr must be positive')
        for name, beta in (('beta1', beta1), ('beta2', beta2)):
            if not isinstance(beta, float):
                raise TypeError(f'{name} must be a float')
            if not 0 <= beta <= 1:
                raise ValueError(f'{name} must be in the range [0, 1]')

        image = tf.Variable(self.content_image)
        optimizer = keras.optimizers.Adam(learning_rate=lr, beta_1=beta1, beta_2=beta2)

        @tf.function
        def train_step():
            before = tf.identity(image)
            grads, J, J_content, J_style, J_var = self.compute_grads(image)
            optimizer.apply_gradients([(grads, image)])
            image.assign(tf.clip_by_value(image, 0.0, 1.0))
            return before, J, J_content, J_style, J_var

        best_image, best_cost = None, float('inf')
        for i in range(iterations):
            before, J, J_content, J_style, J_var = train_step()
            cost = float(J)
            if cost < best_cost:
                best_image, best_cost = before, cost
            if step is not None and (i % step == 0 or i == iterations - 1):
                print(f'Cost at iteration {i}: {cost}, content {float(J_content)}, '
                      f'style {float(J_style)}, var {float(J_var)}')
        return best_image.numpy()[0], best_cost
