"""The model file behind ``Network.save`` and ``Network.load``: one .npz archive.

The archive holds ``network.json``, a 0-d string array with the description of the
network (format version, dtype, input shape, loss, optimizers, and each layer's class
name and ``config()``), and one array per parameter and per optimizer buffer::

    layers.{i}.{parameter}              e.g. layers.0.kernels
    layers.{i}.state.{parameter}.{key}  e.g. layers.0.state.kernels.mean (Adam)

Loading reads the archive with ``allow_pickle=False`` and builds layers only from
fastcnn's own classes, looked up by name, so nothing in the file is ever run. Every
array must be exactly where the description says, with the shape and dtype the
rebuilt layer expects; anything else is a ValueError that names the file.
"""

import json
import math
import os
import secrets
import zipfile
import zlib
from pathlib import Path

import numpy as np

from . import activations, layers, losses, optimizers

FORMAT = "fastcnn.Network"
FORMAT_VERSION = 1
DESCRIPTION_KEY = "network.json"

_LAYER_CLASSES = {
    cls.__name__: cls
    for cls in (
        layers.Dense,
        layers.Convolutional,
        layers.MaxPool2D,
        layers.AvgPool2D,
        layers.Flatten,
        layers.Reshape,
        layers.Activation,
        layers.ReLU,
        layers.Tanh,
        layers.Sigmoid,
        layers.Softmax,
        layers.Dropout,
        layers.BatchNorm1D,
        layers.BatchNorm2D,
        layers.GlobalAvgPool2D,
    )
}
_OPTIMIZER_CLASSES = {
    cls.__name__: cls for cls in (optimizers.GradientDescent, optimizers.SGD, optimizers.Adam)
}
# The state each optimizer keeps per parameter once it has taken a step: "array" is a
# buffer shaped like the parameter, "count" a positive int.
_OPTIMIZER_STATE = {
    "GradientDescent": {},
    "SGD": {"velocity": "array"},
    "Adam": {"step": "count", "mean": "array", "square_mean": "array"},
}
_ZIP_MAGIC = b"PK\x03\x04"


class _BadFile(Exception):
    """What is wrong with a model file; ``load`` turns it into a ValueError naming the file."""


# --------------------------------------------------------------------------- save


def save(network, path):
    """Write ``network`` to ``path`` (exactly that name), replacing it atomically."""
    description, arrays = _describe(network)
    try:
        text = json.dumps(description, allow_nan=False, default=_json_number)
    except (TypeError, ValueError) as error:
        raise TypeError(f"network.metadata cannot be saved as JSON ({error})") from None
    arrays[DESCRIPTION_KEY] = np.array(text)
    _write_atomically(Path(path), arrays)


def _json_number(value):
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    raise TypeError(f"{value!r} is not JSON-able")


def _describe(network):
    """(the JSON-able description, name -> array) of a network."""
    optimizer_objects = []  # each distinct optimizer once, so sharing survives the round trip

    def optimizer_index(optimizer):
        for index, known in enumerate(optimizer_objects):
            if known is optimizer:
                return index
        if _OPTIMIZER_CLASSES.get(type(optimizer).__name__) is not type(optimizer):
            raise TypeError(
                f"the optimizer {optimizer!r} is not one of fastcnn's "
                f"({', '.join(_OPTIMIZER_CLASSES)}), so it cannot be saved"
            )
        optimizer_objects.append(optimizer)
        return len(optimizer_objects) - 1

    arrays = {}
    layer_descriptions = []
    for index, layer in enumerate(network.layers):
        config = _saveable_config(index, layer)
        description = {"class": type(layer).__name__, "config": config}
        for name, parameter in layer.parameters.items():
            arrays[f"layers.{index}.{name}"] = parameter
        # Buffers (BatchNorm's running statistics) are stored beside the parameters.
        for name, buffer in getattr(layer, "buffers", {}).items():
            arrays[f"layers.{index}.{name}"] = buffer
        description["optimizer"] = optimizer_index(layer.optimizer)
        # The layer keeps its optimizer's per-parameter state here (layers.Layer).
        saved_states = {}
        for name, state in layer.__dict__.get("_optimizer_state", {}).items():
            scalars = {}
            for key, value in state.items():
                if isinstance(value, np.ndarray):
                    arrays[f"layers.{index}.state.{name}.{key}"] = value
                else:
                    scalars[key] = value
            saved_states[name] = scalars
        description["optimizer_state"] = saved_states
        layer_descriptions.append(description)

    network_optimizer = None
    if network.optimizer is not None:
        network_optimizer = optimizer_index(network.optimizer)
    description = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dtype": network.dtype.name,
        "input_shape": None if network.input_shape is None else list(network.input_shape),
        "loss": _loss_name(network.loss, network.loss_prime),
        "optimizers": [
            {"class": type(optimizer).__name__, "config": optimizer.config()}
            for optimizer in optimizer_objects
        ],
        "optimizer": network_optimizer,
        "layers": layer_descriptions,
        "metadata": network.metadata,
    }
    return description, arrays


