"""fastcnn.compat: the write-ups' code runs with only its imports changed, keeps each
write-up's layouts, and gives correct gradients where the write-ups' formulas do not."""

import inspect

import numpy as np
import pytest

from fastcnn import compat, layers

from _helpers import numerical_gradient


def check_input_gradient(layer, x, rng, rtol=1e-6):
    y = layer.forward(x)
    weights = rng.standard_normal(np.shape(y))
    grad_x = layer.backward(weights, 0.0)
    gradients = dict(layer.gradients)

    def loss():
        return float(np.sum(layer.forward(x) * weights))

    assert np.shape(grad_x) == np.shape(x)
    np.testing.assert_allclose(grad_x, numerical_gradient(loss, x), rtol=rtol, atol=1e-8)
    for name, parameter in layer.parameters.items():
        np.testing.assert_allclose(gradients[name], numerical_gradient(loss, parameter), rtol=rtol, atol=1e-8)
    return y


def test_writeup_002_network_trains_with_train_and_predict(rng, capsys):
    x_train = rng.random((20, 1, 10, 10))
    labels = rng.integers(0, 4, 20)
    x_train[np.arange(20), 0, labels, labels] += 3  # a learnable pattern
    y_train = np.eye(4)[labels].reshape(20, 4, 1)
    network = [
        compat.Convolutional((1, 10, 10), 3, 6),
        compat.Sigmoid(),
        compat.Reshape((6, 8, 8), (6 * 8 * 8, 1)),
        compat.Dense(6 * 8 * 8, 30),
        compat.Tanh(),
        compat.Dense(30, 4),
        compat.Sigmoid(),
    ]
    compat.train(network, compat.binary_cross_entropy, compat.binary_cross_entropy_prime,
                 x_train, y_train, epochs=8, learning_rate=0.5)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8 and lines[0].startswith("1/8, error=")
    errors = [float(line.split("error=")[1]) for line in lines]
    assert errors[-1] < errors[0]
    output = compat.predict(network, x_train[0])
    assert output.shape == (4, 1) and output.dtype == np.float64
    compat.train(network, compat.mse, compat.mse_prime, x_train, y_train, epochs=1, verbose=False)
    assert capsys.readouterr().out == ""


def test_writeup_001_networks_run_with_neural_network(rng, capsys):
    x_train = rng.random((12, 8, 8))
    y_train = np.eye(10)[rng.integers(0, 10, 12)]
    fc_net = compat.NeuralNetwork()
    result = (
        fc_net.add(compat.FCLayer(16))
        .add(compat.ActivationLayer(compat.tanh, compat.tanh_prime))
        .add(compat.FCLayer(10))
        .add(compat.ActivationLayer(compat.tanh, compat.tanh_prime))
        .add(compat.ActivationLayer(compat.softmax, compat.softmax_prime))
        .use(compat.mse, compat.mse_prime)
        .fit(x_train, y_train, epochs=2, learning_rate=0.1)
    )
    assert result is fc_net
    assert capsys.readouterr().out.splitlines()[1].startswith("epoch 2/2   error=")
    predictions = fc_net.predict(x_train[:3])
    assert isinstance(predictions, list) and len(predictions) == 3
    assert predictions[0].shape == (1, 10)
    np.testing.assert_allclose(predictions[0].sum(), 1.0)

    conv_net = compat.NeuralNetwork()
    (
        conv_net.add(compat.ConvolutionalLayer(filter_shape=(3, 3), filters_count=5, stride=2, padding=(1, 1)))
        .add(compat.ActivationLayer(compat.tanh, compat.tanh_prime))
        .add(compat.MaxPoolingLayer(pool_shape=(2, 2)))
        .add(compat.FlattenLayer())
        .add(compat.FCLayer(10))
        .add(compat.FlattenLayer())
        .add(compat.ActivationLayer(compat.tanh, compat.tanh_prime))
        .add(compat.ActivationLayer(compat.softmax, compat.softmax_prime))
        .use(compat.mse, compat.mse_prime)
        .fit(x_train[..., None], y_train, epochs=1, learning_rate=0.1)
    )
    assert conv_net.predict(x_train[:1, ..., None])[0].shape == (10,)
    assert conv_net.layers[0].weights.shape == (5, 1, 3, 3)


