"""Network.save / Network.load: every built-in layer and optimizer survives the round
trip bit for bit, saving is atomic, and a damaged or hostile file is refused with a
ValueError that names it, without running anything from it."""

import json
import os
import pickle
import stat
import zipfile

import numpy as np
import pytest

from fastcnn import Network, activations, compat, layers, losses, saving
from fastcnn.optimizers import SGD, Adam, GradientDescent, Optimizer

INPUT_SHAPE = (1, 12, 12)


@pytest.fixture
def data(rng):
    x = rng.standard_normal((24, *INPUT_SHAPE)).astype(np.float32)
    return x, np.arange(24) % 3


def head(*middle):
    """A network: the given layers, then Flatten and Dense(3)."""
    return [*middle, layers.Flatten(), layers.Dense(3)]


NETWORKS = {
    "Dense": lambda: [layers.Flatten(), layers.Dense(8, init="glorot", seed=3), layers.Dense(3)],
    "Convolutional": lambda: head(layers.Convolutional(3, (3, 2), stride=(2, 1), padding=1)),
    "MaxPool2D": lambda: head(layers.Convolutional(2, 3), layers.MaxPool2D(3, stride=2)),
    "AvgPool2D": lambda: head(layers.Convolutional(2, 3), layers.AvgPool2D((2, 3))),
    "Flatten": lambda: head(),
    "Reshape": lambda: [layers.Reshape((144,)), layers.Dense(3)],
    "ReLU": lambda: head(layers.Convolutional(2, 3), layers.ReLU()),
    "Tanh": lambda: head(layers.Tanh()),
    "Sigmoid": lambda: head(layers.Sigmoid()),
    "Activation": lambda: head(layers.Activation(activations.tanh, activations.tanh_prime)),
    "Dropout": lambda: head(layers.Dropout(0.25, seed=1)),
    "Softmax": lambda: [*head(), layers.Softmax()],
}


def trained(layer_list, data, loss="softmax_cross_entropy", optimizer="adam", dtype=np.float32):
    x, y = data
    network = Network(layer_list, dtype=dtype).use(loss)
    network.fit(x, y, epochs=2, learning_rate=0.01, batch_size=8, optimizer=optimizer,
                verbose=0, seed=0)
    return network


def assert_same_network(loaded, network):
    assert type(loaded) is Network
    assert repr(loaded) == repr(network)
    assert loaded.dtype == network.dtype
    assert loaded.input_shape == network.input_shape
    assert loaded.metadata == network.metadata
    for new, old in zip(loaded.layers, network.layers):
        assert type(new) is type(old)
        assert new.config() == old.config()
        assert new.parameters.keys() == old.parameters.keys()
        for name, parameter in old.parameters.items():
            assert new.parameters[name].dtype == parameter.dtype
            np.testing.assert_array_equal(new.parameters[name], parameter, strict=True)


@pytest.mark.parametrize("kind", NETWORKS)
def test_every_built_in_layer_round_trips_and_predicts_bit_for_bit(tmp_path, data, kind):
    loss = "cross_entropy" if kind == "Softmax" else "softmax_cross_entropy"
    network = trained(NETWORKS[kind](), data, loss=loss)
    path = tmp_path / "model.npz"
    network.save(path)
    loaded = Network.load(path)

    assert_same_network(loaded, network)
    assert loaded.loss is network.loss and loaded.loss_prime is network.loss_prime
    x = data[0]
    assert np.array_equal(loaded.predict(x), network.predict(x))
    assert loaded.predict(x).tobytes() == network.predict(x).tobytes()


def test_float64_networks_and_paths_as_strings_round_trip(tmp_path, data):
    network = trained(NETWORKS["Convolutional"](), data, dtype=np.float64)
    network.save(str(tmp_path / "model.npz"))
    loaded = Network.load(str(tmp_path / "model.npz"))
    assert loaded.dtype == np.float64
    assert_same_network(loaded, network)
    assert loaded.predict(data[0]).tobytes() == network.predict(data[0]).tobytes()


