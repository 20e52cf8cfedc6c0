"""Batch normalisation: the kernels against fastcnn.reference, the layers against finite
differences and torch.nn.BatchNorm1d/2d (training and inference, over several steps),
saving the running statistics; GlobalAvgPool2D."""

import json

import numpy as np
import pytest

import fastcnn
from fastcnn import kernels, reference

from _helpers import numerical_gradient


def mentions(*patterns):
    """A regex matching a message that contains every pattern, in any order."""
    return "(?s)" + "".join(f"(?=.*{pattern})" for pattern in patterns)


SHAPES = [
    pytest.param((5, 3, 4, 7), id="NCHW"),
    pytest.param((1, 4, 3, 2), id="N1-spatial"),
    pytest.param((2, 1, 1, 1), id="two-values"),
    pytest.param((9, 6), id="NC"),
    pytest.param((2, 5), id="NC-N2"),
    pytest.param((3, 17, 5, 3), id="odd-channels"),
]
DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]


def problem(rng, shape, dtype, offset=3.0):
    """x with a per-channel offset and scale, gamma, beta, grad_y."""
    channels = shape[1]
    spread = (1 + np.arange(channels)).reshape((1, -1) + (1,) * (len(shape) - 2))
    x = rng.standard_normal(shape) * spread + offset
    gamma = rng.standard_normal(channels)
    beta = rng.standard_normal(channels)
    grad_y = rng.standard_normal(shape)
    return [a.astype(dtype) for a in (x, gamma, beta, grad_y)]


