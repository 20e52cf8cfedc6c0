"""Network: training learns, fit/predict/evaluate/summary behave as documented, a
seed makes a run reproducible, and the hot loop runs once per batch."""

import numpy as np
import pytest

import fastcnn
from fastcnn import Network, layers, losses
from fastcnn.optimizers import SGD, Adam

from _helpers import class_images


def small_cnn(**kwargs):
    return Network(
        [
            layers.Reshape((1, 28, 28)),
            layers.Convolutional(4, 5, stride=2),
            layers.ReLU(),
            layers.MaxPool2D(2),
            layers.Flatten(),
            layers.Dense(10),
        ],
        **kwargs,
    ).use("softmax_cross_entropy")


@pytest.fixture(scope="module")
def images():
    """100 training and 100 held-out 28x28 uint8 images in 10 classes."""
    return class_images(100, seed=1, noise=0.3), class_images(100, seed=2, noise=0.3)


def test_a_small_cnn_overfits_100_samples_and_held_out_loss_falls(images):
    (x, y), (x_val, y_val) = images
    network = small_cnn()
    history = network.fit(
        x / 255, y, epochs=30, learning_rate=0.1, batch_size=10,
        validation_data=(x_val / 255, y_val), verbose=0, seed=0,
    )
    assert history["accuracy"][-1] == 1.0
    assert network.evaluate(x / 255, y)["accuracy"] == 1.0
    assert history["val_loss"][-1] < 0.5 * history["val_loss"][0]
    assert history["loss"][-1] < 0.05 < history["loss"][0]


def test_uint8_input_trains_exactly_like_its_float_conversion(images):
    (x, y), _ = images
    runs = []
    for data in (x, x.astype(np.float32)):
        network = small_cnn()
        network.fit(data, y, epochs=2, learning_rate=1e-4, verbose=0, seed=3)
        runs.append(network)
    for a, b in zip(runs[0].layers, runs[1].layers):
        for name in a.parameters:
            np.testing.assert_array_equal(a.parameters[name], b.parameters[name])
    assert runs[0].predict(x).dtype == np.float32


def test_a_seed_makes_the_run_reproducible(images):
    (x, y), _ = images
    def network():
        return Network(
            [layers.Flatten(), layers.Dense(16), layers.ReLU(), layers.Dropout(0.3), layers.Dense(10)]
        ).use("softmax_cross_entropy")

    a, b, c = network(), network(), network()
    history_a = a.fit(x / 255, y, 2, 0.05, verbose=0, seed=11)
    history_b = b.fit(x / 255, y, 2, 0.05, verbose=0, seed=11)
    history_c = c.fit(x / 255, y, 2, 0.05, verbose=0, seed=12)
    assert history_a == history_b
    assert history_a != history_c
    np.testing.assert_array_equal(a.layers[1].weights, b.layers[1].weights)
    assert not np.array_equal(a.layers[1].weights, c.layers[1].weights)


def test_history_holds_one_float_per_epoch(images):
    (x, y), (x_val, y_val) = images
    network = small_cnn()
    history = network.fit(x / 255, y, 3, 0.05, validation_data=(x_val / 255, y_val), verbose=0, seed=0)
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.epochs == 3
    for values in history.values():
        assert len(values) == 3 and all(isinstance(v, float) for v in values)
    assert history["val_loss"][-1] == pytest.approx(network.evaluate(x_val / 255, y_val)["loss"], rel=1e-6)
    without = small_cnn().fit(x / 255, y, 2, 0.05, verbose=0)
    assert set(without) == {"loss", "accuracy"}


def test_training_loss_and_accuracy_are_the_epochs_running_means():
    # one batch per epoch and learning_rate 0: the epoch's numbers are those of the data
    x = np.random.default_rng(0).standard_normal((40, 6))
    y = np.arange(40) % 3
    network = Network([layers.Dense(3, seed=0)], dtype=np.float64).use("softmax_cross_entropy")
    history = network.fit(x, y, 1, 0.0, batch_size=40, verbose=0)
    scores = network.evaluate(x, y)
    assert history["loss"][0] == pytest.approx(scores["loss"], rel=1e-12)
    assert history["accuracy"][0] == pytest.approx(scores["accuracy"])


