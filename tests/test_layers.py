"""Layers: gradients against central finite differences (float64), batched and
unbatched; shapes, dtypes, parameter updates, initialisation, errors."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastcnn
from fastcnn import layers
from fastcnn.optimizers import SGD

from _helpers import numerical_gradient

RTOL = 1e-6
ATOL = 1e-8


def check_gradients(layer, x, rng, prepare=lambda: None):
    """The layer's input and parameter gradients against finite differences of
    sum(forward(x) * weights), with learning_rate=0 (parameters must not move)."""
    prepare()
    y = layer.forward(x)
    weights = rng.standard_normal(np.shape(y))
    before = {name: p.copy() for name, p in layer.parameters.items()}
    grad_x = layer.backward(weights, 0.0)
    gradients = dict(layer.gradients)

    def loss():
        prepare()
        return float(np.sum(layer.forward(x) * weights))

    assert grad_x.shape == x.shape
    assert grad_x.dtype == np.float64
    np.testing.assert_allclose(grad_x, numerical_gradient(loss, x), rtol=RTOL, atol=ATOL)
    assert set(gradients) == set(layer.parameters)
    for name, parameter in layer.parameters.items():
        np.testing.assert_array_equal(parameter, before[name])
        assert gradients[name].shape == parameter.shape
        np.testing.assert_allclose(
            gradients[name], numerical_gradient(loss, parameter), rtol=RTOL, atol=ATOL,
            err_msg=f"gradient of {name}",
        )


def away_from_zero(rng, shape):
    """Normal values with |x| >= 0.1, so ReLU's kink is never within a step."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 0.1, np.sign(x + 1e-12) * 0.1 + x, x)


def float64(layer):
    return layer.astype(np.float64)


CONV_CASES = [
    pytest.param(dict(depth=3, kernel_size=3), (2, 2, 6, 5), id="k3"),
    pytest.param(dict(depth=2, kernel_size=3, stride=2, padding=1), (2, 3, 7, 6), id="k3-s2-p1"),
    pytest.param(
        dict(depth=2, kernel_size=(2, 3), stride=(2, 1), padding=(1, 0)), (2, 2, 6, 5),
        id="k2x3-s2x1-p1x0",
    ),
    pytest.param(dict(depth=2, kernel_size=3, stride=2), (1, 2, 8, 8), id="k3-s2-uncovered-edge"),
    pytest.param(dict(depth=4, kernel_size=1), (3, 3, 4, 4), id="k1"),
]

POOL_CASES = [
    pytest.param(dict(size=2), (2, 3, 6, 4), id="size2"),
    pytest.param(dict(size=3, stride=2), (2, 2, 7, 7), id="size3-s2-overlap"),
    pytest.param(dict(size=(2, 3), stride=(1, 2)), (1, 2, 5, 7), id="2x3-s1x2"),
    pytest.param(dict(size=2), (1, 1, 5, 5), id="size2-odd-edge"),
]


@pytest.mark.parametrize("unbatched", [False, True], ids=["batched", "unbatched"])
@pytest.mark.parametrize("arguments, shape", CONV_CASES)
def test_convolutional_gradients(arguments, shape, unbatched, rng):
    layer = float64(layers.Convolutional(**arguments, seed=1))
    x = rng.standard_normal(shape[1:] if unbatched else shape)
    layer.build(x.shape[-3:])
    layer.biases[:] = rng.standard_normal(layer.biases.shape)
    check_gradients(layer, x, rng)


@pytest.mark.parametrize("unbatched", [False, True], ids=["batched", "unbatched"])
def test_dense_gradients(unbatched, rng):
    layer = float64(layers.Dense(4, seed=2))
    x = rng.standard_normal((5,) if unbatched else (3, 5))
    layer.build((5,))
    layer.bias[:] = rng.standard_normal(4)
    check_gradients(layer, x, rng)


@pytest.mark.parametrize("unbatched", [False, True], ids=["batched", "unbatched"])
@pytest.mark.parametrize("arguments, shape", POOL_CASES)
@pytest.mark.parametrize("pool", [layers.MaxPool2D, layers.AvgPool2D], ids=["max", "avg"])
def test_pool_gradients(pool, arguments, shape, unbatched, rng):
    layer = float64(pool(**arguments))
    # distinct values, far apart compared with the step, so no max changes in a step
    x = rng.permutation(np.prod(shape)).reshape(shape) * 0.01
    check_gradients(layer, x[0] if unbatched else x, rng)


