"""Faults that users of other libraries reported publicly, each fixed by kind; the
right value (or the clear refusal) is what is tested."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import fastcnn
from fastcnn import Network, layers, losses, metrics
from fastcnn.optimizers import SGD, Adam


# --------------------------------------------------------------------------- losses


def test_softmax_cross_entropy_with_masked_classes_matches_pytorch():
    logits = np.array([[2, -np.inf, 0.5], [0.1, 0.2, -np.inf]])
    labels = np.array([0, 1])
    assert losses.softmax_cross_entropy(labels, logits) == pytest.approx(0.42290496902816166,
                                                                           rel=1e-12)
    assert losses.softmax_cross_entropy(np.eye(3)[labels], logits) == pytest.approx(
        0.42290496902816166, rel=1e-12)
    gradient = losses.softmax_cross_entropy_prime(labels, logits)
    assert np.isfinite(gradient).all() and gradient[0, 1] == 0 and gradient[1, 2] == 0


def test_softmax_cross_entropy_with_masked_classes_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 5))
    logits[rng.random((6, 5)) < 0.3] = -np.inf
    labels = np.array([int(np.flatnonzero(np.isfinite(row))[0]) for row in logits])
    expected = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(labels))
    assert losses.softmax_cross_entropy(labels, logits) == pytest.approx(float(expected), rel=1e-12)


def test_mse_with_targets_of_one_axis_fewer_than_one_column_outputs_is_refused_by_shape():
    targets = np.array([0.1, 0.5, 0.9, 0.3])
    outputs = np.array([[1.0], [0.0], [2.0], [-1.0]])
    for function in (losses.mse, losses.mse_prime):
        with pytest.raises(ValueError, match=r"shape \(4,\).*\(4, 1\).*reshape") as error:
            function(targets, outputs)
        assert "integer" not in str(error.value) and "label" not in str(error.value)
    assert losses.mse(targets.reshape(4, 1), outputs) == pytest.approx(0.99)


def test_whole_number_float_labels_get_the_integer_hint():
    with pytest.raises(TypeError, match="astype"):
        losses.softmax_cross_entropy(np.array([0.0, 2.0]), np.zeros((2, 3)))


@pytest.mark.parametrize("function, outputs, fix", [
    (losses.binary_cross_entropy, [[-0.5], [1.7], [0.3]], "Sigmoid"),
    (losses.binary_cross_entropy_prime, [[-0.5], [1.7], [0.3]], "Sigmoid"),
    (losses.cross_entropy, [[2.0, -1.0, 0.5], [0.1, 3.0, -2.0], [0.0, 0.0, 1.5]], "Softmax"),
    (losses.cross_entropy_prime, [[2.0, -1.0, 0.5], [0.1, 3.0, -2.0], [0.0, 0.0, 1.5]], "Softmax"),
])
def test_probability_losses_refuse_values_outside_0_1_naming_the_fix(function, outputs, fix):
    outputs = np.array(outputs)
    targets = np.array([1, 0, 1]) if outputs.shape[1] == 1 else np.array([0, 1, 2])
    with pytest.raises(ValueError, match=f"probabilities.*{fix}"):
        function(targets, outputs)


def test_a_dense_output_trained_with_binary_cross_entropy_is_stopped_at_once():
    rng = np.random.default_rng(0)
    network = Network([layers.Dense(1)]).use("binary_cross_entropy")
    with pytest.raises(ValueError, match="Sigmoid"):
        network.fit(rng.standard_normal((32, 4)) * 10, np.ones(32, np.int64), 2, 0.1,
                    verbose=0, seed=0)


# --------------------------------------------------------------------------- saving


def dropout_network():
    return Network([layers.Dense(16, seed=1), layers.ReLU(), layers.Dropout(0.5, seed=2),
                    layers.Dense(3, seed=3)]).use("softmax_cross_entropy")


@pytest.mark.parametrize("shuffle", [True, False])
def test_save_load_continue_is_bit_identical_to_the_run_that_never_stopped(tmp_path, shuffle):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((40, 5)), rng.integers(0, 3, 40)
    straight = dropout_network()
    straight.fit(x, y, 2, 0.05, batch_size=8, optimizer=Adam(), shuffle=shuffle, verbose=0,
                 seed=0)
    stopped = dropout_network()
    stopped.fit(x, y, 1, 0.05, batch_size=8, optimizer=Adam(), shuffle=shuffle, verbose=0,
                seed=0)
    stopped.save(tmp_path / "m.npz")
    resumed = Network.load(tmp_path / "m.npz")
    resumed.fit(x, y, 1, 0.05, batch_size=8, shuffle=shuffle, verbose=0)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def rewrite_description(path, change):
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    description = json.loads(str(np.load(path)["network.json"]))
    change(description)
    text = np.array(json.dumps(description))
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, text)
    members["network.json.npy"] = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_a_declared_input_shape_that_disagrees_with_the_layers_is_refused(tmp_path):
    network = Network([layers.Convolutional(2, 3), layers.Flatten(), layers.Dense(3)])
    network.use("softmax_cross_entropy").build((1, 8, 8))
    path = tmp_path / "m.npz"
    network.save(path)

    def huge(description):
        description["input_shape"] = [1, 30000, 30000]

    rewrite_description(path, huge)
    with pytest.raises(ValueError, match=r"m\.npz.*\(1, 8, 8\).*\(1, 30000, 30000\)"):
        Network.load(path)


def test_a_layer_whose_declared_shape_breaks_the_chain_is_refused(tmp_path):
    network = Network([layers.Convolutional(2, 3), layers.Flatten(), layers.Dense(3)])
    network.use("softmax_cross_entropy").build((1, 8, 8))
    path = tmp_path / "m.npz"
    network.save(path)

    def flatten_lies(description):
        description["layers"][1]["config"]["input_shape"] = [2, 7, 7]

    rewrite_description(path, flatten_lies)
    with pytest.raises(ValueError, match=r"m\.npz.*layer 1"):
        Network.load(path)


# --------------------------------------------------------------------------- threads


def run_python(code, **environment):
    import os

    env = {**os.environ, **environment}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)


def test_a_huge_thread_count_in_the_environment_is_a_value_error_naming_it():
    result = run_python("import fastcnn", FASTCNN_NUM_THREADS="99999999999")
    assert result.returncode != 0
    assert "ValueError: FASTCNN_NUM_THREADS" in result.stderr and "1024" in result.stderr
    assert "incompatible function arguments" not in result.stderr


@pytest.mark.parametrize("count", [2**31, 10**11, 0, -1])
def test_set_num_threads_names_the_limit(count):
    with pytest.raises(ValueError, match="threads.*positive int"):
        fastcnn.set_num_threads(count)


def test_set_num_threads_takes_numpy_integers():
    before = fastcnn.get_num_threads()
    try:
        fastcnn.set_num_threads(np.uint8(1))
        assert fastcnn.get_num_threads() == 1
    finally:
        fastcnn.set_num_threads(before)


# --------------------------------------------------------------------------- NumPy scalars


def test_numpy_scalars_are_accepted_wherever_python_numbers_are():
    conv = layers.Convolutional(np.uint8(4), np.int64(3), stride=np.int32(1),
                                padding=np.uint8(1))
    assert conv.depth == 4 and type(conv.depth) is int and conv.padding == (1, 1)
    pool = layers.MaxPool2D(np.uint8(2))
    dense = layers.Dense(np.uint16(3))
    drop = layers.Dropout(np.float32(0.25))
    network = Network([conv, layers.ReLU(), pool, layers.Flatten(), drop, dense])
    network.use("softmax_cross_entropy")
    rng = np.random.default_rng(0)
    x, y = rng.random((20, 1, 6, 6)), rng.integers(0, 3, 20)
    history = network.fit(x, y, epochs=np.int64(2), learning_rate=np.float32(0.01),
                          batch_size=np.uint8(200), optimizer=SGD(momentum=np.float32(0.9)),
                          verbose=0, seed=np.int64(3))
    assert len(history["loss"]) == 2
    assert network.predict(x, batch_size=np.uint8(7)).shape == (20, 3)


def test_a_uint8_batch_size_larger_than_its_range_of_samples_does_not_wrap():
    network = Network([layers.Dense(2)]).use("mse")
    x = np.zeros((300, 2))
    history = network.fit(x, np.zeros((300, 2)), 1, 0.1, batch_size=np.uint8(255), verbose=0)
    assert history.steps == 2  # 255 + 45, computed in Python ints


# --------------------------------------------------------------------------- metrics


def test_regression_targets_get_no_accuracy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 3))
    network = Network([layers.Dense(1)]).use("mse")
    history = network.fit(x, rng.standard_normal((30, 1)), 2, 0.01, verbose=0,
                          validation_data=(x, rng.standard_normal((30, 1))))
    assert set(history) == {"loss", "val_loss"}
    scores = network.evaluate(x, rng.integers(0, 50, (30, 1)))
    assert scores["accuracy"] is None and scores["macro_f1"] is None
    rows = rng.standard_normal((30, 3))
    assert metrics.labels_from_targets(rows) is None


def test_class_targets_still_get_accuracy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 3))
    network = Network([layers.Dense(3)]).use("softmax_cross_entropy")
    history = network.fit(x, rng.integers(0, 3, 30), 1, 0.01, verbose=0)
    assert "accuracy" in history
    one_hot = np.eye(3)[rng.integers(0, 3, 30)]
    assert network.evaluate(x, one_hot)["accuracy"] is not None


# --------------------------------------------------------------------------- signatures


@pytest.mark.parametrize("make, hint", [
    (lambda: layers.Dense(4056, 100), r"Dense\(units\).*compat"),
    (lambda: layers.Convolutional((1, 28, 28), 3, 5), r"Convolutional\(input_shape.*compat"),
])
def test_a_write_up_signature_on_a_fastcnn_layer_says_where_it_belongs(make, hint):
    with pytest.raises(TypeError, match=hint):
        make()