def _saveable_config(index, layer):
    layer_class = type(layer)
    if _LAYER_CLASSES.get(layer_class.__name__) is not layer_class:
        raise TypeError(
            f"layer {index}, {layer!r}, is a {layer_class.__module__}."
            f"{layer_class.__qualname__}: only fastcnn's built-in layers "
            f"({', '.join(_LAYER_CLASSES)}) can be saved, because loading a model never "
            "runs code from the file. Save its parameters yourself, or rebuild the "
            "network from built-in layers."
        )
    config = layer.config()
    if layer_class is layers.Activation:
        for key in ("f", "f_prime"):
            function = getattr(layer, key)
            if getattr(activations, config[key], None) is not function:
                raise TypeError(
                    f"layer {index}, {layer!r}: only the functions of fastcnn.activations "
                    f"can be saved in an Activation layer, got {function!r}"
                )
    try:
        json.dumps(config, allow_nan=False, default=_json_number)
    except (TypeError, ValueError) as error:
        message = f"layer {index}, {layer!r}: its config cannot be saved ({error})"
        raise TypeError(message) from None
    return config


def _loss_name(loss, loss_prime):
    """The name of one of fastcnn.losses' (loss, loss_prime) pairs, else None (a loss of
    one's own is not saved: give it again with ``use`` after loading)."""
    try:
        pair = losses.get(loss)
    except ValueError:
        return None
    return pair[0].__name__ if pair[1] is loss_prime else None


def _write_atomically(path, arrays):
    """Write the archive to a new file beside ``path``, flush it to disk, then rename it
    over ``path``: a save that fails or is interrupted leaves the old file as it was."""
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot save to {path}: the folder {folder} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"cannot save to {path}: it is a folder")
    temporary = folder / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # O_EXCL: never write into someone else's file; mode 0o666 lets the umask decide.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _sync_folder(folder)


