"""fastcnn.gradient_check: built-in layers pass, a wrong backward is caught and located,
the layer passed in is left untouched."""

import numpy as np
import pytest

import fastcnn

TOLERANCE = 1e-6


def away_from_kinks(rng, shape):
    """Normal values with |x| >= 0.1 and distinct in every pooling window, so no ReLU
    kink or max-pool tie lies within a finite-difference step."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 0.1, np.sign(x + 1e-12) * 0.1 + x, x)


BUILT_IN = [
    pytest.param(lambda: fastcnn.Dense(4), (3, 5), id="Dense"),
    pytest.param(lambda: fastcnn.Dense(4), (5,), id="Dense-unbatched"),
    pytest.param(lambda: fastcnn.Convolutional(3, 3, stride=2, padding=1), (2, 2, 5, 6),
                 id="Convolutional"),
    pytest.param(lambda: fastcnn.MaxPool2D(2), (2, 2, 4, 4), id="MaxPool2D"),
    pytest.param(lambda: fastcnn.AvgPool2D(3, stride=2), (2, 2, 5, 5), id="AvgPool2D"),
    pytest.param(fastcnn.GlobalAvgPool2D, (2, 3, 3, 4), id="GlobalAvgPool2D"),
    pytest.param(fastcnn.BatchNorm2D, (3, 2, 3, 3), id="BatchNorm2D"),
    pytest.param(fastcnn.BatchNorm1D, (4, 3), id="BatchNorm1D"),
    pytest.param(fastcnn.ReLU, (3, 4), id="ReLU"),
    pytest.param(fastcnn.Tanh, (3, 4), id="Tanh"),
    pytest.param(fastcnn.Sigmoid, (3, 4), id="Sigmoid"),
    pytest.param(fastcnn.Softmax, (3, 4), id="Softmax"),
    pytest.param(lambda: fastcnn.Dropout(0.5, seed=3), (4, 6), id="Dropout"),
    pytest.param(fastcnn.Flatten, (2, 2, 3), id="Flatten"),
    pytest.param(lambda: fastcnn.Reshape((3, 2)), (2, 6), id="Reshape"),
]


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("make, shape", BUILT_IN)
def test_built_in_layers_pass(make, shape, training, rng):
    layer = make()
    x = away_from_kinks(rng, shape)
    layer.forward(x)  # builds the parameters, to name them below
    result = fastcnn.gradient_check(layer, x, training=training)
    names = {"input", *layer.parameters}
    assert set(result) == names
    assert all(error < TOLERANCE for error in result.values()), str(result)


def test_a_network_of_layers_passes_layer_by_layer_including_batchnorm_after_steps(rng):
    """BatchNorm with trained gamma/beta and running statistics, both modes."""
    layer = fastcnn.BatchNorm2D(momentum=0.5)
    for _ in range(3):
        layer.forward(rng.standard_normal((4, 2, 3, 3)) * 3 + 1)
        layer.backward(rng.standard_normal((4, 2, 3, 3)), 0.2)
    for training in (True, False):
        result = fastcnn.gradient_check(layer, rng.standard_normal((4, 2, 3, 3)), training=training)
        assert max(result.values()) < TOLERANCE, str(result)


class Scale(fastcnn.Layer):
    """A user's layer: y = x * weights (per feature); ``wrong`` breaks its backward."""

    def __init__(self, features, wrong=None):
        super().__init__()
        self.weights = np.linspace(0.5, 1.5, features).astype(np.float32)
        self.wrong = wrong

    @property
    def parameters(self):
        return {"weights": self.weights}

    def forward(self, input):
        self.input = self._as_input(input)
        self.output = self.input * self.weights
        return self.output

    def backward(self, output_gradient, learning_rate):
        grad_weights = (output_gradient * self.input).sum(axis=0)
        grad_x = output_gradient * self.weights
        if self.wrong == "input":
            grad_x[1, 2] *= 1.01
        if self.wrong == "weights":
            grad_weights = grad_weights.copy()
            grad_weights[3] = 0.0
        self.update_parameters({"weights": grad_weights}, learning_rate)
        return grad_x


def test_a_users_own_layer_passes_when_right(rng):
    result = fastcnn.gradient_check(Scale(5), rng.standard_normal((3, 5)))
    assert set(result) == {"input", "weights"}
    assert max(result.values()) < TOLERANCE, str(result)


@pytest.mark.parametrize("wrong, index", [("input", (1, 2)), ("weights", (3,))])
def test_a_wrong_backward_is_caught_where_it_is_wrong(wrong, index, rng):
    result = fastcnn.gradient_check(Scale(5, wrong=wrong), rng.standard_normal((3, 5)))
    assert result[wrong] > 1e-3
    other = "weights" if wrong == "input" else "input"
    assert result[other] < TOLERANCE
    worst_index, analytic, numerical = result.worst[wrong]
    assert worst_index == index
    assert analytic != pytest.approx(numerical)
    assert f"at index {index}" in str(result)


def test_the_layer_passed_in_is_left_as_it_was(rng):
    layer = fastcnn.BatchNorm2D()
    layer.forward(rng.standard_normal((3, 2, 2, 2)))
    before = {name: a.copy() for name, a in {**layer.parameters, **layer.buffers}.items()}
    fastcnn.gradient_check(layer, rng.standard_normal((3, 2, 2, 2)), training=True)
    assert layer.dtype == np.float32 and layer.num_batches_tracked == 1
    for name, array in {**layer.parameters, **layer.buffers}.items():
        assert array.dtype == np.float32
        np.testing.assert_array_equal(array, before[name])


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="forward"):
        fastcnn.gradient_check(object(), np.ones(3))
    with pytest.raises(ValueError, match="step"):
        fastcnn.gradient_check(fastcnn.ReLU(), np.ones(3), step=0)

    class NoInputGradient(fastcnn.Layer):
        def forward(self, input):
            return input * 2

        def backward(self, output_gradient, learning_rate):
            return None

    with pytest.raises(ValueError, match="returned None"):
        fastcnn.gradient_check(NoInputGradient(), np.ones(3))