# ---------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_matches_reference(shape, dtype, rng, assert_close):
    x, gamma, beta, _ = problem(rng, shape, dtype)
    y, mean, var = kernels.batchnorm_forward(x, gamma, beta, 1e-3)
    y_ref, mean_ref, var_ref = reference.batchnorm_forward(x, gamma, beta, 1e-3)
    for got in (y, mean, var):
        assert got.dtype == dtype
    assert_close(y, y_ref, np.abs(beta).max() + np.abs(gamma).max())
    assert_close(mean, mean_ref, np.abs(x).max())
    assert_close(var, var_ref, var_ref)
    # The reference itself is the textbook formula.
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    np.testing.assert_allclose(mean_ref, x.astype(np.float64).mean(axis=axes), rtol=1e-6)
    np.testing.assert_allclose(var_ref, x.astype(np.float64).var(axis=axes), rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_inference_matches_reference(shape, dtype, rng, assert_close):
    x, gamma, beta, _ = problem(rng, shape, dtype)
    mean = rng.standard_normal(shape[1]).astype(dtype)
    var = rng.uniform(0.5, 2, shape[1]).astype(dtype)
    y = kernels.batchnorm_inference(x, gamma, beta, mean, var, 1e-5)
    expected = reference.batchnorm_inference(x, gamma, beta, mean, var, 1e-5)
    assert y.dtype == dtype
    assert_close(y, expected, np.abs(x).max() * np.abs(gamma).max() + np.abs(beta).max())


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_matches_reference(shape, dtype, training, rng, assert_close):
    x, gamma, _, grad_y = problem(rng, shape, dtype)
    _, mean, var = reference.batchnorm_forward(x, gamma, gamma, 1e-5)
    got = kernels.batchnorm_backward(grad_y, x, gamma, mean, var, 1e-5, training)
    expected = reference.batchnorm_backward(grad_y, x, gamma, mean, var, 1e-5, training)
    count = x.size // x.shape[1]
    scale = np.abs(gamma).max() / np.sqrt(var.astype(np.float64).min())
    for name, a, b, magnitude in zip(
        ("grad_x", "grad_gamma", "grad_beta"),
        got,
        expected,
        (scale * 3 * np.abs(grad_y).max(), count * np.abs(grad_y).max() * 10, count),
    ):
        assert a.dtype == dtype, name
        assert a.shape == b.shape, name
        assert_close(a, b, magnitude)


def test_float32_keeps_its_digits_when_the_mean_is_far_from_zero(rng):
    """The deviation is taken in float64, so an offset of 1e4 over a spread of 1 costs no
    more than rounding the result to float32."""
    x = (rng.standard_normal((64, 2, 3, 3)) + 1e4).astype(np.float32)
    ones, zeros = np.ones(2, np.float32), np.zeros(2, np.float32)
    y, _, _ = kernels.batchnorm_forward(x, ones, zeros)
    exact = x.astype(np.float64)
    exact = (exact - exact.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(
        exact.var(axis=(0, 2, 3), keepdims=True) + 1e-5
    )
    assert np.abs(y - exact).max() < 1e-5


def test_gradients_match_finite_differences_of_the_reference(rng):
    """The reference's backward (the oracle) is itself right: float64 central differences
    of sum(forward(x) * grad_y), training and inference."""
    x, gamma, beta, grad_y = problem(rng, (3, 2, 2, 3), np.float64)
    mean, var = rng.standard_normal(2), rng.uniform(0.5, 2, 2)

    def training_loss():
        return float(np.sum(reference.batchnorm_forward(x, gamma, beta)[0] * grad_y))

    def inference_loss():
        return float(np.sum(reference.batchnorm_inference(x, gamma, beta, mean, var) * grad_y))

    _, batch_mean, batch_var = reference.batchnorm_forward(x, gamma, beta)
    for loss, (m, v), training in (
        (training_loss, (batch_mean, batch_var), True),
        (inference_loss, (mean, var), False),
    ):
        grad_x, grad_gamma, grad_beta = kernels.batchnorm_backward(
            grad_y, x, gamma, m, v, training=training
        )
        np.testing.assert_allclose(grad_x, numerical_gradient(loss, x), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(grad_gamma, numerical_gradient(loss, gamma), rtol=1e-6)
        np.testing.assert_allclose(grad_beta, numerical_gradient(loss, beta), rtol=1e-6)


def test_results_do_not_depend_on_the_thread_count(rng):
    x, gamma, beta, grad_y = problem(rng, (6, 300, 5, 5), np.float32)
    previous = fastcnn.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            fastcnn.set_num_threads(threads)
            y, mean, var = kernels.batchnorm_forward(x, gamma, beta)
            results.append((y, mean, var, *kernels.batchnorm_backward(grad_y, x, gamma, mean, var)))
    finally:
        fastcnn.set_num_threads(previous)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_any_memory_layout_gives_the_same_answer(rng):
    x, gamma, beta, grad_y = problem(rng, (4, 3, 5, 6), np.float64)
    strided = np.asfortranarray(x)[:, :, ::1, :]
    y, mean, var = kernels.batchnorm_forward(strided, gamma, beta)
    np.testing.assert_array_equal(y, kernels.batchnorm_forward(x, gamma, beta)[0])
    flipped = grad_y[:, :, ::-1].copy()[:, :, ::-1]
    np.testing.assert_array_equal(
        kernels.batchnorm_backward(flipped, strided, gamma, mean, var)[0],
        kernels.batchnorm_backward(grad_y, x, gamma, mean, var)[0],
    )


X = np.ones((2, 3, 4, 4))
C3 = np.ones(3)
ERRORS = [
    pytest.param(lambda: kernels.batchnorm_forward(np.ones((2, 3, 4)), C3, C3), ValueError,
                 (r"\bx\b", r"\(N, C, H, W\)", r"\(2, 3, 4\)"), id="x-rank-3"),
    pytest.param(lambda: kernels.batchnorm_forward(X.astype(np.int64), C3, C3), TypeError,
                 (r"\bx\b", "float32 or float64"), id="x-int"),
    pytest.param(lambda: kernels.batchnorm_forward([[1.0, 2.0]], C3, C3), TypeError,
                 (r"\bx\b", "numpy array"), id="x-list"),
    pytest.param(lambda: kernels.batchnorm_forward(X, np.ones(4), C3), ValueError,
                 ("gamma", r"\(3,\)", r"\(4,\)"), id="gamma-length"),
    pytest.param(lambda: kernels.batchnorm_forward(X, C3, np.ones((3, 1))), ValueError,
                 ("beta", "1-D"), id="beta-rank"),
    pytest.param(lambda: kernels.batchnorm_forward(X, C3.astype(np.float32), C3), TypeError,
                 ("gamma", "float32", "float64"), id="gamma-dtype"),
    pytest.param(lambda: kernels.batchnorm_forward(X, C3, C3, -1.0), ValueError,
                 ("eps", "positive"), id="eps-negative"),
    pytest.param(lambda: kernels.batchnorm_forward(X, C3, C3, float("nan")), ValueError,
                 ("eps",), id="eps-nan"),
    pytest.param(lambda: kernels.batchnorm_forward(X, C3, C3, "1e-5"), TypeError,
                 ("eps", "number"), id="eps-string"),
    pytest.param(lambda: kernels.batchnorm_forward(np.ones((1, 3, 1, 1)), C3, C3), ValueError,
                 ("Expected more than 1 value per channel when training", r"\(1, 3, 1, 1\)"),
                 id="one-value-per-channel"),
    pytest.param(lambda: kernels.batchnorm_forward(np.ones((1, 3)), C3, C3), ValueError,
                 ("Expected more than 1 value per channel when training",), id="one-sample-NC"),
    pytest.param(lambda: kernels.batchnorm_inference(X, C3, C3, C3, -C3), ValueError,
                 ("var", "non-negative", "channel 0"), id="negative-var"),
    pytest.param(lambda: kernels.batchnorm_inference(X, C3, C3, np.ones(2), C3), ValueError,
                 ("mean", r"\(3,\)"), id="mean-length"),
    pytest.param(lambda: kernels.batchnorm_backward(np.ones((2, 3, 4, 5)), X, C3, C3, C3),
                 ValueError, ("grad_y", r"\(2, 3, 4, 4\)", r"\(2, 3, 4, 5\)"),
                 id="grad-y-shape"),
    pytest.param(lambda: kernels.batchnorm_backward(X.astype(np.float32), X, C3, C3, C3),
                 TypeError, ("grad_y", "float32"), id="grad-y-dtype"),
]


@pytest.mark.parametrize("call, error, patterns", ERRORS)
def test_bad_arguments_are_refused_with_a_clear_message(call, error, patterns):
    with pytest.raises(error, match=mentions(*patterns)):
        call()


def test_the_reference_refuses_one_value_per_channel_too():
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        reference.batchnorm_forward(np.ones((1, 3)), C3, C3)


def test_inference_takes_an_empty_batch():
    y = kernels.batchnorm_inference(np.ones((0, 3, 2, 2)), C3, C3, C3, C3)
    assert y.shape == (0, 3, 2, 2)


# ---------------------------------------------------------------------------- layers


def check_layer_gradients(layer, x, rng):
    """Input, gamma and beta gradients against float64 central differences of
    sum(forward(x) * weights), with learning_rate=0."""
    y = layer.forward(x)
    weights = rng.standard_normal(y.shape)
    grad_x = layer.backward(weights, 0.0)
    gradients = dict(layer.gradients)

    def loss():
        return float(np.sum(layer.forward(x) * weights))

    np.testing.assert_allclose(grad_x, numerical_gradient(loss, x), rtol=1e-6, atol=1e-8)
    assert set(gradients) == {"gamma", "beta"}
    for name, parameter in layer.parameters.items():
        np.testing.assert_allclose(
            gradients[name], numerical_gradient(loss, parameter), rtol=1e-6, atol=1e-8,
            err_msg=name,
        )


LAYERS = [
    pytest.param(fastcnn.BatchNorm2D, (4, 3, 3, 2), id="2D"),
    pytest.param(fastcnn.BatchNorm2D, (2, 2, 3), id="2D-unbatched"),
    pytest.param(fastcnn.BatchNorm1D, (5, 4), id="1D"),
]


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("layer_class, shape", LAYERS)
def test_layer_gradients_match_finite_differences(layer_class, shape, training, rng):
    layer = layer_class(momentum=0.3).astype(np.float64)
    batch = shape if len(shape) in (2, 4) else (3, *shape)
    for _ in range(3):  # running statistics and parameters away from their start
        layer.forward(rng.standard_normal(batch) * 2 + 1)
        layer.backward(rng.standard_normal(batch), 0.1)
    layer.training = training
    check_layer_gradients(layer, rng.standard_normal(shape) * 2 + 1, rng)


def test_training_uses_batch_statistics_and_inference_the_running_ones(rng):
    layer = fastcnn.BatchNorm2D(momentum=0.5).astype(np.float64)
    x = rng.standard_normal((6, 2, 3, 3)) * 3 + 2
    y = layer.forward(x)
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(
        y, (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5), atol=1e-12
    )
    count = 6 * 3 * 3
    np.testing.assert_allclose(layer.running_mean, 0.5 * mean, rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, 0.5 + 0.5 * var * count / (count - 1), rtol=1e-12)
    assert layer.num_batches_tracked == 1

    layer.training = False
    before = {name: b.copy() for name, b in layer.buffers.items()}
    y = layer.forward(x)
    expected = (x - layer.running_mean[:, None, None]) / np.sqrt(
        layer.running_var[:, None, None] + 1e-5
    )
    np.testing.assert_allclose(y, expected, atol=1e-12)
    for name, buffer in layer.buffers.items():
        np.testing.assert_array_equal(buffer, before[name])
    assert layer.num_batches_tracked == 1


def test_network_predict_uses_the_running_statistics(rng):
    network = fastcnn.Network([fastcnn.BatchNorm1D(), fastcnn.Dense(2)]).use("mse")
    x = rng.standard_normal((8, 3)) * 4 + 10
    network.fit(x, rng.standard_normal((8, 2)), epochs=2, learning_rate=0.01, batch_size=4,
                verbose=0)
    bn = network.layers[0]
    expected = (x - bn.running_mean) / np.sqrt(bn.running_var + 1e-5) * bn.gamma + bn.beta
    expected = expected @ network.layers[1].weights + network.layers[1].bias
    np.testing.assert_allclose(network.predict(x), expected, rtol=1e-4, atol=1e-4)
    assert bn.training  # predict turns training back on


def test_layer_parameters_buffers_and_building(rng):
    layer = fastcnn.BatchNorm2D()
    assert layer.parameters == {} and layer.buffers == {}
    layer.forward(rng.standard_normal((2, 5, 3, 3)))
    assert layer.input_shape == layer.output_shape == (5, 3, 3)
    assert set(layer.parameters) == {"gamma", "beta"}
    assert set(layer.buffers) == {"running_mean", "running_var"}
    eager = fastcnn.BatchNorm1D(input_shape=(4,))
    np.testing.assert_array_equal(eager.gamma, np.ones(4, np.float32))
    np.testing.assert_array_equal(eager.beta, np.zeros(4, np.float32))
    np.testing.assert_array_equal(eager.running_mean, np.zeros(4, np.float32))
    np.testing.assert_array_equal(eager.running_var, np.ones(4, np.float32))
    with pytest.raises(ValueError, match=mentions("built for 5 channels", "got 4")):
        layer.forward(np.ones((2, 4, 3, 3)))
    with pytest.raises(ValueError, match=mentions("BatchNorm2D", r"\(N, C, H, W\)")):
        layer.forward(np.ones((2, 5)))


def test_layer_astype_converts_parameters_and_buffers(rng):
    layer = fastcnn.BatchNorm2D(input_shape=(3, 2, 2))
    layer.forward(rng.standard_normal((4, 3, 2, 2)))
    layer.astype(np.float64)
    for array in (*layer.parameters.values(), *layer.buffers.values()):
        assert array.dtype == np.float64
    assert layer.forward(np.ones((2, 3, 2, 2), np.uint8)).dtype == np.float64


def test_layer_updates_gamma_and_beta_through_its_optimizer(rng):
    layer = fastcnn.BatchNorm1D().astype(np.float64)
    x = rng.standard_normal((6, 3))
    layer.forward(x)
    grad = rng.standard_normal((6, 3))
    layer.backward(grad, 0.5)
    np.testing.assert_allclose(layer.beta, -0.5 * grad.sum(axis=0))
    np.testing.assert_allclose(layer.gamma, 1 - 0.5 * layer.gradients["gamma"])


def test_layer_repr_config_and_argument_checks():
    assert repr(fastcnn.BatchNorm2D()) == "BatchNorm2D()"
    assert repr(fastcnn.BatchNorm1D(momentum=0.01, eps=1e-3)) == (
        "BatchNorm1D(momentum=0.01, eps=0.001)"
    )
    config = fastcnn.BatchNorm2D(0.2, 1e-4, input_shape=(3, 4, 4)).config()
    assert json.loads(json.dumps(config)) == {
        "momentum": 0.2, "eps": 1e-4, "input_shape": [3, 4, 4]
    }
    assert fastcnn.BatchNorm2D(**fastcnn.BatchNorm2D(0.2).config()).momentum == 0.2
    with pytest.raises(ValueError, match="momentum"):
        fastcnn.BatchNorm2D(momentum=1.5)
    with pytest.raises(TypeError, match="momentum"):
        fastcnn.BatchNorm2D(momentum="0.1")
    with pytest.raises(ValueError, match="eps"):
        fastcnn.BatchNorm1D(eps=0)
    with pytest.raises(ValueError, match="BatchNorm1D input_shape"):
        fastcnn.BatchNorm1D(input_shape=(3, 4))


def test_one_sample_in_training_is_refused_as_in_torch():
    layer = fastcnn.BatchNorm1D()
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        layer.forward(np.ones((1, 3)))
    layer.training = False
    assert layer.forward(np.ones(3)).shape == (3,)


# ---------------------------------------------------------------------------- torch


def torch_pair(torch, dimensions, channels, momentum, dtype):
    ours = (fastcnn.BatchNorm2D if dimensions == 2 else fastcnn.BatchNorm1D)(momentum=momentum)
    ours.astype(dtype)
    module = (torch.nn.BatchNorm2d if dimensions == 2 else torch.nn.BatchNorm1d)(
        channels, momentum=momentum
    )
    module = module.double() if dtype == np.float64 else module.float()
    return ours, module


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-10), (np.float32, 2e-5)],
                         ids=["float64", "float32"])