def test_verbose_prints_one_line_per_epoch(images, capsys):
    (x, y), (x_val, y_val) = images
    small_cnn().fit(x / 255, y, 2, 0.05, validation_data=(x_val / 255, y_val), seed=0)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("epoch 1/2  loss=")
    assert "accuracy=" in lines[1] and "val_loss=" in lines[1] and "val_accuracy=" in lines[1]
    small_cnn().fit(x / 255, y, 2, 0.05, verbose=0)
    assert capsys.readouterr().out == ""


class Recorder:
    """A callback that writes down every call."""

    def __init__(self):
        self.calls = []

    def on_epoch_begin(self, epoch):
        self.calls.append(("begin", epoch))

    def on_batch_end(self, batch, logs):
        self.calls.append(("batch", batch, dict(logs)))

    def on_epoch_end(self, epoch, logs):
        self.calls.append(("end", epoch, dict(logs)))


def test_callbacks_hear_each_epoch_and_batch(images):
    (x, y), _ = images
    recorder = Recorder()
    history = small_cnn().fit(x / 255, y, 2, 0.05, batch_size=40, verbose=0, seed=0,
                              callbacks=[recorder])
    assert [call[:2] for call in recorder.calls] == [
        ("begin", 0), ("batch", 0), ("batch", 1), ("batch", 2), ("end", 0),
        ("begin", 1), ("batch", 0), ("batch", 1), ("batch", 2), ("end", 1),
    ]
    batches = [call[2] for call in recorder.calls if call[0] == "batch"]
    assert [logs["size"] for logs in batches[:3]] == [40, 40, 20]
    first_epoch = batches[:3]
    mean_loss = sum(logs["loss"] * logs["size"] for logs in first_epoch) / 100
    assert mean_loss == pytest.approx(history["loss"][0], rel=1e-12)
    assert sum(logs["correct"] for logs in first_epoch) / 100 == history["accuracy"][0]
    assert recorder.calls[4][2] == {key: values[0] for key, values in history.items()}
    regression = Recorder()
    Network([layers.Dense(1)]).use("mse").fit(
        np.ones((4, 2)), np.ones((4, 1)) / 2, 1, 0.1, verbose=0, callbacks=[regression]
    )
    assert regression.calls[1][2]["correct"] is None


def test_summary_lists_layers_output_shapes_and_parameters(capsys):
    network = Network(
        [
            layers.Convolutional(6, 5, padding=2, input_shape=(1, 28, 28)),
            layers.ReLU(),
            layers.MaxPool2D(2),
            layers.Flatten(),
            layers.Dense(10),
        ]
    )
    text = network.summary()
    assert capsys.readouterr().out == text + "\n"
    lines = text.splitlines()
    assert lines[0].split() == ["Layer", "Output", "shape", "Params"]
    assert lines[2].startswith("Convolutional(6, kernel_size=5, padding=2)") and "(6, 28, 28)" in lines[2]
    assert lines[2].split()[-1] == "156"
    assert "(6, 14, 14)" in lines[4]
    assert "(1176,)" in lines[5]
    assert lines[6].startswith("Dense(10)") and lines[6].split()[-1] == "11,770"
    assert lines[-1] == "Total params: 11,926"
    # summary traced a copy: the unbuilt Dense layer is still unbuilt
    assert network.layers[-1].weights is None


def test_summary_needs_an_input_shape():
    with pytest.raises(ValueError, match="input_shape"):
        Network([layers.Dense(3)]).summary()


def test_summary_with_an_input_shape_builds_the_layers_for_it(capsys):
    network = Network([layers.Convolutional(2, 3), layers.Flatten(), layers.Dense(4)])
    text = network.summary((1, 5, 5))
    assert "(2, 3, 3)" in text and "(18,)" in text and text.endswith("Total params: 96")
    assert [layer.input_shape for layer in network.layers] == [(1, 5, 5), (2, 3, 3), (18,)]
    assert network.input_shape == (1, 5, 5)