def _sync_folder(folder):
    """Make the rename itself durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


# --------------------------------------------------------------------------- load


def load(path, network_class):
    """Rebuild the network saved at ``path`` as a ``network_class``."""
    path = Path(path)
    try:
        arrays = _read_archive(path)
        description = _read_description(arrays.pop(DESCRIPTION_KEY, None))
        network = _build(description, arrays, network_class)
    except _BadFile as problem:
        raise ValueError(f"cannot load the model {path}: {problem}") from None
    return network


def _read_archive(path):
    """name -> array for every array in the archive, read without pickle.

    Each member is checked before its data is read: a .npy array of a plain dtype,
    stored uncompressed (as ``save`` writes it), whose header announces exactly as many
    bytes as the member holds. So a hostile file can make ``load`` allocate no more
    than its own size.
    """
    with open(path, "rb") as file:
        if file.read(len(_ZIP_MAGIC)) != _ZIP_MAGIC:
            raise _BadFile("it is not a fastcnn model file (not an .npz archive)")
        file.seek(0)
        try:
            with zipfile.ZipFile(file) as archive:
                return dict(_read_member(archive, info) for info in archive.infolist())
        except _BadFile:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError,
                NotImplementedError) as error:
            raise _BadFile(f"the archive is damaged or truncated ({error})") from None


def _read_member(archive, info):
    """(name, array) of one archive member."""
    if not info.filename.endswith(".npy"):
        raise _BadFile(f"the archive member {info.filename!r} is not a NumPy array (.npy)")
    name = info.filename[: -len(".npy")]
    if info.compress_type != zipfile.ZIP_STORED:
        raise _BadFile(f"the array {name!r} is compressed; fastcnn stores arrays uncompressed")
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise _BadFile(f"the array {name!r} has the unknown .npy version {version}")
        if dtype.hasobject:
            raise _BadFile(f"{name!r} holds Python objects (pickle), which fastcnn never loads")
        size = math.prod(shape) * dtype.itemsize
        remaining = info.file_size - member.tell()
        if size != remaining:
            raise _BadFile(
                f"the array {name!r} announces {size:,} bytes of data but holds {remaining:,}"
            )
        data = member.read(size)
        if len(data) != size or member.read(1):
            raise _BadFile(f"the array {name!r} is truncated")
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")
    return name, np.array(array, order="C")


def _read_description(array):
    if array is None:
        raise _BadFile(
            f"it is an .npz archive but not a fastcnn model ({DESCRIPTION_KEY} is missing)"
        )
    if array.dtype.kind != "U" or array.ndim != 0:
        raise _BadFile(f"{DESCRIPTION_KEY} is not a string")
    try:
        description = json.loads(str(array))
    except (ValueError, RecursionError) as error:
        raise _BadFile(f"{DESCRIPTION_KEY} is not valid JSON ({error})") from None
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise _BadFile("it is not a fastcnn model file (its description has another format)")
    version = description.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _BadFile(f"its format version {version!r} is not a positive integer")
    if version > FORMAT_VERSION:
        raise _BadFile(
            f"it was written in format version {version} by a newer fastcnn; this fastcnn "
            f"reads version {FORMAT_VERSION} and older: upgrade fastcnn to load it"
        )
    return description


def _field(mapping, key, kinds, where):
    """mapping[key], checked to be one of the JSON types ``kinds`` (never a bool)."""
    if not isinstance(mapping, dict):
        raise _BadFile(f"{where} is not a JSON object")
    if key not in mapping:
        raise _BadFile(f"{where} lacks {key!r}")
    value = mapping[key]
    if isinstance(value, bool) or not isinstance(value, kinds):
        names = " or ".join("null" if kind is type(None) else kind.__name__ for kind in kinds)
        raise _BadFile(f"{where}: {key!r} should be {names}, got {value!r}")
    return value


def _build(description, arrays, network_class):
    dtype_name = _field(description, "dtype", (str,), "the description")
    if dtype_name not in ("float32", "float64"):
        raise _BadFile(f"its dtype {dtype_name!r} is neither float32 nor float64")
    network = network_class(dtype=np.dtype(dtype_name))

    optimizer_entries = _field(description, "optimizers", (list,), "the description")
    optimizer_objects = [
        _build_optimizer(index, entry) for index, entry in enumerate(optimizer_entries)
    ]

    def optimizer_at(index, where):
        if isinstance(index, bool) or not isinstance(index, int):
            raise _BadFile(f"{where}: the optimizer index {index!r} is not an int")
        if not 0 <= index < len(optimizer_objects):
            raise _BadFile(f"{where}: there is no optimizer {index}")
        return optimizer_objects[index]

    layer_entries = _field(description, "layers", (list,), "the description")
    for index, entry in enumerate(layer_entries):
        where = f"layer {index}"
        layer = _build_layer(where, entry, network.dtype, arrays, f"layers.{index}")
        network.add(layer)
        layer.optimizer = optimizer_at(_field(entry, "optimizer", (int,), where), where)
        state = _field(entry, "optimizer_state", (dict,), where)
        layer.__dict__["_optimizer_state"] = _build_state(
            where, layer, state, arrays, f"layers.{index}.state"
        )

    network_optimizer = _field(description, "optimizer", (int, type(None)), "the description")
    if network_optimizer is not None:
        network.optimizer = optimizer_at(network_optimizer, "the network")

    input_shape = _field(description, "input_shape", (list, type(None)), "the description")
    if input_shape is not None:
        if not input_shape or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in input_shape
        ):
            raise _BadFile(f"the input shape {input_shape!r} is not a list of positive ints")
        network.input_shape = tuple(input_shape)

    loss = _field(description, "loss", (str, type(None)), "the description")
    if loss is not None:
        try:
            network.use(loss)
        except ValueError as error:
            raise _BadFile(str(error)) from None

    network.metadata = _field(description, "metadata", (dict,), "the description")
    if arrays:
        raise _BadFile(
            f"it holds arrays its description does not mention: {', '.join(sorted(arrays))}"
        )
    return network


def _build_optimizer(index, entry):
    where = f"optimizer {index}"
    name = _field(entry, "class", (str,), where)
    if name not in _OPTIMIZER_CLASSES:
        raise _BadFile(f"{where} is a {name!r}, not one of {', '.join(_OPTIMIZER_CLASSES)}")
    config = _field(entry, "config", (dict,), where)
    try:
        return _OPTIMIZER_CLASSES[name](**config)
    except (TypeError, ValueError) as error:
        raise _BadFile(f"{where} ({name}) has a bad config {config!r}: {error}") from None


def _build_layer(where, entry, dtype, arrays, prefix):
    """The layer described by ``entry``, with its parameters taken out of ``arrays``."""
    name = _field(entry, "class", (str,), where)
    if name not in _LAYER_CLASSES:
        raise _BadFile(
            f"{where} is a {name!r}, which is not one of fastcnn's built-in layers "
            f"({', '.join(_LAYER_CLASSES)})"
        )
    layer_class = _LAYER_CLASSES[name]
    config = dict(_field(entry, "config", (dict,), where))
    where = f"{where} ({name})"
    if layer_class is layers.Activation:
        for key in ("f", "f_prime"):
            function_name = config.get(key)
            function = None
            if isinstance(function_name, str) and not function_name.startswith("_"):
                function = getattr(activations, function_name, None)
            if getattr(function, "__module__", None) != activations.__name__:
                raise _BadFile(f"{where}: {function_name!r} is not a fastcnn.activations function")
            config[key] = function
    # Built after the parameters are checked, so a damaged shape cannot make it
    # allocate more than the file itself holds.
    input_shape = config.pop("input_shape", None)
    try:
        layer = layer_class(**config, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise _BadFile(f"{where} has a bad config {entry['config']!r}: {error}") from None

    expected = _parameter_shapes(where, layer, input_shape)
    found = {key[len(prefix) + 1 :] for key in arrays if _is_parameter_key(key, prefix)}
    if set(expected) != found:
        raise _BadFile(
            f"{where} should have the parameter arrays {sorted(expected) or 'none'}, "
            f"the file holds {sorted(found) or 'none'}"
        )
    for parameter, shape in expected.items():
        _check_array(where, f"{prefix}.{parameter}", arrays[f"{prefix}.{parameter}"], shape, dtype)
    if input_shape is not None:
        try:
            layer.build(input_shape)
        except (TypeError, ValueError) as error:
            problem = f"{where} cannot take its input shape {input_shape!r}: {error}"
            raise _BadFile(problem) from None
    for parameter in expected:
        array = arrays.pop(f"{prefix}.{parameter}")
        setattr(layer, parameter, np.array(array, dtype=dtype, order="C"))
    return layer


def _is_parameter_key(key, prefix):
    rest = key[len(prefix) + 1 :] if key.startswith(prefix + ".") else None
    return rest is not None and "." not in rest


def _parameter_shapes(where, layer, input_shape):
    """parameter name -> the shape it must have, for the layer built on ``input_shape``."""
    if input_shape is not None and (
        not isinstance(input_shape, list)
        or not input_shape
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in input_shape)
    ):
        raise _BadFile(f"{where}: its input shape {input_shape!r} is not a list of positive ints")
    if input_shape is None or not isinstance(
        layer, (layers.Dense, layers.Convolutional, layers.BatchNorm1D, layers.BatchNorm2D)
    ):
        return {}
    if isinstance(layer, (layers.BatchNorm1D, layers.BatchNorm2D)):
        # Parameters and buffers alike: one value per channel, the first axis of a sample.
        names = ("gamma", "beta", "running_mean", "running_var")
        return {name: (input_shape[0],) for name in names}
    if isinstance(layer, layers.Dense):
        if len(input_shape) != 1:
            raise _BadFile(f"{where}: its input shape {input_shape!r} is not (features,)")
        return {"weights": (input_shape[0], layer.units), "bias": (layer.units,)}
    if len(input_shape) != 3:
        raise _BadFile(f"{where}: its input shape {input_shape!r} is not (C, H, W)")
    return {
        "kernels": (layer.depth, input_shape[0], *layer.kernel_size),
        "biases": (layer.depth,),
    }


def _check_array(where, key, array, shape, dtype):
    if array.dtype != dtype or array.shape != tuple(shape):
        raise _BadFile(
            f"{where}: the array {key!r} should be {dtype.name} of shape {tuple(shape)}, "
            f"got {array.dtype} of shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise _BadFile(f"{where}: the array {key!r} contains NaN or infinite values")


def _build_state(where, layer, saved, arrays, prefix):
    """The layer's optimizer state (parameter -> key -> value), checked against what
    its optimizer keeps."""
    optimizer_name = type(layer.optimizer).__name__
    kinds = _OPTIMIZER_STATE[optimizer_name]
    parameters = layer.parameters
    found_arrays = {key for key in arrays if key.startswith(prefix + ".")}
    unknown = [name for name in saved if name not in parameters]
    unknown += [
        key for key in found_arrays if key[len(prefix) + 1 :].split(".")[0] not in parameters
    ]
    if unknown:
        raise _BadFile(
            f"{where} has optimizer state for unknown parameters: {sorted(set(unknown))}"
        )

    states = {}
    for name, parameter in parameters.items():
        scalars = saved.get(name, {})
        if not isinstance(scalars, dict):
            raise _BadFile(f"{where}: the optimizer state of {name!r} is not an object")
        keys = set(scalars) | {
            key[len(f"{prefix}.{name}.") :]
            for key in found_arrays
            if key.startswith(f"{prefix}.{name}.")
        }
        if keys and keys != set(kinds):
            raise _BadFile(
                f"{where}: the {optimizer_name} optimizer keeps {sorted(kinds) or 'no state'} for "
                f"{name!r}, the file holds {sorted(keys)}"
            )
        state = {}
        for key in sorted(keys):
            array_key = f"{prefix}.{name}.{key}"
            if kinds[key] == "array":
                if array_key not in arrays:
                    raise _BadFile(f"{where}: the optimizer buffer {array_key!r} is missing")
                _check_array(where, array_key, arrays[array_key], parameter.shape, parameter.dtype)
                state[key] = np.array(arrays.pop(array_key), order="C")
            else:
                value = scalars.get(key)
                if array_key in arrays or isinstance(value, bool) or not isinstance(value, int):
                    raise _BadFile(f"{where}: the optimizer's {key!r} for {name!r} is not an int")
                if value < 1:
                    raise _BadFile(f"{where}: the optimizer's {key!r} for {name!r} is {value}")
                state[key] = value
        if state:
            states[name] = state
    return states