@pytest.mark.parametrize("dimensions, shape", [(2, (4, 3, 5, 6)), (1, (7, 5))], ids=["2d", "1d"])
def test_layers_match_torch_over_several_steps(dimensions, shape, dtype, tolerance, rng):
    torch = pytest.importorskip("torch")
    ours, module = torch_pair(torch, dimensions, shape[1], 0.2, dtype)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)

    def close(a, b, what):
        b = b.detach().numpy()
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance, err_msg=what)

    for step in range(4):
        x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
        grad_y = rng.standard_normal(shape).astype(dtype)
        module.train()
        ours.training = True
        y = ours.forward(x)
        grad_x = ours.backward(grad_y, 0.1)
        x_torch = torch.tensor(x, requires_grad=True)
        y_torch = module(x_torch)
        optimizer.zero_grad()
        y_torch.backward(torch.tensor(grad_y))
        close(ours.gradients["gamma"], module.weight.grad, f"grad gamma, step {step}")
        close(ours.gradients["beta"], module.bias.grad, f"grad beta, step {step}")
        optimizer.step()
        close(y, y_torch, f"training output, step {step}")
        close(grad_x, x_torch.grad, f"grad x, step {step}")
        close(ours.gamma, module.weight, f"gamma, step {step}")
        close(ours.beta, module.bias, f"beta, step {step}")
        close(ours.running_mean, module.running_mean, f"running mean, step {step}")
        close(ours.running_var, module.running_var, f"running var, step {step}")
        assert ours.num_batches_tracked == int(module.num_batches_tracked)

        module.eval()
        ours.training = False
        x_torch = torch.tensor(x, requires_grad=True)
        y_torch = module(x_torch)
        y_torch.backward(torch.tensor(grad_y))
        close(ours.forward(x), y_torch, f"inference output, step {step}")
        close(ours.backward(grad_y, 0.0), x_torch.grad, f"inference grad x, step {step}")


