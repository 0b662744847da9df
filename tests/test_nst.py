import numpy as np
import pytest
import tensorflow as tf

from engine.tf.nst import NST

MESSAGES = [
    ((None, "c"), TypeError, "style_image must be a numpy.ndarray with shape (h, w, 3)"),
    (("s", None), TypeError, "content_image must be a numpy.ndarray with shape (h, w, 3)"),
]


@pytest.fixture(scope="module")
def nst(style_image, content_image):
    return NST(style_image, content_image)


def test_class_attributes():
    assert NST.style_layers == ['block1_conv1', 'block2_conv1', 'block3_conv1', 'block4_conv1', 'block5_conv1']
    assert NST.content_layer == 'block5_conv2'


def test_init_validation_in_order(style_image, content_image):
    bad = np.zeros((4, 4))
    cases = [
        ((bad, bad, -1), 'style_image must be a numpy.ndarray with shape (h, w, 3)'),
        ((style_image, bad, -1), 'content_image must be a numpy.ndarray with shape (h, w, 3)'),
        ((style_image, content_image, -1, -1), 'alpha must be a non-negative number'),
        ((style_image, content_image, 1, "b", -1), 'beta must be a non-negative number'),
        ((style_image, content_image, 1, 1, -1), 'var must be a non-negative number'),
    ]
    for args, message in cases:
        with pytest.raises(TypeError) as info:
            NST(*args)
        assert str(info.value) == message


def test_scale_image(content_image):
    with pytest.raises(TypeError, match=r"^image must be a numpy.ndarray with shape \(h, w, 3\)$"):
        NST.scale_image(np.zeros((3, 3, 4)))
    scaled = NST.scale_image(content_image)
    assert isinstance(scaled, tf.Tensor) and scaled.shape == (1, 341, 512, 3)
    assert 0 <= float(tf.reduce_min(scaled)) and float(tf.reduce_max(scaled)) <= 1
    tall = NST.scale_image(np.zeros((100, 50, 3)))
    assert tall.shape == (1, 512, 256, 3)


def test_model_and_features(nst):
    assert len(nst.model.outputs) == 6
    assert not any(isinstance(l, tf.keras.layers.MaxPooling2D) for l in nst.model.layers)
    assert any(isinstance(l, tf.keras.layers.AveragePooling2D) for l in nst.model.layers)
    assert [g.shape for g in nst.gram_style_features] == [(1, 64, 64), (1, 128, 128), (1, 256, 256),
                                                          (1, 512, 512), (1, 512, 512)]
    assert nst.content_feature.shape == (1, 21, 32, 512)


def test_gram_matrix_divides_by_hw():
    with pytest.raises(TypeError, match="^input_layer must be a tensor of rank 4$"):
        NST.gram_matrix(tf.zeros((2, 3)))
    x = tf.random.stateless_uniform((1, 3, 5, 4), seed=(1, 2))
    flat = x.numpy().reshape(15, 4)
    np.testing.assert_allclose(NST.gram_matrix(x).numpy()[0], flat.T @ flat / 15, rtol=1e-5)
    assert NST.gram_matrix(tf.Variable(x)).shape == (1, 4, 4)


def test_cost_validations_and_values(nst):
    out = nst.model(tf.keras.applications.vgg19.preprocess_input(nst.content_image * 255))
    with pytest.raises(TypeError, match="^style_output must be a tensor of rank 4$"):
        nst.layer_style_cost(tf.zeros((3, 3)), nst.gram_style_features[0])
    with pytest.raises(TypeError) as info:
        nst.layer_style_cost(out[0], tf.zeros((1, 3, 3)))
    assert str(info.value) == 'gram_target must be a tensor of shape [1, 64, 64]'
    with pytest.raises(TypeError) as info:
        nst.style_cost(list(out[:3]))
    assert str(info.value) == 'style_outputs must be a list with a length of 5'
    with pytest.raises(TypeError) as info:
        nst.content_cost(tf.zeros((1, 2, 2, 512)))
    assert str(info.value) == f'content_output must be a tensor of shape {nst.content_feature.shape}'

    layer = nst.layer_style_cost(out[0], nst.gram_style_features[0])
    diff = NST.gram_matrix(out[0]) - nst.gram_style_features[0]
    np.testing.assert_allclose(float(layer), float(tf.reduce_mean(diff ** 2)), rtol=1e-5)
    per_layer = [float(nst.layer_style_cost(o, g)) for o, g in zip(out[:5], nst.gram_style_features)]
    np.testing.assert_allclose(float(nst.style_cost(list(out[:5]))), sum(per_layer) / 5, rtol=1e-5)
    assert float(nst.content_cost(out[5])) == pytest.approx(0.0, abs=1e-6)