def test_summary_after_fit_uses_the_training_input_shape():
    network = Network([layers.Dense(3), layers.Softmax()]).use("cross_entropy")
    network.fit(np.zeros((4, 5)), np.array([0, 1, 2, 0]), 1, 0.1, verbose=0)
    assert "Total params: 18" in network.summary()


def test_add_and_use_chain_and_layers_is_a_plain_list():
    network = Network()
    dense = layers.Dense(2)
    assert network.add(dense) is network
    assert network.use("mse") is network
    assert network.layers == [dense] and type(network.layers) is list
    assert network.use(losses.mse).loss_prime is losses.mse_prime
    custom = (lambda y, p: 0.0, lambda y, p: p)
    assert network.use(*custom).loss is custom[0]


def test_predict_returns_logits_and_takes_one_sample(images):
    (x, y), _ = images
    network = small_cnn()
    network.fit(x / 255, y, 1, 0.05, verbose=0, seed=0)
    outputs = network.predict(x / 255)
    assert outputs.shape == (100, 10)
    np.testing.assert_allclose(network.predict(x[7] / 255), outputs[7], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(network.predict(x / 255, batch_size=7), outputs, rtol=1e-5, atol=1e-6)
    assert not np.allclose(outputs.sum(axis=1), 1)


def test_evaluate_reports_loss_accuracy_and_macro_f1():
    x = np.eye(4)
    network = Network([layers.Dense(4, seed=0)], dtype=np.float64).use("softmax_cross_entropy")
    dense = network.layers[0]
    dense.build((4,))
    dense.weights[:] = 10 * np.eye(4)[[0, 1, 2, 2]]  # sample 3 is predicted as class 2
    scores = network.evaluate(x, np.array([0, 1, 2, 3]))
    assert set(scores) == {"loss", "accuracy", "macro_f1"}
    assert scores["accuracy"] == 0.75
    # F1 per class: 1, 1, 2/3, 0
    assert scores["macro_f1"] == pytest.approx((1 + 1 + 2 / 3 + 0) / 4)
    assert scores["loss"] == pytest.approx(losses.softmax_cross_entropy([0, 1, 2, 3], x @ dense.weights))


def test_dropout_is_off_in_predict(images):
    (x, y), _ = images
    network = Network([layers.Flatten(), layers.Dense(32), layers.Dropout(0.5), layers.Dense(10)]).use(
        "softmax_cross_entropy"
    )
    network.fit(x / 255, y, 1, 0.05, verbose=0, seed=0)
    np.testing.assert_array_equal(network.predict(x / 255), network.predict(x / 255))
    assert network.layers[2].training is True


class CountingLayer(fastcnn.Layer):
    """A user's pure-Python layer: y = scale * x, with its own parameter."""

    def __init__(self):
        super().__init__()
        self.scale = np.array([1.5])
        self.calls = 0

    @property
    def parameters(self):
        return {"scale": self.scale}

    def forward_propagation(self, input):
        self.calls += 1
        self.input = input
        return self.scale * input

    def backward_propagation(self, output_error, learning_rate):
        gradient = np.sum(output_error * self.input, keepdims=True).reshape(1)
        input_error = self.scale * output_error
        self.update_parameters({"scale": gradient}, learning_rate)
        return input_error


def test_a_users_own_layer_trains_inside_a_network(rng):
    x = rng.standard_normal((64, 5))
    y = rng.integers(0, 3, 64)
    counting = CountingLayer()
    network = Network([layers.Dense(3, seed=0), counting], dtype=np.float64).use("softmax_cross_entropy")
    reference = Network([layers.Dense(3, seed=0)], dtype=np.float64).use("softmax_cross_entropy")
    reference.layers[0].build((5,))
    reference.layers[0].weights *= 1.5  # the same function before training
    network.layers[0].build((5,))
    np.testing.assert_allclose(network.predict(x), reference.predict(x), rtol=1e-12)
    history = network.fit(x, y, 3, 0.1, batch_size=16, verbose=0, shuffle=False)
    assert counting.scale[0] != 1.5
    assert history["loss"][-1] < history["loss"][0]
    # one call per batch, never one per sample: 3 epochs x 4 batches (+ 1 predict above)
    assert counting.calls == 13


def test_a_layer_that_is_not_a_layer_subclass_works_too(rng):
    class Identity:
        def forward(self, input):
            return input

        def backward(self, output_gradient, learning_rate):
            return output_gradient

    network = Network([Identity(), layers.Dense(2, seed=0)]).use("mse")
    network.fit(rng.standard_normal((8, 3)), rng.standard_normal((8, 2)), 1, 0.1, verbose=0)
    assert network.predict(np.zeros((1, 3))).shape == (1, 2)


def test_fit_optimizer_reaches_every_layer(images):
    (x, y), _ = images
    network = small_cnn()
    adam = Adam()
    network.fit(x / 255, y, 1, 0.001, optimizer=adam, verbose=0, seed=0)
    assert all(layer.optimizer is adam for layer in network.layers)
    assert network.layers[1]._optimizer_state["kernels"]["step"] == 4
    network.fit(x / 255, y, 1, 0.001, optimizer=adam, verbose=0, seed=0)
    assert network.layers[1]._optimizer_state["kernels"]["step"] == 8
    network.fit(x / 255, y, 1, 0.001, optimizer="adam", verbose=0, seed=0)
    assert isinstance(network.layers[0].optimizer, Adam) and network.layers[0].optimizer is not adam
    assert network.layers[1]._optimizer_state["kernels"]["step"] == 4


def test_momentum_changes_training(images):
    (x, y), _ = images
    plain, momentum = small_cnn(), small_cnn()
    plain.fit(x / 255, y, 1, 0.01, verbose=0, seed=0)
    momentum.fit(x / 255, y, 1, 0.01, optimizer=SGD(momentum=0.9), verbose=0, seed=0)
    assert not np.allclose(plain.layers[-1].weights, momentum.layers[-1].weights)


def test_he_initialisation_is_chosen_before_a_relu():
    network = Network(
        [layers.Dense(4), layers.ReLU(), layers.Dense(3), layers.Tanh(), layers.Dense(2, init="he")]
    )
    network.use("mse").predict(np.zeros((1, 5)))
    assert [getattr(layer, "init", None) for layer in network.layers] == ["he", None, "glorot", None, "he"]


def test_the_network_dtype_reaches_every_layer():
    network = Network([layers.Dense(3, input_shape=2), layers.Tanh()], dtype=np.float64)
    assert network.layers[0].weights.dtype == np.float64
    assert network.predict(np.ones((2, 2), np.float32)).dtype == np.float64


def diverge(network, x):
    with np.errstate(over="ignore", invalid="ignore"):  # numpy's own overflow warnings
        network.use("mse").fit(x * 1e3, np.ones((10, 3)), 5, 1e6, verbose=0)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda n, x, y: Network([layers.Dense(2)]).fit(x, y, 1, 0.1), RuntimeError, "use"),
        (lambda n, x, y: n.fit(x, y[:5], 1, 0.1), ValueError, r"one target per sample \(10\)"),
        (lambda n, x, y: n.fit(np.full((10, 3), np.nan), y, 1, 0.1), ValueError, "NaN"),
        (lambda n, x, y: n.fit(x, y, 0, 0.1), ValueError, "epochs"),
        (lambda n, x, y: n.fit(x, y, 1, -0.1), ValueError, "learning_rate"),
        (lambda n, x, y: n.fit(x, y, 1, 0.1, batch_size=0), ValueError, "batch_size"),
        (lambda n, x, y: n.fit(x, y, 1, 0.1, optimizer="adagrad"), ValueError, "unknown optimizer"),
        (lambda n, x, y: n.fit(x, y, 1, 0.1, validation_data=x), ValueError, "pair"),
        (lambda n, x, y: n.fit(x[:, 0], y, 1, 0.1), ValueError, "samples along its first axis"),
        (lambda n, x, y: diverge(n, x), FloatingPointError, "smaller learning_rate"),
        (lambda n, x, y: Network().predict(x), ValueError, "no layers"),
        (lambda n, x, y: n.use("hinge"), ValueError, "unknown loss"),
        (lambda n, x, y: n.add(object()), TypeError, "forward"),
        (lambda n, x, y: n.add(layers.ReLU), TypeError, r"ReLU\(\), not the class"),
    ],
    ids=[
        "no-loss", "lengths", "nan", "epochs", "learning-rate", "batch-size", "optimizer-type",
        "validation", "rank", "diverges", "empty-network", "loss-name", "not-a-layer",
        "a-class",
    ],
)
def test_bad_calls_raise_clear_errors(call, error, match, rng):
    network = Network([layers.Dense(3, seed=0)]).use("softmax_cross_entropy")
    x = rng.standard_normal((10, 3))
    y = rng.integers(0, 3, 10)
    with pytest.raises(error, match=match):
        call(network, x, y)