ELEMENTWISE = [
    pytest.param(layers.ReLU, id="relu"),
    pytest.param(layers.Tanh, id="tanh"),
    pytest.param(layers.Sigmoid, id="sigmoid"),
    pytest.param(lambda: layers.Activation(np.sin, np.cos), id="activation-sin"),
    pytest.param(layers.Softmax, id="softmax"),
    pytest.param(layers.Flatten, id="flatten"),
    pytest.param(lambda: layers.Reshape((3, 4)), id="reshape"),
]


@pytest.mark.parametrize("unbatched", [False, True], ids=["batched", "unbatched"])
@pytest.mark.parametrize("make", ELEMENTWISE)
def test_parameterless_gradients(make, unbatched, rng):
    layer = float64(make())
    x = away_from_zero(rng, (3, 2, 6))
    if unbatched:
        x = x[0]
        if isinstance(layer, (layers.Flatten, layers.Reshape)):
            layer.build(x.shape)
    check_gradients(layer, x, rng)
    if unbatched:
        batched = float64(make())
        assert layer.forward(x).shape == batched.forward(x[None]).shape[1:]


@pytest.mark.parametrize("unbatched", [False, True], ids=["batched", "unbatched"])
def test_dropout_gradients_with_a_fixed_mask(unbatched, rng):
    layer = float64(layers.Dropout(0.4))
    x = rng.standard_normal((4, 10) if not unbatched else (10,))

    def same_mask():
        layer.rng = np.random.default_rng(5)

    check_gradients(layer, x, rng, prepare=same_mask)
    assert 0 < np.count_nonzero(layer.mask == 0) < layer.mask.size


def test_dropout_scales_kept_values_and_is_off_when_not_training():
    layer = layers.Dropout(0.25, seed=0)
    x = np.ones((200, 50), np.float32)
    y = layer.forward(x)
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    assert abs(kept.mean() - 0.75) < 0.01
    layer.training = False
    np.testing.assert_array_equal(layer.forward(x), x)
    np.testing.assert_array_equal(layer.backward(x, 0.1), x)


