"""fastcnn.compat.writeup004 against write-up 004's own classes (tests/_writeup004.py):
the same weights from the same seed, the same outputs, gradients and updates, the
write-up's SimpleCNN and train loop unchanged on both, and finite differences where
the write-up's own formula is wrong."""

import numpy as np
import pytest

from fastcnn.compat import writeup004 as compat

import _writeup004 as writeup
from _helpers import class_images, numerical_gradient

TOL = dict(rtol=1e-12, atol=1e-12)


def twins(name, *args, seed=7, **kwargs):
    """The compat layer and the write-up's, built from the same np.random draws."""
    np.random.seed(seed)
    ours = getattr(compat, name)(*args, **kwargs)
    np.random.seed(seed)
    theirs = getattr(writeup, name)(*args, **kwargs)
    return ours, theirs


def test_layers_draw_the_writeups_initial_weights():
    ours, theirs = twins("ConvLayer", (3, 10, 12), kernel_size=3, num_kernels=4)
    np.testing.assert_array_equal(ours.kernels, theirs.kernels)
    np.testing.assert_array_equal(ours.bias, theirs.bias)
    assert ours.bias.shape == (4, 10, 12) and ours.kernels.shape == (4, 3, 3, 3)
    for name in ("d", "h", "w", "pad_size", "kernel_shape", "bias_shape", "padding"):
        assert getattr(ours, name) == getattr(theirs, name), name
    ours, theirs = twins("Output", 24, 5)
    np.testing.assert_array_equal(ours.weights, theirs.weights)
    np.testing.assert_array_equal(ours.bias, theirs.bias)


CONV_CASES = {
    "writeup-layer-1": ((1, 28, 28), 5, 6, 0),
    "writeup-layer-2": ((6, 28, 28), 5, 6, 0),
    "odd-sizes-3x3": ((2, 9, 7), 3, 4, 0),
    "7x7-kernel": ((3, 11, 13), 7, 2, 0),
    "1x1-kernel": ((4, 5, 6), 1, 3, 0),
    "fill-value-0.5": ((2, 8, 9), 5, 3, 0.5),
}


@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv_layer_step_matches_the_writeups(case, rng):
    input_shape, kernel_size, num_kernels, padding = case
    ours, theirs = twins("ConvLayer", input_shape, kernel_size, num_kernels, padding)
    x = rng.standard_normal(input_shape)
    out = ours.forward(x)
    np.testing.assert_allclose(out, theirs.forward(x), **TOL)
    assert out is ours.output
    np.testing.assert_array_equal(ours.prev_input, theirs.prev_input)
    g = rng.standard_normal(out.shape)
    np.testing.assert_allclose(ours.backprop(g, 0.01), theirs.backprop(g, 0.01), **TOL)
    np.testing.assert_allclose(ours.kernels, theirs.kernels, **TOL)
    np.testing.assert_allclose(ours.bias, theirs.bias, **TOL)


@pytest.mark.parametrize("kernel_size", [2, 4])
def test_conv_layer_with_an_even_kernel_gives_the_true_input_gradient(kernel_size, rng):
    ours, theirs = twins("ConvLayer", (2, 7, 6), kernel_size, 3, 0.25)
    x = rng.standard_normal((2, 7, 6))
    out = ours.forward(x)
    np.testing.assert_allclose(out, theirs.forward(x), **TOL)
    assert out.shape == (3, 7, 6)
    g = rng.standard_normal(out.shape)
    weights = g.copy()
    probe = twins("ConvLayer", (2, 7, 6), kernel_size, 3, 0.25)[0]
    expected = numerical_gradient(lambda: float(np.sum(probe.forward(x) * weights)), x)
    grad_x = ours.backprop(g, 0.01)
    np.testing.assert_allclose(grad_x, expected, rtol=1e-6, atol=1e-8)
    # the write-up's full convolution is one pixel off for even kernels
    assert not np.allclose(theirs.backprop(g, 0.01), grad_x)
    np.testing.assert_allclose(ours.kernels, theirs.kernels, **TOL)
    np.testing.assert_allclose(ours.bias, theirs.bias, **TOL)