def test_convolutional_layer_keeps_writeup_001s_hwc_layout(rng):
    layer = compat.ConvolutionalLayer(4, (3, 3), padding=(1, 0), stride=2)
    image = rng.standard_normal((9, 7, 2))  # (H, W, C)
    output = check_input_gradient(layer, image, rng)
    assert output.shape == (5, 3, 4)  # (Ho, Wo, filters)
    same = layers.Convolutional(4, 3, stride=2, padding=(1, 0), dtype=np.float64)
    same.build((2, 9, 7))
    same.kernels[:] = layer.kernels
    np.testing.assert_allclose(output, same.forward(image.transpose(2, 0, 1)).transpose(1, 2, 0), rtol=1e-12)


def test_max_pooling_layer_keeps_hwc_and_pools_every_window(rng):
    layer = compat.MaxPoolingLayer(pool_shape=(2, 2), stride=2)
    image = rng.permutation(6 * 6 * 3).reshape(6, 6, 3) / 10.0
    output = check_input_gradient(layer, image, rng)
    expected = image.reshape(3, 2, 3, 2, 3).max(axis=(1, 3))
    np.testing.assert_array_equal(output, expected)  # the last row/column of windows too


def test_max_pooling_layer_pads_when_the_pool_is_larger_than_the_stride(rng):
    layer = compat.MaxPoolingLayer(pool_shape=(3, 3), stride=1)
    image = rng.permutation(5 * 5).reshape(5, 5, 1) / 10.0 + 1
    output = check_input_gradient(layer, image, rng)
    assert output.shape == (5, 5, 1)  # padding int((3 - 1) / 2) = 1 keeps the size
    assert output[0, 0, 0] == image[:2, :2, 0].max()


def test_writeup_002_convolutional_has_untied_biases_added_once(rng):
    layer = compat.Convolutional((2, 6, 5), 3, 4)
    assert layer.biases.shape == (4, 4, 3)
    assert layer.kernels.shape == layer.kernel_shape == (4, 2, 3, 3)
    layer.biases[:] = rng.standard_normal(layer.biases.shape)
    x = rng.standard_normal((2, 6, 5))
    output = check_input_gradient(layer, x, rng)
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))
    expected = layer.biases + np.einsum("chwij,fcij->fhw", windows, layer.kernels)
    np.testing.assert_allclose(output, expected, rtol=1e-12)
    gradient = rng.standard_normal(output.shape)
    before = layer.biases.copy()
    layer.backward(gradient, 0.1)
    np.testing.assert_allclose(layer.biases, before - 0.1 * gradient, rtol=1e-12)


def test_writeup_002_dense_uses_column_vectors(rng):
    layer = compat.Dense(5, 3)
    x = rng.standard_normal((5, 1))
    output = check_input_gradient(layer, x, rng)
    assert output.shape == (3, 1)
    np.testing.assert_allclose(output[:, 0], x[:, 0] @ layer.weights + layer.bias, rtol=1e-12)


def test_fc_layer_flattens_one_sample(rng):
    layer = compat.FCLayer(4)
    x = rng.standard_normal((3, 5))
    output = check_input_gradient(layer, x, rng)
    assert output.shape == (1, 4) and layer.weights.shape == (15, 4)


def test_activation_layer_with_softmax_prime_uses_the_jacobian(rng):
    layer = compat.ActivationLayer(compat.softmax, compat.softmax_prime)
    x = rng.standard_normal((1, 6))
    check_input_gradient(layer, x, rng)
    s = compat.softmax(x)
    g = rng.standard_normal((1, 6))
    layer.forward(x)
    np.testing.assert_allclose(layer.backward(g, 0.1), s * (g - np.sum(g * s)), rtol=1e-12)


def test_activation_layer_takes_both_derivative_signatures(rng):
    x = rng.standard_normal((2, 3))
    two = compat.ActivationLayer(compat.tanh, lambda x, output: 1 - output**2)
    one = compat.ActivationLayer(compat.tanh, lambda x: 1 - np.tanh(x) ** 2)
    for layer in (two, one):
        check_input_gradient(layer, x, rng)
    assert compat.tanh_prime(x).shape == compat.tanh_prime(x, np.tanh(x)).shape


def test_writeup_002_softmax_layer_on_a_column(rng):
    layer = compat.Softmax()
    x = rng.standard_normal((5, 1))
    output = check_input_gradient(layer, x, rng)
    np.testing.assert_allclose(output.sum(), 1.0)


