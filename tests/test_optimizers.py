"""Optimizers: each update rule against its formula, written out step by step, and
state that belongs to one parameter of one layer."""

import numpy as np
import pytest

from fastcnn import layers
from fastcnn.optimizers import SGD, Adam, GradientDescent, Optimizer, get

STEPS = 4


def run(optimizer, parameter, gradients, learning_rate):
    state = {}
    for gradient in gradients:
        optimizer.update(parameter, gradient, learning_rate, state)
    return parameter


@pytest.fixture
def problem(rng):
    parameter = rng.standard_normal((3, 4))
    gradients = [rng.standard_normal((3, 4)) for _ in range(STEPS)]
    return parameter, gradients


def test_gradient_descent_is_exactly_p_minus_lr_g(problem):
    parameter, gradients = problem
    expected = parameter.copy()
    for g in gradients:
        expected = expected - 0.1 * g
    result = run(GradientDescent(), parameter.copy(), gradients, 0.1)
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize(
    "momentum, nesterov, decay",
    [
        pytest.param(0.0, False, 0.0, id="plain"),
        pytest.param(0.9, False, 0.0, id="momentum"),
        pytest.param(0.9, True, 0.0, id="nesterov"),
        pytest.param(0.5, False, 0.01, id="momentum-decay"),
        pytest.param(0.8, True, 0.1, id="nesterov-decay"),
    ],
)
def test_sgd_follows_its_formula(problem, momentum, nesterov, decay):
    parameter, gradients = problem
    expected = parameter.copy()
    velocity = np.zeros_like(expected)
    for g in gradients:
        g = g + decay * expected
        velocity = momentum * velocity + g
        step = g + momentum * velocity if nesterov else (velocity if momentum else g)
        expected = expected - 0.05 * step
    result = run(SGD(momentum, nesterov, decay), parameter.copy(), gradients, 0.05)
    np.testing.assert_allclose(result, expected, rtol=1e-13)
    if momentum or decay:
        assert not np.allclose(result, run(GradientDescent(), parameter.copy(), gradients, 0.05))


@pytest.mark.parametrize("decay", [0.0, 0.01])
def test_adam_follows_its_formula(problem, decay):
    parameter, gradients = problem
    beta1, beta2, eps, lr = 0.8, 0.99, 1e-6, 0.01
    expected = parameter.copy()
    m = np.zeros_like(expected)
    v = np.zeros_like(expected)
    for t, g in enumerate(gradients, start=1):
        g = g + decay * expected
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        expected = expected - lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
    result = run(Adam(beta1, beta2, eps, decay), parameter.copy(), gradients, lr)
    np.testing.assert_allclose(result, expected, rtol=1e-12)


def test_adam_first_step_moves_each_parameter_by_about_the_learning_rate():
    parameter = np.zeros(3)
    Adam().update(parameter, np.array([1e-3, -5.0, 200.0]), 0.01, {})
    np.testing.assert_allclose(parameter, [-0.01, 0.01, -0.01], rtol=1e-4)


@pytest.mark.parametrize("optimizer", [SGD(momentum=0.9), Adam()], ids=["sgd", "adam"])
def test_one_optimizer_shared_by_two_layers_keeps_their_states_apart(optimizer, rng):
    x = rng.standard_normal((5, 4))
    shared = [layers.Dense(3, input_shape=4, seed=s, dtype=np.float64) for s in (0, 1)]
    alone = [layers.Dense(3, input_shape=4, seed=s, dtype=np.float64) for s in (0, 1)]
    for layer in shared:
        layer.optimizer = optimizer
    for layer in alone:
        layer.optimizer = type(optimizer)(**optimizer.config())
    for step in range(3):
        for index in (0, 1):
            g = rng.standard_normal((5, 3)) * (index + 1)
            for layer in (shared[index], alone[index]):
                layer.forward(x)
                layer.backward(g, 0.1)
    for a, b in zip(shared, alone):
        for name in a.parameters:
            np.testing.assert_array_equal(a.parameters[name], b.parameters[name])


def test_learning_rate_zero_moves_nothing(problem):
    parameter, gradients = problem
    for optimizer in (GradientDescent(), SGD(0.9, True, 0.1), Adam(weight_decay=0.1)):
        np.testing.assert_array_equal(run(optimizer, parameter.copy(), gradients, 0.0), parameter)


def test_updates_keep_float32():
    parameter = np.ones(4, np.float32)
    for optimizer in (GradientDescent(), SGD(0.9, weight_decay=0.1), Adam(weight_decay=0.1)):
        optimizer.update(parameter, np.ones(4, np.float32), 0.1, {})
        assert parameter.dtype == np.float32


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: SGD(momentum=1.0), "momentum"),
        (lambda: SGD(momentum=-0.1), "momentum"),
        (lambda: SGD(nesterov=True), "nesterov"),
        (lambda: SGD(weight_decay=float("nan")), "weight_decay"),
        (lambda: Adam(beta1=1.0), "beta1"),
        (lambda: Adam(eps=-1), "eps"),
        (lambda: get("rmsprop"), "unknown optimizer"),
    ],
    ids=["momentum-1", "momentum-negative", "nesterov-without-momentum", "decay-nan", "beta1", "eps", "name"],
)
def test_bad_settings_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_get_and_repr():
    assert isinstance(get("adam"), Adam)
    sgd = SGD(0.9)
    assert get(sgd) is sgd
    assert repr(sgd) == "SGD(momentum=0.9, nesterov=False, weight_decay=0.0)"
    assert isinstance(get("sgd"), Optimizer)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(6, 6, 5, 5), (10,), (1176, 10), (700, 300), ()], ids=str)
def test_gradient_descent_gives_numpys_numbers_bit_for_bit(rng, shape, dtype):
    parameter = rng.standard_normal(shape).astype(dtype)
    gradient = rng.standard_normal(shape).astype(dtype)
    expected = parameter.copy()
    expected -= 0.0123 * gradient
    GradientDescent().update(parameter, gradient, 0.0123, {})
    np.testing.assert_array_equal(parameter, expected, strict=True)


def _view(array):
    return array[:, ::2]


@pytest.mark.parametrize(
    "make_parameter, make_gradient",
    [
        pytest.param(lambda a: _view(a.copy()), lambda g: _view(g), id="strided-parameter"),
        pytest.param(lambda a: a.copy(), lambda g: g.astype(np.float64), id="float64-gradient"),
        pytest.param(lambda a: a.copy(), lambda g: g[:1], id="broadcast-gradient"),
        pytest.param(lambda a: a.copy(), lambda g: g.T.copy().T, id="fortran-gradient"),
    ],
)
def test_gradient_descent_takes_numpys_rule_for_any_other_arrays(rng, make_parameter,
                                                                 make_gradient):
    base = rng.standard_normal((4, 6)).astype(np.float32)
    gradient = make_gradient(rng.standard_normal((4, 6)).astype(np.float32))
    parameter, expected = make_parameter(base), make_parameter(base)
    expected -= 0.5 * gradient
    GradientDescent().update(parameter, gradient, 0.5, {})
    np.testing.assert_array_equal(parameter, expected, strict=True)


def test_gradient_descent_refuses_a_read_only_parameter_as_numpy_does(rng):
    parameter = rng.standard_normal(5)
    parameter.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        GradientDescent().update(parameter, np.ones(5), 0.1, {})