def test_conv_layer_gradients_match_finite_differences(rng):
    layer = compat.ConvLayer((2, 6, 5), kernel_size=3, num_kernels=3, padding=-0.3)
    x = rng.standard_normal((2, 6, 5))
    weights = rng.standard_normal((3, 6, 5))

    def loss():
        return float(np.sum(layer.forward(x) * weights))

    expected_x = numerical_gradient(loss, x)
    expected_kernels = numerical_gradient(loss, layer.kernels)
    expected_bias = numerical_gradient(loss, layer.bias)
    kernels, bias = layer.kernels.copy(), layer.bias.copy()
    layer.forward(x)
    np.testing.assert_allclose(layer.backprop(weights, 0.5), expected_x, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose((kernels - layer.kernels) / 0.5, expected_kernels, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose((bias - layer.bias) / 0.5, expected_bias, rtol=1e-6, atol=1e-8)


def test_relu_matches_the_writeups(rng):
    ours, theirs = compat.ReLU(), writeup.ReLU()
    x = rng.standard_normal((3, 5, 4))
    np.testing.assert_array_equal(ours.forward(x), theirs.forward(x))
    g = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(ours.backprop(g), theirs.backprop(g))


POOL_CASES = {
    "writeup-6x28x28": ((6, 28, 28), 2),
    "odd-sizes": ((3, 7, 9), 2),
    "pool-3": ((2, 9, 10), 3),
    "pool-1": ((2, 3, 4), 1),
}


@pytest.mark.parametrize("case", POOL_CASES.values(), ids=POOL_CASES.keys())
def test_max_pool_matches_the_writeups(case, rng):
    shape, size = case
    ours, theirs = compat.MaxPool(size), writeup.MaxPool(size)
    x = rng.standard_normal(shape)
    out = ours.forward(x)
    np.testing.assert_array_equal(out, theirs.forward(x))
    g = rng.standard_normal(out.shape)
    np.testing.assert_array_equal(ours.backprop(g), theirs.backprop(g))


def test_max_pool_sends_a_tied_windows_gradient_to_its_first_maximum():
    x = np.array([[[1.0, 1.0], [0.0, 1.0]]])
    g = np.array([[[2.0]]])
    layer = compat.MaxPool()
    layer.forward(x)
    np.testing.assert_array_equal(layer.backprop(g), [[[2.0, 0.0], [0.0, 0.0]]])
    theirs = writeup.MaxPool()
    theirs.forward(x)
    np.testing.assert_array_equal(theirs.backprop(g), [[[2.0, 2.0], [0.0, 2.0]]])


def test_output_with_the_training_loops_gradient_matches_the_writeups(rng):
    ours, theirs = twins("Output", 6 * 4 * 4, 10)
    x = rng.standard_normal((6, 4, 4))
    out = ours.forward(x)
    np.testing.assert_allclose(out, theirs.forward(x), **TOL)
    gradient = np.zeros(10)
    gradient[3] = -1 / out[3]  # the write-up's train loop
    grad_x = ours.backprop(gradient, 0.1)
    assert grad_x.shape == x.shape
    np.testing.assert_allclose(grad_x, theirs.backprop(gradient, 0.1), **TOL)
    np.testing.assert_allclose(ours.weights, theirs.weights, **TOL)
    np.testing.assert_allclose(ours.bias, theirs.bias, **TOL)


def test_output_backprop_uses_the_whole_gradient(rng):
    layer = compat.Output(12, 4)
    x = rng.standard_normal(12)
    g = rng.standard_normal(4)
    weights, bias = layer.weights.copy(), layer.bias.copy()
    expected_x = numerical_gradient(lambda: float(layer.forward(x) @ g), x)
    expected_weights = numerical_gradient(lambda: float(layer.forward(x) @ g), layer.weights)
    layer.forward(x)
    np.testing.assert_allclose(layer.backprop(g, 0.5), expected_x, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose((weights - layer.weights) / 0.5, expected_weights, rtol=1e-6, atol=1e-9)
    assert not np.array_equal(bias, layer.bias)
    layer.forward(x)
    np.testing.assert_array_equal(layer.backprop(np.zeros(4), 0.5), np.zeros(12))


def test_output_softmax_does_not_overflow():
    layer = compat.Output(2, 3)
    layer.weights[:] = [[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]]
    probabilities = layer.forward(np.array([1.0, 0.0]))
    np.testing.assert_allclose(probabilities, [1.0, 0.0, 0.0])


def simple_cnn(module, seed):
    np.random.seed(seed)
    return writeup.SimpleCNN(
        module.ConvLayer(input_shape=(1, 28, 28), kernel_size=5, num_kernels=6, padding=0),
        module.ReLU(),
        module.ConvLayer(input_shape=(6, 28, 28), kernel_size=5, num_kernels=6, padding=0),
        module.ReLU(),
        module.MaxPool(),
        module.Output(6 * 14 * 14, 10),
    )


def parameters(model):
    return [
        model.ConvLayer_1.kernels, model.ConvLayer_1.bias,
        model.ConvLayer_2.kernels, model.ConvLayer_2.bias,
        model.OutputLayer.weights, model.OutputLayer.bias,
    ]


def test_one_training_step_of_the_writeups_simple_cnn_matches():
    ours, theirs = simple_cnn(compat, 3), simple_cnn(writeup, 3)
    images, labels = class_images(2, seed=1)
    for image, label in zip(ours.preprocess(images), labels):
        out = ours.forward(image)
        np.testing.assert_allclose(out, theirs.forward(image), **TOL)
        gradient = np.zeros(10)
        gradient[label] = -1 / out[label]
        np.testing.assert_allclose(
            ours.backprop(gradient, 0.005), theirs.backprop(gradient, 0.005), rtol=1e-10, atol=1e-14
        )
        for mine, original in zip(parameters(ours), parameters(theirs)):
            np.testing.assert_allclose(mine, original, rtol=1e-10, atol=1e-14)


def test_the_writeups_train_loop_runs_unchanged_and_matches(capsys):
    images, labels = class_images(8, seed=2)
    dev_images, dev_labels = class_images(4, seed=3)
    printed = []
    models = []
    for module in (compat, writeup):
        model = simple_cnn(module, 5)
        np.random.seed(11)  # train's permutation
        model.train(images, labels, dev_images, dev_labels, epochs=2, learn_rate=0.005)
        printed.append(capsys.readouterr().out)
        models.append(model)
    assert printed[0] == printed[1]
    assert "Epoch 2, loss:" in printed[0] and "Dev Accuracy:" in printed[0]
    for mine, original in zip(parameters(models[0]), parameters(models[1])):
        np.testing.assert_allclose(mine, original, rtol=1e-9, atol=1e-14)


def test_wrong_input_shapes_are_refused(rng):
    layer = compat.ConvLayer((1, 8, 8), 3, 2)
    with pytest.raises(ValueError, match=r"shape \(1, 8, 8\).*got .*\(8, 8\)"):
        layer.forward(rng.standard_normal((8, 8)))
    layer.forward(rng.standard_normal((1, 8, 8)))
    with pytest.raises(ValueError, match=r"d_L_d_out of the output's shape \(2, 8, 8\)"):
        layer.backprop(np.zeros((2, 7, 8)), 0.1)
    with pytest.raises(ValueError, match="takes 10 values"):
        compat.Output(10, 2).forward(np.zeros(9))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        compat.MaxPool().forward(np.zeros((4, 4)))


@pytest.mark.parametrize(
    "call, expected",
    [
        (lambda: compat.ConvLayer(1, 28, 28, 5, 6), r"ConvLayer\(input_shape, kernel_size=5, num_kernels=6, padding=0\)"),
        (lambda: compat.Output(100), r"Output\(input_len, nodes\).*compat.Dense"),
        (lambda: compat.ReLU(0.1), r"write-up 004.*writeup003.ReLU"),
        (lambda: compat.MaxPool(pool_shape=2), r"MaxPool\(pool_size=2\).*MaxPoolingLayer"),
    ],
    ids=["conv", "output", "relu", "maxpool"],
)
def test_a_wrong_signature_names_the_writeups(call, expected):
    with pytest.raises(TypeError, match=expected):
        call()
