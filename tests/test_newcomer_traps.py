"""Traps a newcomer walked into: each is now a clear refusal (or the right value)."""

import numpy as np
import pytest

from fastcnn import Network, callbacks, layers, losses
from fastcnn.optimizers import Adam
from test_cli import SAMPLE, assert_failed_in_one_line, run


def small_cnn():
    return Network([layers.Convolutional(4, 3, seed=1), layers.ReLU(), layers.Flatten(),
                    layers.Dense(3, seed=2)]).use("softmax_cross_entropy")


def images(count=16, shape=(1, 10, 10)):
    rng = np.random.default_rng(0)
    return rng.random((count, *shape)).astype(np.float32), rng.integers(0, 3, count)


def test_adam_diverging_stops_fit_with_the_reason():
    x, y = images()
    with pytest.raises(FloatingPointError, match="diverged.*learning_rate"):
        small_cnn().fit(x * 1e3, y, 3, 1e30, optimizer=Adam(), verbose=0, seed=0)


def test_a_step_that_leaves_infinite_optimizer_state_stops_fit():
    x, y = images()
    network = small_cnn()
    network.fit(x, y, 1, 0.01, optimizer=Adam(), verbose=0, seed=0)
    network.layers[0].optimizer_state["kernels"]["square_mean"][0] = np.inf
    with pytest.raises(FloatingPointError, match=r"diverged.*kernels \(square_mean\)"):
        network.fit(x, y, 1, 0.01, verbose=0)


def test_a_network_holding_nan_is_not_saved(tmp_path):
    x, y = images()
    network = small_cnn()
    network.fit(x, y, 1, 0.01, verbose=0)
    network.layers[3].bias[0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite.*diverge"):
        network.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


def test_a_diverging_command_line_run_fails_in_one_line_without_a_model(tmp_path):
    result = run("train", "--data", SAMPLE, "--limit", 200, "--epochs", 1, "--learning-rate",
                 "1e9", "--quiet", cwd=tmp_path)
    assert_failed_in_one_line(result, "diverged")
    assert not (tmp_path / "model.npz").exists()


def test_channels_last_images_are_refused_naming_the_transpose():
    x, y = images(shape=(32, 32, 3))
    with pytest.raises(ValueError, match=r"channels-last.*transpose\(0, 3, 1, 2\)"):
        small_cnn().fit(x, y, 1, 0.1, verbose=0)


def test_a_batch_without_channels_given_to_a_trained_network_is_refused_naming_it():
    x, y = images()
    network = small_cnn()
    network.fit(x, y, 1, 0.1, verbose=0)
    for bad in (x[:5, 0], x[:, 0]):
        with pytest.raises(ValueError, match=r"x\[:, None\]"):
            network.predict(bad)
    with pytest.raises(ValueError, match=r"x\[:, None\]"):
        network.fit(x, y, 1, 0.1, verbose=0, validation_data=(x[:, 0], y))
    assert network.predict(x[0]).shape == (3,), "one sample stays one sample"


def test_a_built_convolution_given_a_channelless_batch_says_what_it_may_be():
    conv = layers.Convolutional(2, 3)
    conv.forward(np.zeros((1, 8, 8)))
    with pytest.raises(ValueError, match=r"batch of 5 images without the channel axis"):
        conv.forward(np.zeros((5, 8, 8)))


def test_predict_refuses_nan_input():
    x, y = images()
    network = small_cnn()
    x[2, 0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="sample 2"):
        network.predict(x)


@pytest.mark.parametrize("rate, error", [(float("nan"), ValueError), (float("inf"), ValueError),
                                         ("0.1", TypeError), (None, TypeError),
                                         (-0.1, ValueError)])
def test_backward_checks_the_learning_rate(rate, error):
    conv = layers.Convolutional(2, 3, seed=0)
    conv.forward(np.random.default_rng(0).random((2, 1, 8, 8)))
    kernels = conv.kernels.copy()
    with pytest.raises(error, match="learning_rate"):
        conv.backward(np.ones((2, 2, 6, 6)), rate)
    np.testing.assert_array_equal(conv.kernels, kernels)


def test_softmax_before_softmax_cross_entropy_is_refused():
    x, y = images()
    network = Network([layers.Flatten(), layers.Dense(3), layers.Softmax()])
    with pytest.raises(ValueError, match="drop the Softmax layer"):
        network.use("softmax_cross_entropy").fit(x, y, 1, 0.1, verbose=0)


def test_an_object_with_no_callback_method_is_refused():
    x, y = images()
    with pytest.raises(TypeError, match="callback needs"):
        small_cnn().fit(x, y, 1, 0.1, verbose=0, callbacks=[lambda *a: None])


def test_model_checkpoint_checks_its_folder_before_training_and_names_unknown_fields(tmp_path):
    x, y = images()
    network = small_cnn()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        network.fit(x, y, 1, 0.1, verbose=0, callbacks=[
            callbacks.ModelCheckpoint(tmp_path / "missing" / "m.npz", monitor="loss")])
    with pytest.raises(ValueError, match="'foo'.*epoch"):
        network.fit(x, y, 1, 0.1, verbose=0, callbacks=[
            callbacks.ModelCheckpoint(tmp_path / "{foo}.npz", monitor="loss")])


def test_binary_cross_entropy_clips_as_keras_does_in_float32_too():
    assert losses.binary_cross_entropy([1, 0], np.array([[0.0], [1.0]])) == pytest.approx(
        -np.log(1e-7), rel=1e-6)
    gradient = losses.binary_cross_entropy_prime(np.array([[0, 1]]),
                                                 np.array([[1.0, 0.0]], np.float32))
    assert np.isfinite(gradient).all() and np.abs(gradient).max() < 1e7


def test_a_loss_of_no_samples_is_refused():
    with pytest.raises(ValueError, match="empty"):
        losses.mse(np.zeros((0, 10)), np.zeros((0, 10)))


def test_a_dense_layer_larger_than_memory_is_a_clear_memory_error():
    with pytest.raises(MemoryError, match=r"Dense weights.*more than this machine"):
        layers.Dense(10**12, input_shape=784)


def test_the_command_line_refuses_a_model_without_recorded_preprocessing(tmp_path):
    x, y = images(shape=(1, 28, 28))
    network = Network([layers.Flatten(), layers.Dense(10)]).use("softmax_cross_entropy")
    network.fit(x, y, 1, 0.1, verbose=0)
    network.save(tmp_path / "api.npz")
    np.save(tmp_path / "pixels.npy", (x[:3, 0] * 255).astype(np.uint8))
    result = run("predict", "api.npz", "pixels.npy", cwd=tmp_path)
    assert_failed_in_one_line(result, "records no input preprocessing")
    raw = run("predict", "api.npz", "pixels.npy", "--raw", cwd=tmp_path)
    assert raw.returncode == 0, raw.stderr
