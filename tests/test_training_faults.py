"""Training refuses bad data, stops cleanly on Ctrl-C, and skips work nobody reads."""

import os
import signal

import numpy as np
import pytest

import fastcnn
from fastcnn import Convolutional, Dense, Flatten, MaxPool2D, Network, ReLU


def small_cnn(seed=0):
    return Network(
        [
            Convolutional(3, 3, padding=1, seed=seed),
            ReLU(),
            MaxPool2D(2),
            Flatten(),
            Dense(4, seed=seed + 1),
        ],
        dtype=np.float64,
    ).use("softmax_cross_entropy")


def data(count=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((count, 1, 8, 8)), rng.integers(0, 4, count)


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("x", np.nan, r"x contains NaN or infinite values: sample 7 holds nan at position \(0, 2, 5\)"),
        ("x", -np.inf, r"x contains NaN or infinite values: sample 7 holds -inf"),
        ("validation x", np.inf, r"validation x contains NaN or infinite values: sample 7"),
    ],
)
def test_non_finite_training_data_is_refused_naming_the_sample(where, value, message):
    x, y = data()
    spoiled = x.copy()
    spoiled[7, 0, 2, 5] = value
    network = small_cnn()
    before = {k: v.copy() for k, v in network.layers[0].parameters.items()}
    if where == "x":
        call = lambda: network.fit(spoiled, y, 1, 0.1, verbose=0)  # noqa: E731
    else:
        call = lambda: network.fit(x, y, 1, 0.1, validation_data=(spoiled, y), verbose=0)  # noqa: E731
    with pytest.raises(ValueError, match=message):
        call()
    for name, array in network.layers[0].parameters.items():
        assert np.array_equal(array, before[name]), "weights changed before the refusal"


def test_one_hot_targets_with_nan_are_refused():
    x, y = data()
    targets = np.eye(4)[y]
    targets[3, 1] = np.nan
    with pytest.raises(ValueError, match="y contains NaN or infinite values: sample 3"):
        small_cnn().fit(x, targets, 1, 0.1, verbose=0)


def test_a_loss_that_becomes_nan_stops_training_with_a_message():
    x, y = data()
    # NumPy's own overflow warnings off: the network's check must catch it alone.
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match="the loss became"):
        small_cnn().fit(x * 1e200, y, 3, 1e200, verbose=0)


class InterruptAfter:
    """Sends this process SIGINT (as Ctrl-C does) at the end of batch `batch`."""

    def __init__(self, batch):
        self.batch = batch

    def on_batch_end(self, batch, logs):
        if batch == self.batch:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_stops_after_the_step_and_keeps_its_weights():
    x, y = data()
    interrupted = small_cnn()
    history = interrupted.fit(
        x, y, 5, 0.05, batch_size=4, shuffle=False, verbose=0, callbacks=[InterruptAfter(2)]
    )
    assert history.interrupted
    assert history.steps == 3
    assert history.epochs == 0
    # The same three steps without an interruption give the very same weights.
    reference = small_cnn()
    reference.fit(x[:12], y[:12], 1, 0.05, batch_size=4, shuffle=False, verbose=0)
    for stopped, plain in zip(interrupted.layers, reference.layers):
        for name, array in stopped.parameters.items():
            assert np.array_equal(array, plain.parameters[name]), name
    # Ctrl-C is Python's own again once fit has returned.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_uninterrupted_fit_reports_every_step():
    x, y = data()
    history = small_cnn().fit(x, y, 2, 0.05, batch_size=16, verbose=0)
    assert not history.interrupted
    assert history.steps == 2 * 3 and history.epochs == 2


def test_fit_skips_the_first_layers_input_gradient_and_changes_nothing_else():
    x, y = data()
    network = small_cnn()
    network.fit(x, y, 1, 0.05, batch_size=8, shuffle=False, verbose=0)
    first = network.layers[0]
    assert first.input_gradient is True, "the setting is restored after fit"
    # A hand-written loop that computes every input gradient lands on the same weights.
    by_hand = small_cnn()
    by_hand.fit(x[:1], y[:1], 1, 0.0, verbose=0)  # builds the layers with the same seeds
    for start in range(0, len(x), 8):
        output = x[start:start + 8]
        for layer in by_hand.layers:
            output = layer.forward(output)
        gradient = fastcnn.losses.softmax_cross_entropy_prime(y[start:start + 8], output)
        for layer in reversed(by_hand.layers):
            gradient = layer.backward(gradient, 0.05)
        assert gradient.shape == (len(output), 1, 8, 8)
    for trained, manual in zip(network.layers, by_hand.layers):
        for name, array in trained.parameters.items():
            np.testing.assert_array_equal(array, manual.parameters[name])