OPTIMIZERS = {
    "default": None,
    "GradientDescent": GradientDescent(),
    "SGD": SGD(),
    "SGD momentum": SGD(momentum=0.9),
    "SGD nesterov weight_decay": SGD(momentum=0.8, nesterov=True, weight_decay=1e-3),
    "Adam": Adam(),
    "Adam settings": Adam(beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=1e-4),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_state_round_trips_so_training_continues_identically(tmp_path, data, name):
    layer_list = [layers.Convolutional(2, 3), layers.ReLU(), layers.Flatten(), layers.Dense(3)]
    network = trained(layer_list, data, optimizer=OPTIMIZERS[name])
    network.save(tmp_path / "model.npz")
    loaded = Network.load(tmp_path / "model.npz")

    for new, old in zip(loaded.layers, network.layers):
        assert repr(new.optimizer) == repr(old.optimizer)
    if network.optimizer is not None:
        assert all(layer.optimizer is loaded.optimizer for layer in loaded.layers)
    x, y = data
    for each in (network, loaded):
        each.fit(x, y, epochs=2, learning_rate=0.01, batch_size=8, optimizer=each.optimizer,
                 shuffle=False, verbose=0)
    assert_same_network(loaded, network)


def test_layers_with_their_own_optimizers_keep_them(tmp_path, data):
    dense = layers.Dense(3)
    network = Network([layers.Flatten(), layers.Dense(5), layers.Tanh(), dense]).use(
        "softmax_cross_entropy"
    )
    network.layers[1].optimizer = Adam(beta1=0.5)
    dense.optimizer = SGD(momentum=0.5)
    network.fit(*data, epochs=1, learning_rate=0.01, verbose=0, seed=0)
    network.save(tmp_path / "model.npz")
    loaded = Network.load(tmp_path / "model.npz")
    assert repr(loaded.layers[1].optimizer) == repr(network.layers[1].optimizer)
    assert repr(loaded.layers[3].optimizer) == repr(dense.optimizer)
    assert loaded.optimizer is None


def test_an_untrained_network_round_trips_and_then_trains(tmp_path, data):
    network = Network(NETWORKS["Convolutional"]()).use("softmax_cross_entropy")
    network.save(tmp_path / "model.npz")
    loaded = Network.load(tmp_path / "model.npz")
    assert loaded.input_shape is None
    assert all(layer.parameters == {} for layer in loaded.layers)
    history = loaded.fit(*data, epochs=1, learning_rate=0.01, verbose=0, seed=0)
    assert history.epochs == 1


def test_metadata_is_kept_and_the_description_is_readable_json(tmp_path, data):
    network = trained(NETWORKS["Dense"](), data)
    network.metadata = {"classes": ["a", "b", "c"], "note": "é", "epochs": 2}
    network.save(tmp_path / "model.npz")
    assert Network.load(tmp_path / "model.npz").metadata == network.metadata

    with np.load(tmp_path / "model.npz", allow_pickle=False) as archive:
        description = json.loads(str(archive["network.json"]))
        assert archive["layers.1.weights"].shape == (144, 8)
    assert description["format_version"] == saving.FORMAT_VERSION
    assert [entry["class"] for entry in description["layers"]] == ["Flatten", "Dense", "Dense"]


def test_a_loss_of_ones_own_is_not_saved(tmp_path, data):
    network = Network(NETWORKS["Dense"]()).use(losses.mse, lambda y, p: p - y)
    network.save(tmp_path / "model.npz")
    assert Network.load(tmp_path / "model.npz").loss is None


# --------------------------------------------------------------------------- what cannot be saved


class Scale(layers.Layer):
    def forward(self, input):
        return input * 2

    def backward(self, output_gradient, learning_rate):
        return output_gradient * 2


class MyOptimizer(Optimizer):
    def update(self, parameter, gradient, learning_rate, state):
        parameter -= learning_rate * gradient


UNSAVEABLE = {
    "own Layer subclass": (lambda: Network([Scale(), layers.Dense(3)]), "Scale.*built-in layers"),
    "subclass of a built-in layer": (
        lambda: Network([compat.FCLayer(3)]),
        "FCLayer.*only fastcnn's built-in layers",
    ),
    "Activation of one's own": (
        lambda: Network([layers.Activation(np.sin, np.cos)]),
        "only the functions of fastcnn.activations",
    ),
    "own optimizer": (
        lambda: Network([layers.Dense(3, input_shape=4)]).use("mse"),
        "MyOptimizer.*not one of fastcnn's",
    ),
    "metadata that is not JSON": (
        lambda: Network([layers.Dense(3)]),
        "metadata cannot be saved",
    ),
}


@pytest.mark.parametrize("case", UNSAVEABLE)
def test_what_cannot_be_saved_says_so_and_leaves_the_old_file(tmp_path, case):
    make, match = UNSAVEABLE[case]
    network = make()
    if case == "own optimizer":
        network.layers[0].optimizer = MyOptimizer()
    if case == "metadata that is not JSON":
        network.metadata = {"when": object()}
    path = tmp_path / "model.npz"
    path.write_bytes(b"previous")
    with pytest.raises(TypeError, match=match):
        network.save(path)
    assert path.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["model.npz"]


# --------------------------------------------------------------------------- atomic save


def test_a_failure_while_writing_leaves_the_old_file_and_no_temporary(tmp_path, data, monkeypatch):
    path = tmp_path / "model.npz"
    old = trained(NETWORKS["Dense"](), data)
    old.save(path)
    before = path.read_bytes()

    def failing_fsync(descriptor):
        raise OSError("disk full")

    monkeypatch.setattr(saving.os, "fsync", failing_fsync)
    network = trained(NETWORKS["Convolutional"](), data)
    with pytest.raises(OSError, match="disk full"):
        network.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]