def test_softmax_backward_is_the_jacobian_vector_product(rng):
    x = rng.standard_normal(5)
    g = rng.standard_normal(5)
    layer = float64(layers.Softmax())
    s = layer.forward(x)
    jacobian = np.diag(s) - np.outer(s, s)
    np.testing.assert_allclose(layer.backward(g, 0), jacobian @ g, rtol=1e-12, atol=1e-15)
    # the element-wise "derivative" s (1 - s) alone is not the answer
    assert not np.allclose(layer.backward(g, 0), s * (1 - s) * g)


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: layers.Dense(3, seed=0), (4, 6)),
        (lambda: layers.Convolutional(2, 3, padding=1, seed=0), (4, 2, 5, 5)),
        (lambda: layers.MaxPool2D(2), (4, 2, 6, 6)),
        (lambda: layers.AvgPool2D(3, stride=1), (4, 2, 6, 6)),
        (layers.Softmax, (4, 5)),
        (layers.Tanh, (4, 5)),
    ],
    ids=["dense", "conv", "maxpool", "avgpool", "softmax", "tanh"],
)
def test_one_unbatched_sample_matches_a_batch_of_one(make, shape, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    layer = make()
    batch_out = layer.forward(x)
    g = rng.standard_normal(batch_out.shape).astype(np.float32)
    batch_grad = layer.backward(g, 0.0)
    single_out = layer.forward(x[1])
    single_grad = layer.backward(g[1], 0.0)
    assert single_out.shape == batch_out.shape[1:]
    np.testing.assert_allclose(single_out, batch_out[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(single_grad, batch_grad[1], rtol=1e-5, atol=1e-6)


def test_backward_updates_parameters_by_gradient_descent(rng):
    layer = layers.Convolutional(3, 3, seed=0, dtype=np.float64)
    x = rng.standard_normal((2, 2, 5, 5))
    layer.forward(x)
    before = {name: p.copy() for name, p in layer.parameters.items()}
    layer.backward(rng.standard_normal((2, 3, 3, 3)), 0.1)
    for name, parameter in layer.parameters.items():
        np.testing.assert_allclose(parameter, before[name] - 0.1 * layer.gradients[name], rtol=1e-14)
        assert not np.array_equal(parameter, before[name])


def test_the_bias_gradient_is_summed_over_the_batch_and_positions():
    layer = layers.Convolutional(2, 3, dtype=np.float64, seed=0)
    layer.forward(np.zeros((3, 1, 5, 5)))
    layer.backward(np.ones((3, 2, 3, 3)), 0.0)
    np.testing.assert_array_equal(layer.gradients["biases"], [27.0, 27.0])


def test_backward_hands_each_pair_to_the_layers_optimizer(rng):
    seen = []

    class Recorder(fastcnn.optimizers.Optimizer):
        def update(self, parameter, gradient, learning_rate, state):
            seen.append((parameter.shape, gradient.shape, learning_rate))

    layer = layers.Dense(2, seed=0)
    layer.optimizer = Recorder()
    layer.forward(np.ones((3, 4)))
    layer.backward(np.ones((3, 2)), 0.5)
    assert seen == [((4, 2), (4, 2), 0.5), ((2,), (2,), 0.5)]


def test_shapes_are_inferred_on_the_first_forward_or_built_eagerly():
    lazy = layers.Convolutional(4, 3)
    assert lazy.kernels is None and lazy.parameters == {}
    lazy.forward(np.zeros((1, 2, 6, 6), np.float32))
    assert lazy.kernels.shape == (4, 2, 3, 3) and lazy.biases.shape == (4,)
    eager = layers.Convolutional(4, 3, input_shape=(2, 6, 6))
    assert eager.kernels.shape == (4, 2, 3, 3)
    assert eager.output_shape == (4, 4, 4)
    dense = layers.Dense(5, input_shape=7)
    assert dense.weights.shape == (7, 5) and dense.bias.shape == (5,)
    assert layers.MaxPool2D(2, input_shape=(3, 9, 8)).output_shape == (3, 4, 4)


def test_input_is_converted_to_the_layer_dtype():
    image = np.arange(2 * 1 * 4 * 4, dtype=np.uint8).reshape(2, 1, 4, 4)
    conv = layers.Convolutional(2, 3, seed=0)
    assert conv.forward(image).dtype == np.float32
    np.testing.assert_allclose(
        conv.forward(image), conv.forward(image.astype(np.float32)), rtol=1e-6
    )
    conv64 = layers.Convolutional(2, 3, seed=0, dtype=np.float64)
    assert conv64.forward(image).dtype == np.float64
    assert conv64.kernels.dtype == np.float64
    dense = layers.Dense(2, seed=0).astype(np.float64)
    assert dense.forward([[1, 2, 3]]).dtype == np.float64
    with pytest.raises(TypeError, match="numeric"):
        dense.forward(np.array([["a", "b", "c"]]))


def test_a_seed_makes_the_initialisation_reproducible():
    a = layers.Dense(20, input_shape=30, seed=7)
    b = layers.Dense(20, input_shape=30, seed=7)
    c = layers.Dense(20, input_shape=30, seed=8)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert not np.array_equal(a.weights, c.weights)
    np.testing.assert_array_equal(a.bias, 0)


def test_he_and_glorot_scales():
    he = layers.Dense(400, input_shape=600, init="he", seed=0)
    glorot = layers.Dense(400, input_shape=600, init="glorot", seed=0)
    assert abs(he.weights.std() - np.sqrt(2 / 600)) < 0.02 * np.sqrt(2 / 600)
    limit = np.sqrt(6 / 1000)
    assert abs(glorot.weights).max() <= limit
    assert abs(glorot.weights.std() - limit / np.sqrt(3)) < 0.02 * limit
    conv = layers.Convolutional(50, 5, input_shape=(20, 9, 9), init="he", seed=0)
    assert abs(conv.kernels.std() - np.sqrt(2 / 500)) < 0.03 * np.sqrt(2 / 500)


@pytest.mark.parametrize(
    "layer, text",
    [
        (layers.Dense(10), "Dense(10)"),
        (layers.Convolutional(6, 5, padding=2), "Convolutional(6, kernel_size=5, padding=2)"),
        (layers.Convolutional(5, (3, 2), stride=2), "Convolutional(5, kernel_size=(3, 2), stride=2)"),
        (layers.MaxPool2D(3, stride=2), "MaxPool2D(3, stride=2)"),
        (layers.AvgPool2D(), "AvgPool2D(2)"),
        (layers.Flatten(), "Flatten()"),
        (layers.Reshape((2, 3)), "Reshape((2, 3))"),
        (layers.Activation(np.sin, np.cos), "Activation(sin, cos)"),
        (layers.ReLU(), "ReLU()"),
        (layers.Tanh(), "Tanh()"),
        (layers.Sigmoid(), "Sigmoid()"),
        (layers.Softmax(), "Softmax()"),
        (layers.Dropout(0.5), "Dropout(0.5)"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_repr_shows_the_configuration(layer, text):
    assert repr(layer) == text


def test_config_is_json_and_rebuilds_the_layer():
    conv = layers.Convolutional(4, (3, 2), stride=2, padding=1, input_shape=(2, 8, 8), seed=3)
    config = json.loads(json.dumps(conv.config()))
    again = layers.Convolutional(**config)
    np.testing.assert_array_equal(again.kernels, conv.kernels)
    assert again.stride == (2, 2) and again.padding == (1, 1)
    for layer in [layers.Dense(3), layers.MaxPool2D(2), layers.Dropout(0.1, seed=2), layers.Reshape((4,))]:
        assert type(layer)(**json.loads(json.dumps(layer.config()))).config() == layer.config()


def test_forward_propagation_and_backward_propagation_are_the_same_methods():
    layer = layers.Dense(2, seed=0)
    x = np.ones((1, 3), np.float32)
    np.testing.assert_array_equal(layer.forward_propagation(x), layer.forward(x))
    assert layers.Dense.forward_propagation is layers.Dense.forward
    assert layers.Dense.backward_propagation is layers.Dense.backward


def test_a_subclass_may_use_either_name():
    class Double(layers.Layer):
        def forward_propagation(self, input):
            return 2 * input

        def backward_propagation(self, output_error, learning_rate):
            return 2 * output_error

    class Triple(layers.Layer):
        def forward(self, input):
            return 3 * input

        def backward(self, output_gradient, learning_rate):
            return 3 * output_gradient

    assert Double().forward(1.5) == 3.0 and Double().backward(1.0, 0.1) == 2.0
    assert Triple().forward_propagation(1.0) == 3.0 and Triple().backward_propagation(1.0, 0) == 3.0
    with pytest.raises(NotImplementedError, match="forward"):
        layers.Layer().forward(1)


def test_huge_inputs_give_finite_activations():
    x = np.array([[-1e30, 0.0, 1e30], [1e4, -1e4, 3.0]], np.float32)
    for layer in (layers.Sigmoid(), layers.Softmax(), layers.Tanh()):
        assert np.isfinite(layer.forward(x)).all(), layer
    np.testing.assert_allclose(layers.Softmax().forward(x)[0], [0, 0, 1])


@pytest.mark.parametrize(
    "action, error, match",
    [
        pytest.param(
            lambda: layers.Convolutional(2, 5).forward(np.zeros((1, 1, 3, 3))),
            ValueError, "larger than the padded input 3", id="conv-kernel-too-big",
        ),
        pytest.param(
            lambda: layers.Convolutional(2, 3).forward(np.zeros((3, 3))),
            ValueError, r"\(N, C, H, W\).*shape \(3, 3\)", id="conv-rank",
        ),
        pytest.param(
            lambda: layers.MaxPool2D(4).forward(np.zeros((1, 1, 3, 5))),
            ValueError, "larger than the padded input 3", id="pool-window-too-big",
        ),
        pytest.param(
            lambda: layers.Dense(2).forward(np.zeros((2, 3, 4))),
            ValueError, r"\(N, features\)", id="dense-rank",
        ),
        pytest.param(
            lambda: layers.Dense(2, input_shape=3).forward(np.zeros((2, 4))),
            ValueError, "built for 3 input features, got 4", id="dense-features",
        ),
        pytest.param(
            lambda: layers.Convolutional(2, 1, input_shape=(3, 4, 4)).forward(np.zeros((1, 2, 4, 4))),
            ValueError, "3 input channels, got 2", id="conv-channels",
        ),
        pytest.param(
            lambda: layers.Dense(2).backward(np.zeros((1, 2)), 0.1),
            RuntimeError, "before forward", id="backward-first",
        ),
        pytest.param(lambda: layers.Dense(0), ValueError, "units", id="units"),
        pytest.param(lambda: layers.Convolutional(2, 3, stride=0), ValueError, "stride", id="stride"),
        pytest.param(lambda: layers.Convolutional(2, 3, padding=-1), ValueError, "padding", id="padding"),
        pytest.param(lambda: layers.Dropout(1.0), ValueError, "rate", id="dropout-rate"),
        pytest.param(lambda: layers.Dense(2, init="xavier"), ValueError, "init", id="init"),
        pytest.param(
            lambda: layers.Dense(2, dtype=np.int32), TypeError, "float32 or float64", id="dtype"
        ),
        pytest.param(
            lambda: layers.Reshape((5,)).forward(np.zeros((2, 3))),
            ValueError, "cannot take", id="reshape-size",
        ),
        pytest.param(
            lambda: layers.Activation(np.sin, None),
            TypeError, "two functions", id="activation-functions",
        ),
    ],
)
def test_bad_use_raises_a_clear_error(action, error, match):
    with pytest.raises(error, match=match):
        action()


def test_wrong_gradient_shape_is_refused():
    layer = layers.Dense(2, seed=0)
    layer.forward(np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"gradient of shape \(2, 2\).*\(3, 2\)"):
        layer.backward(np.ones((2, 2)), 0.1)


def test_changing_the_optimizer_resets_its_state(rng):
    layer = layers.Dense(2, seed=0, dtype=np.float64)
    layer.optimizer = SGD(momentum=0.9)
    x = rng.standard_normal((3, 4))
    layer.forward(x)
    layer.backward(np.ones((3, 2)), 0.1)
    assert layer._optimizer_state["weights"]["velocity"].shape == (4, 2)
    layer.optimizer = SGD(momentum=0.5)
    assert layer._optimizer_state == {}


@st.composite
def conv_configs(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    height = draw(st.integers(max(1, kernel[0] - 2 * padding[0]), 6))
    width = draw(st.integers(max(1, kernel[1] - 2 * padding[1]), 6))
    return dict(
        depth=draw(st.integers(1, 3)), kernel_size=kernel, stride=stride, padding=padding,
    ), (draw(st.integers(1, 2)), draw(st.integers(1, 2)), height, width)


@settings(max_examples=25, deadline=None)
@given(conv_configs(), st.integers(0, 2**32 - 1))
def test_convolutional_gradients_for_any_shape(config, seed):
    arguments, shape = config
    rng = np.random.default_rng(seed)
    layer = float64(layers.Convolutional(**arguments, input_shape=shape[1:], seed=seed))
    layer.biases[:] = rng.standard_normal(layer.biases.shape)
    x = rng.standard_normal(shape)
    assert layer.forward(x).shape[1:] == layer.output_shape
    check_gradients(layer, x, rng)


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from([layers.MaxPool2D, layers.AvgPool2D]),
    st.tuples(st.integers(1, 3), st.integers(1, 3)),
    st.tuples(st.integers(1, 3), st.integers(1, 3)),
    st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(3, 7), st.integers(3, 7)),
    st.integers(0, 2**32 - 1),
)
def test_pool_gradients_for_any_shape(pool, size, stride, shape, seed):
    rng = np.random.default_rng(seed)
    layer = float64(pool(size, stride, input_shape=shape[1:]))
    x = rng.permutation(np.prod(shape)).reshape(shape) * 0.01
    assert layer.forward(x).shape[1:] == layer.output_shape
    check_gradients(layer, x, rng)