def test_total_cost_and_grads(nst):
    with pytest.raises(TypeError) as info:
        nst.total_cost(tf.zeros((1, 10, 10, 3)))
    assert str(info.value) == f'generated_image must be a tensor of shape {nst.content_image.shape}'
    with pytest.raises(TypeError) as info:
        nst.compute_grads(tf.zeros((1, 10, 10, 3)))
    assert str(info.value) == f'generated_image must be a tensor of shape {nst.content_image.shape}'
    image = tf.clip_by_value(nst.content_image + tf.random.stateless_normal(nst.content_image.shape, (3, 4)) * 0.05,
                             0, 1)
    J, Jc, Js, Jv = nst.total_cost(image)
    np.testing.assert_allclose(float(J), 1e4 * float(Jc) + float(Js) + 10 * float(Jv), rtol=1e-5)
    np.testing.assert_allclose(float(Jv), float(tf.image.total_variation(image)[0]), rtol=1e-6)
    grads, J2, *_ = nst.compute_grads(image)
    assert grads.shape == image.shape and float(J2) == pytest.approx(float(J), rel=1e-5)
    step = 1e-3 / float(tf.reduce_max(tf.abs(grads)))
    lower = nst.total_cost(image - step * grads)[0]
    assert float(lower) < float(J)


def test_generate_image_validation(nst):
    cases = [
        (dict(iterations=1.5), TypeError, 'iterations must be an integer'),
        (dict(iterations=0), ValueError, 'iterations must be positive'),
        (dict(iterations=5, step=1.0), TypeError, 'step must be an integer'),
        (dict(iterations=5, step=5), ValueError, 'step must be positive and less than iterations'),
        (dict(iterations=5, step=0), ValueError, 'step must be positive and less than iterations'),
        (dict(iterations=5, lr="x"), TypeError, 'lr must be a number'),
        (dict(iterations=5, lr=0), ValueError, 'lr must be positive'),
        (dict(iterations=5, beta1=1), TypeError, 'beta1 must be a float'),
        (dict(iterations=5, beta1=1.5), ValueError, 'beta1 must be in the range [0, 1]'),
        (dict(iterations=5, beta2=1), TypeError, 'beta2 must be a float'),
        (dict(iterations=5, beta2=-0.1), ValueError, 'beta2 must be in the range [0, 1]'),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error) as info:
            nst.generate_image(**kwargs)
        assert str(info.value) == message


def test_generate_image_returns_best_and_prints(nst, capsys):
    image, cost = nst.generate_image(iterations=4, step=2, lr=0.02)
    lines = capsys.readouterr().out.strip().splitlines()
    assert [l.split(":")[0] for l in lines] == ["Cost at iteration 0", "Cost at iteration 2", "Cost at iteration 3"]
    assert all(", content " in l and ", style " in l and ", var " in l for l in lines)
    printed = [float(l.split(": ")[1].split(",")[0]) for l in lines]
    assert cost <= min(printed) and cost < printed[0]
    assert image.shape == (341, 512, 3) and 0 <= image.min() and image.max() <= 1
    np.testing.assert_allclose(float(nst.total_cost(tf.constant(image[None]))[0]), cost, rtol=1e-4)