def test_an_interrupt_while_writing_leaves_the_old_file(tmp_path, data, monkeypatch):
    path = tmp_path / "model.npz"
    trained(NETWORKS["Dense"](), data).save(path)
    before = path.read_bytes()
    real_savez = np.savez

    def interrupted_savez(file, **arrays):
        real_savez(file, **arrays)
        file.truncate(100)
        raise KeyboardInterrupt

    monkeypatch.setattr(saving.np, "savez", interrupted_savez)
    with pytest.raises(KeyboardInterrupt):
        trained(NETWORKS["Tanh"](), data).save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]
    Network.load(path)


def test_save_replaces_the_file_with_ordinary_permissions(tmp_path, data):
    path = tmp_path / "model.npz"
    path.write_bytes(b"old")
    trained(NETWORKS["Dense"](), data).save(path)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert Network.load(path).input_shape == INPUT_SHAPE


def test_save_to_a_missing_folder_or_a_folder_says_so(tmp_path, data):
    network = trained(NETWORKS["Dense"](), data)
    with pytest.raises(FileNotFoundError, match="folder .*missing.* does not exist"):
        network.save(tmp_path / "missing" / "model.npz")
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        network.save(tmp_path)


# --------------------------------------------------------------------------- bad files


@pytest.fixture
def saved(tmp_path, data):
    """A saved CNN with Adam state: its path."""
    layer_list = [layers.Convolutional(4, 3), layers.ReLU(), layers.Flatten(), layers.Dense(3)]
    path = tmp_path / "model.npz"
    trained(layer_list, data).save(path)
    return path