# ---------------------------------------------------------------------------- saving


def test_save_and_load_keep_the_running_statistics(tmp_path, rng):
    network = fastcnn.Network(
        [
            fastcnn.Convolutional(3, 3, padding=1, input_shape=(2, 5, 5)),
            fastcnn.BatchNorm2D(momentum=0.3),
            fastcnn.ReLU(),
            fastcnn.GlobalAvgPool2D(),
            fastcnn.BatchNorm1D(eps=1e-3),
            fastcnn.Dense(3),
        ]
    ).use("softmax_cross_entropy")
    x = rng.standard_normal((12, 2, 5, 5)) * 2 + 1
    network.fit(x, rng.integers(0, 3, 12), epochs=2, learning_rate=0.1, batch_size=4,
                verbose=0, optimizer="adam")
    path = tmp_path / "model.npz"
    network.save(path)
    loaded = fastcnn.Network.load(path)
    for index in (1, 4):
        for name, buffer in network.layers[index].buffers.items():
            assert np.any(buffer != (0 if name == "running_mean" else 1))
            np.testing.assert_array_equal(loaded.layers[index].buffers[name], buffer)
    assert loaded.layers[1].momentum == 0.3 and loaded.layers[4].eps == 1e-3
    np.testing.assert_array_equal(loaded.predict(x), network.predict(x))