@pytest.mark.parametrize(
    "function, derivative",
    [
        (compat.tanh, compat.tanh_prime),
        (compat.sigmoid, compat.sigmoid_prime),
        (compat.relu, compat.relu_prime),
    ],
    ids=["tanh", "sigmoid", "relu"],
)
def test_element_wise_derivatives(function, derivative, rng):
    x = rng.standard_normal(7) + 0.05
    expected = (function(x + 1e-6) - function(x - 1e-6)) / 2e-6
    np.testing.assert_allclose(derivative(x), expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(derivative(x, function(x)), expected, rtol=1e-6, atol=1e-9)


def test_softmax_prime_is_the_jacobian(rng):
    x = rng.standard_normal(4)
    jacobian = np.stack([numerical_gradient(lambda: compat.softmax(x)[i], x) for i in range(4)])
    np.testing.assert_allclose(compat.softmax_prime(x), jacobian, rtol=1e-6, atol=1e-9)
    assert np.isfinite(compat.softmax(np.array([1e30, 0.0, -1e30]))).all()


def test_losses_follow_the_writeups_formulas(rng):
    y = np.eye(3)[[1]].T  # a (3, 1) column as in write-up 002
    p = compat.sigmoid(rng.standard_normal((3, 1)))
    assert compat.mse(y, p) == pytest.approx(np.mean((y - p) ** 2))
    np.testing.assert_allclose(compat.mse_prime(y, p), 2 * (p - y) / 3)
    assert compat.binary_cross_entropy(y, p) == pytest.approx(np.mean(-y * np.log(p) - (1 - y) * np.log(1 - p)))
    expected = numerical_gradient(lambda: compat.binary_cross_entropy(y, p), p)
    np.testing.assert_allclose(compat.binary_cross_entropy_prime(y, p), expected, rtol=1e-6)
    saturated = np.array([[0.0], [1.0], [0.0]])
    assert np.isfinite(compat.binary_cross_entropy(y, saturated))
    assert np.isfinite(compat.binary_cross_entropy_prime(y, saturated)).all()


def test_a_writeup_style_layer_subclass_mixes_with_compat_layers(rng):
    class SineLayer(compat.Layer):
        def forward_propagation(self, input_data):
            self.input = input_data
            return np.sin(input_data)

        def backward_propagation(self, output_error, learning_rate):
            return np.cos(self.input) * output_error

    network = compat.NeuralNetwork().add(compat.FCLayer(3)).add(SineLayer()).use(compat.mse, compat.mse_prime)
    network.fit(rng.standard_normal((4, 2)), rng.standard_normal((4, 3)), epochs=1, learning_rate=0.1)
    assert network.predict(rng.standard_normal((1, 2)))[0].shape == (1, 3)


@pytest.mark.parametrize(
    "call, expected",
    [
        (lambda: compat.FCLayer(784, 100), r"FCLayer takes write-up 001's signature FCLayer\(output_size\), got FCLayer\(784, 100\).*compat\.Dense"),
        (lambda: compat.Dense(100), r"write-up 002's signature Dense\(input_size, output_size\).*compat\.FCLayer"),
        (lambda: compat.Convolutional(6, 3), r"Convolutional\(input_shape, kernel_size, depth\).*ConvolutionalLayer.*writeup004\.ConvLayer"),
        (lambda: compat.ConvolutionalLayer((1, 28, 28), 3, 6, 1, 1), r"ConvolutionalLayer\(filters_count, filter_shape, padding=\(0, 0\), stride=1\)"),
        (lambda: compat.MaxPoolingLayer(size=2), r"MaxPoolingLayer\(pool_shape=\(2, 2\), stride=2\).*writeup004\.MaxPool"),
        (lambda: compat.ActivationLayer(compat.tanh), r"ActivationLayer\(activation, activation_prime\).*compat\.Activation"),
        (lambda: compat.Tanh(compat.tanh), r"Tanh\(\)"),
        (lambda: compat.Reshape((6, 26, 26)), r"Reshape\(input_shape, output_shape\).*FlattenLayer"),
        (lambda: compat.NeuralNetwork([]), r"NeuralNetwork\(\).*add\(layer\)"),
    ],
    ids=["FCLayer", "Dense", "Convolutional", "ConvolutionalLayer", "MaxPoolingLayer",
         "ActivationLayer", "Tanh", "Reshape", "NeuralNetwork"],
)
def test_a_wrong_signature_names_the_classes_own_and_its_writeup(call, expected):
    with pytest.raises(TypeError, match=expected):
        call()


def test_the_signature_check_leaves_right_calls_and_introspection_alone():
    assert str(inspect.signature(compat.FCLayer)) == "(output_size)"
    assert compat.FCLayer(output_size=3).units == 3
    assert compat.Dense(4, 2).weights.shape == (4, 2)