def rewrite(path, change):
    """Apply change(description, arrays) to a saved model, writing it back in place."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    description = json.loads(str(arrays.pop("network.json")))
    change(description, arrays)
    arrays["network.json"] = np.array(json.dumps(description))
    with open(path, "wb") as file:
        np.savez(file, **arrays)


def refused(path, match):
    with pytest.raises(ValueError, match=match) as error:
        Network.load(path)
    assert str(path) in str(error.value)


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        Network.load(tmp_path / "missing.npz")


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "not an .npz archive"),
        (b"hello, this is text", "not an .npz archive"),
        (pickle.dumps({"a": 1}), "not an .npz archive"),
        (b"PK\x03\x04" + bytes(100), "damaged or truncated"),
    ],
    ids=["empty", "text", "pickle", "zip header only"],
)
def test_files_that_are_not_models_are_refused(tmp_path, content, match):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    refused(path, match)


def test_a_npy_or_a_plain_npz_is_not_a_model(tmp_path):
    np.save(tmp_path / "array.npy", np.zeros(3))
    refused(tmp_path / "array.npy", "not an .npz archive")
    np.savez(tmp_path / "arrays.npz", weights=np.zeros(3))
    refused(tmp_path / "arrays.npz", "not a fastcnn model .network.json is missing")


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.99], ids=lambda k: f"{k:.0%}")
def test_truncated_files_are_refused(saved, keep):
    content = saved.read_bytes()
    saved.write_bytes(content[: int(len(content) * keep)])
    refused(saved, "damaged or truncated")


def test_a_flipped_byte_in_an_array_is_caught(saved):
    content = bytearray(saved.read_bytes())
    with np.load(saved) as archive:
        assert archive.files
    position = content.index(b"layers.0.kernels.npy") + 200
    content[position] ^= 0xFF
    saved.write_bytes(bytes(content))
    refused(saved, "damaged or truncated")


def test_object_arrays_are_never_unpickled(saved, tmp_path):
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (marker.write_text, ("code from the file ran",))

    with np.load(saved, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["layers.0.kernels"] = np.array([Exploit()], dtype=object)
    with open(saved, "wb") as file:
        np.savez(file, **arrays)
    refused(saved, "'layers.0.kernels' holds Python objects .pickle.")
    assert not marker.exists()


def test_an_object_description_is_refused(saved):
    with np.load(saved, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["network.json"] = np.array({"format": "fastcnn.Network"}, dtype=object)
    with open(saved, "wb") as file:
        np.savez(file, **arrays)
    refused(saved, "holds Python objects")


def set_key(key, value):
    def change(description, arrays):
        description[key] = value

    return change


def set_layer(index, key, value):
    def change(description, arrays):
        description["layers"][index][key] = value

    return change


def set_config(index, key, value):
    def change(description, arrays):
        description["layers"][index]["config"][key] = value

    return change


def set_array(name, value):
    def change(description, arrays):
        arrays[name] = value

    return change


def drop_array(name):
    def change(description, arrays):
        del arrays[name]

    return change


BAD_DESCRIPTIONS = {
    "newer version": (set_key("format_version", 2), "format version 2 by a newer fastcnn"),
    "version not a number": (set_key("format_version", "1"), "format version '1' is not"),
    "version zero": (set_key("format_version", 0), "format version 0 is not"),
    "other format": (set_key("format", "keras"), "not a fastcnn model file"),
    "bad dtype": (set_key("dtype", "int8"), "dtype 'int8' is neither"),
    "no layers": (lambda d, a: d.pop("layers"), "lacks 'layers'"),
    "layers not a list": (set_key("layers", {"0": 1}), "'layers' should be list"),
    "unknown layer class": (set_layer(0, "class", "os.system"), "'os.system', which is not one"),
    "layer not an object": (set_key("layers", [1, 2]), "layer 0 is not a JSON object"),
    "bad config value": (set_config(0, "depth", -4), "bad config.*depth must be a positive"),
    "unknown config key": (set_config(0, "evil", 1), "bad config.*evil"),
    "huge input shape": (
        set_config(3, "input_shape", [10**12]),
        r"weights.*float32 of shape \(1000000000000, 3\), got float32 of shape \(400, 3\)",
    ),
    "input shape of strings": (
        set_config(0, "input_shape", ["1", 12, 12]), "not a list of positive"
    ),
    "activation outside fastcnn": (
        lambda d, a: d["layers"].__setitem__(1, {"class": "Activation",
                                                 "config": {"f": "exec", "f_prime": "eval"}}),
        "'exec' is not a fastcnn.activations function",
    ),
    "unknown optimizer": (
        lambda d, a: d["optimizers"][0].__setitem__("class", "Evil"), "optimizer 0 is a 'Evil'"
    ),
    "bad optimizer config": (
        lambda d, a: d["optimizers"][0]["config"].__setitem__("beta1", 7), "beta1 must be in"
    ),
    "optimizer index out of range": (set_layer(0, "optimizer", 5), "there is no optimizer 5"),
    "unknown loss": (set_key("loss", "hinge"), "unknown loss 'hinge'"),
    "metadata not an object": (set_key("metadata", [1]), "'metadata' should be dict"),
    "state step not an int": (
        lambda d, a: d["layers"][0]["optimizer_state"]["kernels"].__setitem__("step", 1.5),
        "'step' for 'kernels' is not an int",
    ),
    "state for an unknown parameter": (
        set_layer(0, "optimizer_state", {"gamma": {"step": 1}}),
        "unknown parameters: \\['gamma'\\]",
    ),
}


@pytest.mark.parametrize("case", BAD_DESCRIPTIONS)
def test_bad_descriptions_are_refused(saved, case):
    change, match = BAD_DESCRIPTIONS[case]
    rewrite(saved, change)
    refused(saved, match)


BAD_ARRAYS = {
    "parameter of another shape": (
        set_array("layers.0.kernels", np.zeros((4, 1, 5, 5), np.float32)),
        r"'layers.0.kernels' should be float32 of shape \(4, 1, 3, 3\), got float32 of shape "
        r"\(4, 1, 5, 5\)",
    ),
    "parameter of another dtype": (
        set_array("layers.3.bias", np.zeros(3, np.float64)), "should be float32.*got float64"
    ),
    "parameter with NaN": (
        set_array("layers.3.bias", np.array([0, np.nan, 0], np.float32)), "NaN or infinite"
    ),
    "missing parameter": (drop_array("layers.3.bias"), r"\['bias', 'weights'\], the file holds"),
    "parameter of a layer without any": (
        set_array("layers.1.weights", np.zeros(3, np.float32)), "should have the parameter arrays"
    ),
    "array nobody mentions": (set_array("extra", np.zeros(3)), "does not mention: extra"),
    "optimizer buffer of another shape": (
        set_array("layers.3.state.bias.mean", np.zeros(4, np.float32)), "state.bias.mean"
    ),
    "missing optimizer buffer": (
        drop_array("layers.0.state.kernels.mean"),
        "the Adam optimizer keeps .*'mean'.*the file holds",
    ),
    "description not a string": (set_array("network.json", np.zeros(3)), "is not a string"),
    "description not JSON": (set_array("network.json", np.array("{nope")), "not valid JSON"),
}


@pytest.mark.parametrize("case", BAD_ARRAYS)
def test_bad_arrays_are_refused(saved, case):
    change, match = BAD_ARRAYS[case]
    with np.load(saved, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    change(None, arrays)
    with open(saved, "wb") as file:
        np.savez(file, **arrays)
    refused(saved, match)


def test_compressed_and_non_array_members_are_refused(saved, tmp_path):
    with np.load(saved, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    np.savez_compressed(tmp_path / "compressed.npz", **arrays)
    refused(tmp_path / "compressed.npz", "compressed; fastcnn stores arrays uncompressed")
    with zipfile.ZipFile(saved, "a") as archive:
        archive.writestr("notes.txt", "hello")
    refused(saved, "'notes.txt' is not a NumPy array")


def test_a_header_announcing_more_data_than_the_file_holds_is_refused(saved):
    # A hostile header could ask for terabytes: it is refused before anything is
    # allocated. The new header has the old one's length, so only the shape differs,
    # and the archive is rewritten so that its checksums are right.
    with zipfile.ZipFile(saved) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    old = b"'shape': (3,), }" + b" " * 12
    new = b"'shape': (999999999999,), } "
    assert len(new) == len(old) and old in members["layers.3.bias.npy"]
    members["layers.3.bias.npy"] = members["layers.3.bias.npy"].replace(old, new)
    with zipfile.ZipFile(saved, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    refused(saved, "'layers.3.bias' announces 3,999,999,999,996 bytes of data but holds 12")


def test_random_damage_is_refused_or_harmless(saved, data, rng):
    """Whatever bytes change, load either refuses with a ValueError or (damage outside
    the checked data, e.g. a zip timestamp) gives the same network."""
    content = saved.read_bytes()
    expected = Network.load(saved).predict(data[0])
    outcomes = {"refused": 0, "harmless": 0}
    for _ in range(300):
        damaged = bytearray(content)
        for position in rng.integers(0, len(content), rng.integers(1, 4)):
            damaged[position] = rng.integers(0, 256)
        if rng.random() < 0.2:
            damaged = damaged[: rng.integers(0, len(damaged))]
        saved.write_bytes(bytes(damaged))
        try:
            network = Network.load(saved)
        except ValueError as error:
            assert str(saved) in str(error)
            outcomes["refused"] += 1
        else:
            assert network.predict(data[0]).tobytes() == expected.tobytes()
            outcomes["harmless"] += 1
    assert outcomes["refused"] > 200


def test_the_saved_fixture_itself_loads(saved, data):
    assert Network.load(saved).predict(data[0]).shape == (24, 3)