def test_mse_regression_reports_no_accuracy(rng):
    x = rng.standard_normal((32, 3))
    y = x @ rng.standard_normal((3, 1))
    network = Network([layers.Dense(1, seed=0)]).use("mse")
    history = network.fit(x, y, 20, 0.1, verbose=0)
    assert set(history) == {"loss"}
    assert history["loss"][-1] < 0.1 * history["loss"][0]
    assert network.evaluate(x, y)["accuracy"] is None


def _small_classifier():
    return [layers.Convolutional(3, kernel_size=3, init="he", seed=1), layers.ReLU(),
            layers.Flatten(), layers.Dense(4, init="glorot", seed=2)]


@pytest.mark.parametrize("labels_dtype", [np.int64, np.uint8])
def test_fit_equals_the_write_ups_loop_with_the_public_losses(rng, labels_dtype):
    """fit checks integer labels once, then takes the fused loss kernel each step; the
    write-ups' loop calls the public loss pair. Both end with the same parameters and
    fit's loss is the mean of the public loss over the steps."""
    x = rng.standard_normal((9, 1, 6, 6)).astype(np.float32)
    y = rng.integers(0, 4, 9).astype(labels_dtype)
    network = Network(_small_classifier()).use("softmax_cross_entropy")
    history = network.fit(x, y, epochs=1, learning_rate=0.1, batch_size=2, shuffle=False,
                          verbose=0)
    loop = _small_classifier()
    loop[0].input_gradient = False
    losses_seen = []
    for start in range(0, 9, 2):
        output = x[start:start + 2]
        for layer in loop:
            output = layer.forward(output)
        losses_seen.append(losses.softmax_cross_entropy(y[start:start + 2], output)
                           * len(output))
        gradient = losses.softmax_cross_entropy_prime(y[start:start + 2], output)
        for layer in reversed(loop):
            gradient = layer.backward(gradient, 0.1)
    for trained, expected in zip(network.layers, loop):
        for (name, value), (_, want) in zip(trained.parameters.items(),
                                            expected.parameters.items()):
            np.testing.assert_array_equal(value, want, err_msg=name)
    assert history.history["loss"][0] == pytest.approx(sum(losses_seen) / 9, rel=1e-12)


def test_fit_names_a_label_out_of_range_in_a_later_batch(rng):
    x = rng.standard_normal((6, 1, 6, 6)).astype(np.float32)
    y = np.array([0, 1, 2, 3, 4, 0])  # 4 is not a class of 4 outputs
    network = Network(_small_classifier()).use("softmax_cross_entropy")
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\]"):
        network.fit(x, y, epochs=1, learning_rate=0.1, batch_size=2, shuffle=False, verbose=0)