# ---------------------------------------------------------------------------- global pool


def test_global_average_pooling_forward_backward_and_shapes(rng):
    layer = fastcnn.GlobalAvgPool2D().astype(np.float64)
    x = rng.standard_normal((3, 4, 5, 2))
    np.testing.assert_allclose(layer.forward(x), x.mean(axis=(2, 3)))
    assert layer.output_shape == (4,)
    weights = rng.standard_normal((3, 4))
    grad_x = layer.backward(weights, 0.0)
    np.testing.assert_allclose(
        grad_x, numerical_gradient(lambda: float(np.sum(layer.forward(x) * weights)), x),
        rtol=1e-6, atol=1e-10,
    )
    np.testing.assert_allclose(grad_x, np.broadcast_to(weights[..., None, None] / 10, x.shape))
    assert layer.forward(x[0]).shape == (4,)
    assert layer.backward(weights[0], 0.0).shape == (4, 5, 2)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        layer.forward(np.ones((2, 3)))


def test_global_average_pooling_agrees_with_avgpool2d_over_the_whole_plane(rng):
    x = rng.standard_normal((2, 3, 4, 6)).astype(np.float32)
    np.testing.assert_allclose(
        fastcnn.GlobalAvgPool2D().forward(x),
        kernels.avgpool2d(x, (4, 6))[:, :, 0, 0],
        rtol=1e-6,
        atol=1e-6,
    )
