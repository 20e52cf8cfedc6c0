"""Hand a network over to other tools: ONNX, safetensors and PyTorch.

``export(network, path)`` writes an ONNX model (``.onnx``) or the weights under PyTorch's
names (``.safetensors``); ``to_torch(network)`` gives the equivalent
``torch.nn.Sequential`` and ``from_torch(module)`` the way back. ``to_torch_optimizer``
and ``optimizer_from_torch`` carry SGD's momentum buffers and Adam's moments across, so
training continues on the other side exactly where it stopped.

Layers and their counterparts (one row per fastcnn layer; Dropout is the identity at
inference, so the ONNX graph leaves it out)::

    fastcnn             ONNX (opset 17)                 PyTorch
    Convolutional       Conv                            Conv2d
    Dense               Gemm (B = weights, (in, units)) Linear (weight = weights.T)
    MaxPool2D           MaxPool                         MaxPool2d
    AvgPool2D           AveragePool                     AvgPool2d
    Flatten             Flatten (axis=1)                Flatten
    Reshape(shape)      Reshape to (batch, *shape)      [Flatten,] Unflatten(1, shape)
    ReLU/Tanh/Sigmoid   Relu/Tanh/Sigmoid               ReLU/Tanh/Sigmoid
    Softmax             Softmax (axis=-1)               Softmax(dim=-1)
    Dropout(rate)       -                               Dropout(rate)
    BatchNorm2D/1D      BatchNormalization              BatchNorm2d/1d
    GlobalAvgPool2D     GlobalAveragePool + Flatten     AdaptiveAvgPool2d(1) + Flatten

A generic ``Activation(f, f_prime)``, the write-ups' classes in ``fastcnn.compat`` and a
layer class of one's own have no counterpart and are refused with a ValueError that
names them. Neither writer needs anything beyond NumPy: the ONNX protobuf encoding and
the safetensors layout are written here; ``torch`` is imported only by the functions that
return or take torch objects.
"""

import copy
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import layers, saving
from .optimizers import SGD, Adam, GradientDescent

__all__ = [
    "ONNX_OPSET",
    "export",
    "onnx_bytes",
    "safetensors_bytes",
    "state_dict",
    "to_torch",
    "from_torch",
    "to_torch_optimizer",
    "optimizer_from_torch",
]

ONNX_OPSET = 17
# The IR version that came with opset 17 (ONNX 1.12); older runtimes read it too.
ONNX_IR_VERSION = 8
INPUT_NAME = "input"
OUTPUT_NAME = "output"
BATCH_DIMENSION = "batch"
SUFFIXES = (".onnx", ".safetensors")


def export(network, path):
    """Write ``network`` to ``path``, in the format its suffix names.

    ``.onnx``: an ONNX model, opset 17 (IR version 8), in the network's dtype (float32 by
    default; ONNX Runtime's CPU provider has no float64 Conv). Its input is "input",
    shaped (batch, *input_shape) with a dynamic batch dimension, its output "output",
    (batch, *output shape); the initializers are named as in ``Network.save``'s files,
    ``layers.{index}.{parameter}`` ("layers.0.kernels"); ``network.metadata`` goes
    into its metadata_props (strings; other values as JSON).

    ``.safetensors``: the parameters and buffers of ``to_torch(network)`` under their
    ``state_dict`` names ("0.weight", "0.bias", ...; Dense weights transposed to
    PyTorch's (units, in)), ready for ``load_state_dict(strict=True)``.

    The network must know its input shape (after ``fit`` or ``predict``, or with the
    first layer built with ``input_shape=``) and every layer must have its parameters.
    Raises ValueError for another suffix, an unsupported layer (named) or an unbuilt
    network; OSError when the file cannot be written. The file is replaced atomically,
    as ``Network.save`` does.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        data = onnx_bytes(network)
    elif suffix == ".safetensors":
        data = safetensors_bytes(network)
    else:
        raise ValueError(
            f"cannot tell the export format of {str(path)!r}: its name must end in "
            f"{' or '.join(SUFFIXES)}"
        )
    # Everything is encoded first, so a refused network leaves no file, and the file is
    # written beside its place and renamed over it, so a failed write leaves the old one.
    saving.write_atomically(Path(path), lambda file: file.write(data))


# --------------------------------------------------------------------------- layer plans


@dataclass
class _Node:
    """One ONNX node: the running tensor, then ``constants`` (name -> array), in."""

    op_type: str
    constants: dict = field(default_factory=dict)
    attributes: dict = field(default_factory=dict)


@dataclass
class _TorchModule:
    """One torch.nn module: its class name, constructor arguments, the fastcnn
    parameters behind its own (torch name -> (fastcnn name, transposed?)) and its buffers
    (torch name -> array)."""

    kind: str
    arguments: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    buffers: dict = field(default_factory=dict)


@dataclass
class _Plan:
    """What one fastcnn layer becomes: ONNX nodes and torch modules."""

    layer: object
    nodes: list
    modules: list


# torch module class -> (fastcnn layer class, torch parameter -> (fastcnn parameter,
# transposed?)); Linear.weight is (units, in), Dense.weights (in, units).
_TORCH_PARAMETERS = {
    "Conv2d": ("Convolutional", {"weight": ("kernels", False), "bias": ("biases", False)}),
    "Linear": ("Dense", {"weight": ("weights", True), "bias": ("bias", False)}),
    "BatchNorm2d": ("BatchNorm2D", {"weight": ("gamma", False), "bias": ("beta", False)}),
    "BatchNorm1d": ("BatchNorm1D", {"weight": ("gamma", False), "bias": ("beta", False)}),
}


_SIMPLE = {
    layers.ReLU: ("Relu", "ReLU"),
    layers.Tanh: ("Tanh", "Tanh"),
    layers.Sigmoid: ("Sigmoid", "Sigmoid"),
}
_EXPORTABLE = (
    "Convolutional", "Dense", "MaxPool2D", "AvgPool2D", "Flatten", "Reshape", "ReLU", "Tanh",
    "Sigmoid", "Softmax", "Dropout", "BatchNorm2D", "BatchNorm1D", "GlobalAvgPool2D",
)


def _is(layer, name):
    """Whether ``layer`` is exactly fastcnn.layers.<name> (a subclass may compute
    something else). Layers this version of fastcnn lacks are matched by class name."""
    known = getattr(layers, name, None)
    return type(layer) is known if known is not None else type(layer).__name__ == name


def _check_exportable(index, layer):
    if any(_is(layer, name) for name in _EXPORTABLE):
        return
    if type(layer) is layers.Activation:
        reason = (
            "an Activation of one's own functions has no ONNX or PyTorch counterpart; "
            "use ReLU(), Tanh(), Sigmoid() or Softmax()"
        )
    else:
        kind = type(layer)
        reason = (
            f"{kind.__module__}.{kind.__qualname__} is not one of the layers that can be "
            f"exported ({', '.join(_EXPORTABLE)})"
        )
    raise ValueError(f"layer {index}, {layer!r}, cannot be exported: {reason}")


def _input_shape(network):
    shape = network.input_shape
    if shape is None and network.layers:
        shape = getattr(network.layers[0], "input_shape", None)
    if shape is None:
        raise ValueError(
            "the network's input shape is not known yet: call fit or predict once, or "
            "build the first layer with input_shape=(C, H, W)"
        )
    return tuple(int(n) for n in shape)


def _sample_shapes(network):
    """The per-sample shape entering each layer, and the network's output shape, traced
    through copies of the layers (the network itself is left untouched)."""
    x = np.zeros((1, *_input_shape(network)), network.dtype)
    shapes = []
    for layer in copy.deepcopy(network.layers):
        layer.training = False
        shapes.append(x.shape[1:])
        x = np.asarray(layer.forward(x))
    return shapes, x.shape[1:]


def _parameter(index, layer, name):
    array = layer.parameters.get(name)
    if array is None:
        raise ValueError(
            f"layer {index}, {layer!r}, has no {name} yet: train the network, call "
            "predict once, or build its layers with input_shape="
        )
    return array


def _plans(network):
    """(a _Plan per layer, the network's output shape per sample)."""
    if not network.layers:
        raise ValueError("the network has no layers: add some first")
    for index, layer in enumerate(network.layers):
        _check_exportable(index, layer)
    shapes, output_shape = _sample_shapes(network)
    plans = [
        _plan(index, layer, shape)
        for index, (layer, shape) in enumerate(zip(network.layers, shapes))
    ]
    return plans, output_shape


def _plan(index, layer, input_shape):
    """The ONNX nodes and torch modules that compute what ``layer`` does."""
    kind = type(layer)
    if kind is layers.Convolutional:
        kernels = _parameter(index, layer, "kernels")
        height, width = layer.padding
        node = _Node(
            "Conv",
            {f"layers.{index}.kernels": kernels, f"layers.{index}.biases": layer.biases},
            # pads: (begin_h, begin_w, end_h, end_w)
            {"kernel_shape": list(layer.kernel_size), "strides": list(layer.stride),
             "pads": [height, width, height, width]},
        )
        module = _TorchModule(
            "Conv2d",
            {"in_channels": kernels.shape[1], "out_channels": layer.depth,
             "kernel_size": layer.kernel_size, "stride": layer.stride,
             "padding": layer.padding},
            _TORCH_PARAMETERS["Conv2d"][1],
        )
        return _Plan(layer, [node], [module])
    if kind is layers.Dense:
        weights = _parameter(index, layer, "weights")
        node = _Node(
            "Gemm", {f"layers.{index}.weights": weights, f"layers.{index}.bias": layer.bias}
        )
        module = _TorchModule(
            "Linear",
            {"in_features": weights.shape[0], "out_features": layer.units},
            _TORCH_PARAMETERS["Linear"][1],
        )
        return _Plan(layer, [node], [module])
    if kind in (layers.MaxPool2D, layers.AvgPool2D):
        maximum = kind is layers.MaxPool2D
        node = _Node(
            "MaxPool" if maximum else "AveragePool",
            attributes={"kernel_shape": list(layer.size), "strides": list(layer.stride)},
        )
        module = _TorchModule(
            "MaxPool2d" if maximum else "AvgPool2d",
            {"kernel_size": layer.size, "stride": layer.stride},
        )
        return _Plan(layer, [node], [module])
    if kind is layers.Flatten:
        return _Plan(layer, [_Node("Flatten", attributes={"axis": 1})], [_TorchModule("Flatten")])
    if kind is layers.Reshape:
        # 0 copies the batch dimension of the input (ONNX Reshape, allowzero=0)
        node = _Node("Reshape", {f"layers.{index}.shape": np.array([0, *layer.shape], np.int64)})
        # Unflatten(1, shape) takes (N, features): flatten other inputs first
        flatten = len(input_shape) != 1 or len(layer.shape) == 1
        modules = [_TorchModule("Flatten")] if flatten else []
        if len(layer.shape) != 1:
            modules.append(
                _TorchModule("Unflatten", {"dim": 1, "unflattened_size": layer.shape})
            )
        return _Plan(layer, [node], modules)
    if kind in _SIMPLE:
        onnx_name, torch_name = _SIMPLE[kind]
        return _Plan(layer, [_Node(onnx_name)], [_TorchModule(torch_name)])
    if kind is layers.Softmax:
        return _Plan(
            layer, [_Node("Softmax", attributes={"axis": -1})],
            [_TorchModule("Softmax", {"dim": -1})],
        )
    if kind is layers.Dropout:
        return _Plan(layer, [], [_TorchModule("Dropout", {"p": layer.rate})])
    if _is(layer, "GlobalAvgPool2D"):
        return _Plan(
            layer,
            [_Node("GlobalAveragePool"), _Node("Flatten", attributes={"axis": 1})],
            [_TorchModule("AdaptiveAvgPool2d", {"output_size": 1}), _TorchModule("Flatten")],
        )
    return _batch_norm_plan(index, layer)


def _batch_norm_plan(index, layer):
    """BatchNorm2D / BatchNorm1D: parameters gamma, beta; buffers running_mean,
    running_var; ``momentum`` in PyTorch's convention (running = (1 - momentum) running +
    momentum batch), which ONNX writes the other way round."""
    gamma = _parameter(index, layer, "gamma")
    beta = _parameter(index, layer, "beta")
    mean, variance = layer.running_mean, layer.running_var
    node = _Node(
        "BatchNormalization",
        {f"layers.{index}.gamma": gamma, f"layers.{index}.beta": beta,
         f"layers.{index}.running_mean": mean, f"layers.{index}.running_var": variance},
        {"epsilon": float(layer.eps), "momentum": 1 - float(layer.momentum)},
    )
    tracked = np.array(getattr(layer, "num_batches_tracked", 0), np.int64)
    kind = "BatchNorm2d" if _is(layer, "BatchNorm2D") else "BatchNorm1d"
    module = _TorchModule(
        kind,
        {"num_features": gamma.shape[0], "eps": float(layer.eps),
         "momentum": float(layer.momentum)},
        _TORCH_PARAMETERS[kind][1],
        {"running_mean": mean, "running_var": variance, "num_batches_tracked": tracked},
    )
    return _Plan(layer, [node], [module])


# --------------------------------------------------------------------------- PyTorch names


def _torch_entries(plans):
    """(torch state_dict name, layer, fastcnn name, transposed?) of every parameter, and
    (torch name, array) of every buffer, in the Sequential's order."""
    parameters, buffers = [], []
    position = 0
    for plan in plans:
        for module in plan.modules:
            for torch_name, (name, transposed) in module.parameters.items():
                parameters.append((f"{position}.{torch_name}", plan.layer, name, transposed))
            for torch_name, array in module.buffers.items():
                buffers.append((f"{position}.{torch_name}", array))
            position += 1
    return parameters, buffers


def _oriented(array, transposed):
    return np.ascontiguousarray(array.T if transposed else array)


def state_dict(network):
    """The parameters and buffers of ``to_torch(network)``: torch state_dict name
    ("0.weight", "3.running_var", ...) -> NumPy array, in the Sequential's order.

    Dense weights come transposed to PyTorch's (units, in); BatchNorm brings
    running_mean, running_var and num_batches_tracked (int64). Raises ValueError as
    ``export`` does.
    """
    return _state_dict(_plans(network)[0])


def _state_dict(plans):
    parameters, buffers = _torch_entries(plans)
    entries = {
        torch_name: _oriented(layer.parameters[name], transposed)
        for torch_name, layer, name, transposed in parameters
    }
    entries.update((torch_name, np.ascontiguousarray(array)) for torch_name, array in buffers)
    # torch lists each module's parameters, then its buffers: keep that order
    return dict(sorted(entries.items(), key=lambda item: _module_position(item[0])))


def _module_position(name):
    return int(name.split(".", 1)[0])


_SAFETENSORS_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64",
                       np.dtype(np.int64): "I64"}


def safetensors_bytes(network):
    """``state_dict(network)`` in the safetensors layout: an 8-byte little-endian header
    length, a JSON header (name -> dtype, shape, data_offsets; "__metadata__": format
    "pt" and ``network.metadata`` as strings) padded with spaces to a multiple of 8
    bytes, then the tensors' little-endian bytes, back to back
    (https://github.com/huggingface/safetensors, "Format")."""
    header = {"__metadata__": {**_metadata_strings(network), "format": "pt"}}
    chunks = []
    offset = 0
    for name, array in state_dict(network).items():
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {
            "dtype": _SAFETENSORS_DTYPES[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


# --------------------------------------------------------------------------- ONNX


def onnx_bytes(network):
    """The ONNX model that ``export(network, "x.onnx")`` writes, as bytes (see
    ``export``): a ModelProto of opset 17, IR version 8, producer "fastcnn"."""
    from . import __version__

    plans, output_shape = _plans(network)
    element_type = _ONNX_TYPES[network.dtype]
    nodes, initializers = [], []
    current = INPUT_NAME
    count = sum(len(plan.nodes) for plan in plans)
    number = 0
    for index, plan in enumerate(plans):
        for node in plan.nodes:
            number += 1
            output = OUTPUT_NAME if number == count else f"layers.{index}.{node.op_type}"
            inputs = [current]
            for name, array in node.constants.items():
                array = array if array.dtype == np.int64 else array.astype(network.dtype)
                initializers.append(_tensor(name, array))
                inputs.append(name)
            nodes.append(
                _node_proto(f"layers.{index}.{node.op_type}", node.op_type, inputs, output,
                            node.attributes)
            )
            current = output
    if not nodes:  # only Dropout layers: the model passes its input through
        nodes.append(_node_proto("identity", "Identity", [INPUT_NAME], OUTPUT_NAME, {}))
    graph = b"".join(
        [*(_message(1, node) for node in nodes), _string(2, "fastcnn"),
         *(_message(5, tensor) for tensor in initializers),
         _message(11, _value_info(INPUT_NAME, element_type, _input_shape(network))),
         _message(12, _value_info(OUTPUT_NAME, element_type, output_shape))]
    )
    opset = _string(1, "") + _int(2, ONNX_OPSET)
    # metadata_props: StringStringEntryProto, key 1, value 2
    metadata = [
        _message(14, _string(1, key) + _string(2, value))
        for key, value in _metadata_strings(network).items()
    ]
    return b"".join(
        [_int(1, ONNX_IR_VERSION), _string(2, "fastcnn"), _string(3, __version__),
         _message(7, graph), _message(8, opset), *metadata]
    )


def _metadata_strings(network):
    """``network.metadata`` as strings (others as JSON), for files whose metadata are
    string pairs: the CLI's models say there how their input pixels are scaled."""
    return {
        str(key): value if isinstance(value, str) else json.dumps(value)
        for key, value in network.metadata.items()
    }


# TensorProto.DataType
_ONNX_TYPES = {np.dtype(np.float32): 1, np.dtype(np.int64): 7, np.dtype(np.float64): 11}
# AttributeProto.AttributeType
_FLOAT, _INT, _INTS = 1, 2, 7


# Protocol buffers' wire format (https://protobuf.dev/programming-guides/encoding/):
# each field is a varint key (field number << 3 | wire type) and its value: a varint
# (type 0), 4 little-endian bytes (type 5), or a varint length and the bytes (type 2).
# Field numbers are onnx.proto's.


def _varint(value):
    value &= (1 << 64) - 1  # a negative int64 is sent as its 64-bit two's complement
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _int(number, value):
    return _varint(number << 3) + _varint(value)


def _message(number, data):
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _string(number, text):
    return _message(number, text.encode())


def _float(number, value):
    return _varint(number << 3 | 5) + struct.pack("<f", value)


def _tensor(name, array):
    """TensorProto: dims 1, data_type 2, name 8, raw_data 9 (little-endian)."""
    little_endian = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return b"".join(
        [*(_int(1, n) for n in array.shape), _int(2, _ONNX_TYPES[array.dtype]),
         _string(8, name), _message(9, little_endian.tobytes())]
    )


def _attribute(name, value):
    """AttributeProto: name 1, f 2, i 3, ints 8, type 20."""
    if isinstance(value, float):
        return _string(1, name) + _float(2, value) + _int(20, _FLOAT)
    if isinstance(value, int):
        return _string(1, name) + _int(3, value) + _int(20, _INT)
    return _string(1, name) + b"".join(_int(8, n) for n in value) + _int(20, _INTS)


def _node_proto(name, op_type, inputs, output, attributes):
    """NodeProto: input 1, output 2, name 3, op_type 4, attribute 5."""
    return b"".join(
        [*(_string(1, text) for text in inputs), _string(2, output), _string(3, name),
         _string(4, op_type),
         *(_message(5, _attribute(key, value)) for key, value in attributes.items())]
    )


def _value_info(name, element_type, sample_shape):
    """ValueInfoProto (name 1, type 2) of a tensor (batch, *sample_shape): TypeProto
    tensor_type 1 -> elem_type 1, shape 2 -> dim 1 -> dim_param 2 / dim_value 1."""
    dimensions = [_string(2, BATCH_DIMENSION)] + [_int(1, n) for n in sample_shape]
    shape = b"".join(_message(1, dimension) for dimension in dimensions)
    tensor_type = _int(1, element_type) + _message(2, shape)
    return _string(1, name) + _message(2, _message(1, tensor_type))


# --------------------------------------------------------------------------- PyTorch


def _import_torch():
    try:
        import torch
    except ImportError:
        raise ImportError(
            "this needs PyTorch, which is not installed: pip install torch "
            "(https://pytorch.org/get-started/locally/)"
        ) from None
    return torch


def to_torch(network):
    """The ``torch.nn.Sequential`` that computes what ``network`` does, with copies of its
    parameters and buffers (names as in ``state_dict``), in the network's dtype.

    The modules follow the table in this module's docstring. The Sequential is in
    training mode, as a new torch module is: call ``.eval()`` before inference so that
    Dropout and BatchNorm behave as in ``network.predict``. Raises ImportError without
    PyTorch and ValueError as ``export`` does.
    """
    torch = _import_torch()
    plans, _ = _plans(network)
    dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[
        network.dtype
    ]
    modules = []
    for plan in plans:
        for spec in plan.modules:
            module_class = getattr(torch.nn, spec.kind)
            arguments = dict(spec.arguments)
            if spec.parameters:
                arguments["dtype"] = dtype
            modules.append(module_class(**arguments))
    sequential = torch.nn.Sequential(*modules)
    weights = {name: torch.from_numpy(array.copy()) for name, array in _state_dict(plans).items()}
    sequential.load_state_dict(weights, strict=True)
    return sequential


def _torch_pairs(network, module):
    """(torch Parameter, layer, fastcnn name, transposed?) for every parameter of
    ``module``, the network's torch twin (made by ``to_torch`` or given to
    ``from_torch``): its modules with parameters and the network's layers with
    parameters correspond in order."""
    children = [(name, child) for name, child in module.named_children()
                if next(child.parameters(), None) is not None]
    trained = [layer for layer in network.layers if layer.parameters]
    kinds = [type(child).__name__ for _, child in children]
    if len(children) != len(trained) or any(
        kind not in _TORCH_PARAMETERS or not _is(layer, _TORCH_PARAMETERS[kind][0])
        for kind, layer in zip(kinds, trained)
    ):
        raise ValueError(
            f"the torch module is not the network's twin: its modules with parameters "
            f"({', '.join(kinds) or 'none'}) do not match the network's layers with "
            f"parameters ({', '.join(type(layer).__name__ for layer in trained) or 'none'})"
        )
    pairs = []
    for (child_name, child), layer in zip(children, trained):
        names = _TORCH_PARAMETERS[type(child).__name__][1]
        for torch_name, parameter in child.named_parameters(recurse=False):
            name, transposed = names[torch_name]
            expected = _oriented(layer.parameters[name], transposed).shape
            if tuple(parameter.shape) != expected:
                raise ValueError(
                    f"the torch parameter {child_name}.{torch_name} has shape "
                    f"{tuple(parameter.shape)}, but the network's {name} gives {expected}"
                )
            pairs.append((parameter, layer, name, transposed))
    return pairs


def _network_optimizer(network):
    """The optimizer rule shared by every layer that has parameters."""
    rules = {}
    for layer in network.layers:
        if layer.parameters:
            optimizer = layer.optimizer
            rules.setdefault((type(optimizer), repr(optimizer)), optimizer)
    if len(rules) > 1:
        raise ValueError(
            "the layers use different optimizers "
            f"({', '.join(repr(o) for o in rules.values())}); one torch optimizer "
            "needs one rule for all of them"
        )
    return next(iter(rules.values()), GradientDescent())


def to_torch_optimizer(network, module, learning_rate):
    """A ``torch.optim`` optimizer over ``module`` (made by ``to_torch(network)``) that
    continues the network's training: the same rule, and its state carried over.

    GradientDescent becomes ``torch.optim.SGD(lr)``; ``SGD(momentum, nesterov,
    weight_decay)`` becomes ``torch.optim.SGD`` with the same arguments, each
    parameter's ``velocity`` its ``momentum_buffer``; ``Adam(beta1, beta2, eps,
    weight_decay)`` becomes ``torch.optim.Adam(betas=(beta1, beta2), ...)``, with
    ``step``, ``mean``, ``square_mean`` as ``step``, ``exp_avg``, ``exp_avg_sq`` (both
    follow PyTorch's update rules, see fastcnn.optimizers). Dense states are
    transposed as the weights are. ``learning_rate`` is the ``lr`` (fastcnn passes it
    to ``backward`` instead). Raises ImportError without PyTorch, ValueError when the
    layers use different optimizers, another optimizer class (TypeError) or a
    ``module`` that is not the network's twin.
    """
    torch = _import_torch()
    optimizer = _network_optimizer(network)
    pairs = _torch_pairs(network, module)
    parameters = [pair[0] for pair in pairs]
    if type(optimizer) is GradientDescent:
        result = torch.optim.SGD(parameters, lr=learning_rate)
    elif type(optimizer) is SGD:
        result = torch.optim.SGD(
            parameters, lr=learning_rate, momentum=optimizer.momentum,
            nesterov=optimizer.nesterov, weight_decay=optimizer.weight_decay,
        )
    elif type(optimizer) is Adam:
        result = torch.optim.Adam(
            parameters, lr=learning_rate, betas=(optimizer.beta1, optimizer.beta2),
            eps=optimizer.eps, weight_decay=optimizer.weight_decay,
        )
    else:
        raise TypeError(
            f"the optimizer {optimizer!r} has no torch.optim counterpart: only "
            "GradientDescent, SGD and Adam do"
        )
    for parameter, layer, name, transposed in pairs:
        state = layer.optimizer_state.get(name)
        if not state:
            continue

        def tensor(key):  # a copy: the two optimizers must not share their buffers
            return torch.tensor(_oriented(state[key], transposed))

        if "velocity" in state:
            result.state[parameter] = {"momentum_buffer": tensor("velocity")}
        elif "step" in state:
            result.state[parameter] = {
                "step": torch.tensor(float(state["step"]), dtype=torch.float32),
                "exp_avg": tensor("mean"),
                "exp_avg_sq": tensor("square_mean"),
            }
    return result


def _single_group(torch_optimizer):
    """The hyperparameters of a torch optimizer whose parameter groups all share them."""
    groups = [{k: v for k, v in group.items() if k != "params"}
              for group in torch_optimizer.param_groups]
    if any(group != groups[0] for group in groups[1:]):
        raise ValueError(
            f"the {type(torch_optimizer).__name__} has parameter groups with different "
            "settings; fastcnn's optimizer has one set for all parameters"
        )
    return groups[0]


def _optimizer_rule(torch, torch_optimizer):
    """The fastcnn Optimizer with the torch optimizer's update rule."""
    kind = type(torch_optimizer)
    group = _single_group(torch_optimizer)
    if group.get("maximize"):
        raise ValueError(f"{kind.__name__} with maximize=True is not supported")
    if kind is torch.optim.SGD:
        if group.get("dampening"):
            raise ValueError(f"SGD with dampening {group['dampening']} is not supported")
        return SGD(momentum=group["momentum"], nesterov=group["nesterov"],
                   weight_decay=group["weight_decay"])
    if kind is torch.optim.Adam:
        if group.get("amsgrad"):
            raise ValueError("Adam with amsgrad=True is not supported")
        if group.get("decoupled_weight_decay"):
            raise ValueError("Adam with decoupled_weight_decay=True (AdamW) is not supported")
        beta1, beta2 = group["betas"]
        return Adam(beta1=beta1, beta2=beta2, eps=group["eps"],
                    weight_decay=group["weight_decay"])
    raise ValueError(f"{kind.__name__} is not supported: only torch.optim.SGD and Adam are")


def optimizer_from_torch(torch_optimizer, module, network):
    """Give every layer of ``network`` the fastcnn counterpart of ``torch_optimizer``
    (a ``torch.optim.SGD`` or ``Adam`` over ``module``, the network's torch twin, as
    made by ``to_torch`` or given to ``from_torch``) with its state carried over
    (``momentum_buffer`` -> ``velocity``; ``step``, ``exp_avg``, ``exp_avg_sq`` ->
    ``step``, ``mean``, ``square_mean``), so ``fit`` or ``backward`` continue its
    training. Returns that Optimizer, also set as ``network.optimizer`` (pass it to
    ``fit`` to keep the state). The learning rate stays with the caller: it is
    ``torch_optimizer.param_groups[0]["lr"]``.

    Raises ImportError without PyTorch; ValueError for another optimizer class, an
    option fastcnn does not have (dampening, amsgrad, maximize, AdamW's decoupled decay,
    groups with different settings) or a ``module`` that is not the network's twin.
    """
    torch = _import_torch()
    optimizer = _optimizer_rule(torch, torch_optimizer)
    pairs = _torch_pairs(network, module)
    network.optimizer = optimizer
    states = {id(layer): {} for layer in network.layers}
    for parameter, layer, name, transposed in pairs:
        torch_state = torch_optimizer.state.get(parameter)
        if not torch_state:
            continue

        def array(key):
            value = torch_state[key].detach().cpu().numpy().astype(layer.dtype)
            return _oriented(value, transposed)

        if torch_state.get("momentum_buffer") is not None:
            state = {"velocity": array("momentum_buffer")}
        elif "exp_avg" in torch_state:
            state = {"step": int(torch_state["step"]), "mean": array("exp_avg"),
                     "square_mean": array("exp_avg_sq")}
        else:
            continue
        states[id(layer)][name] = state
    for layer in network.layers:
        if isinstance(layer, layers.Layer):
            layer.optimizer = optimizer  # which starts it afresh: hence the states after
            layer.optimizer_state = states[id(layer)]
    return optimizer


def from_torch(module, input_shape=None):
    """A fastcnn Network computing what ``module`` does, with copies of its weights.

    ``module``: a ``torch.nn.Sequential`` of Conv2d, Linear, MaxPool2d, AvgPool2d,
    Flatten, Unflatten(1, shape), ReLU, Tanh, Sigmoid, Softmax(dim=-1 or the last
    axis), Dropout, Identity, BatchNorm2d/1d, and AdaptiveAvgPool2d(1) followed by
    Flatten (the inverse of ``to_torch``'s table; a Linear or Conv2d without bias gets
    zero biases). The network's dtype is the parameters' (float32 or float64).
    ``input_shape`` (one sample, e.g. (1, 28, 28)), when given, builds and checks the
    network on it. Refuses anything else with a ValueError naming the module and what
    is not supported ("Conv2d with dilation 2 is not supported", "LSTM is not
    supported"); TypeError when ``module`` is not a Sequential; ImportError without
    PyTorch.
    """
    torch = _import_torch()
    nn = torch.nn
    if not isinstance(module, nn.Sequential):
        raise TypeError(
            f"from_torch needs a torch.nn.Sequential, got {type(module).__name__}"
        )
    from .network import Network

    dtypes = {parameter.dtype for parameter in module.parameters()} or {torch.float32}
    if dtypes not in ({torch.float32}, {torch.float64}):
        raise ValueError(
            "the module's parameters must be all float32 or all float64, got "
            f"{', '.join(sorted(str(d) for d in dtypes))}"
        )
    dtype = np.float64 if dtypes == {torch.float64} else np.float32
    children = list(module.named_children())
    fastcnn_layers = []
    rank = None  # the rank of one sample at this point, once known
    position = 0
    while position < len(children):
        name, child = children[position]
        following = children[position + 1][1] if position + 1 < len(children) else None
        layer, rank, used = _layer_from_torch(nn, name, child, following, rank)
        position += used
        if layer is not None:
            fastcnn_layers.append(layer)
    network = Network(fastcnn_layers, dtype=dtype)
    if input_shape is not None:
        network.predict(np.zeros((1, *input_shape), dtype))
    return network


def _numpy(tensor):
    return tensor.detach().cpu().numpy().copy()


def _unsupported(name, child, what):
    return ValueError(f"{type(child).__name__} {what} is not supported (module {name})")


def _new_layer(name, child, class_name, **arguments):
    layer_class = getattr(layers, class_name, None)
    if layer_class is None:
        raise ValueError(
            f"{type(child).__name__} needs fastcnn.layers.{class_name}, which this "
            f"version of fastcnn does not have (module {name})"
        )
    return layer_class(**arguments)


def _check_all(name, child, what, value, expected):
    """Refuse a module whose ``what`` (a number or a tuple of them) is not ``expected``."""
    values = value if isinstance(value, tuple) else (value,)
    if any(v != expected for v in values):
        shown = values[0] if len(set(values)) == 1 else value  # "dilation 2" for (2, 2)
        raise _unsupported(name, child, f"with {what} {shown}")


def _layer_from_torch(nn, name, child, following, rank):
    """(the fastcnn layer or None, the sample rank after it, how many modules it took)."""
    kind = type(child)
    if kind is nn.Conv2d:
        _check_all(name, child, "dilation", child.dilation, 1)
        _check_all(name, child, "groups", child.groups, 1)
        if isinstance(child.padding, str):
            raise _unsupported(name, child, f"with padding={child.padding!r}")
        if child.padding_mode != "zeros":
            raise _unsupported(name, child, f"with padding_mode={child.padding_mode!r}")
        layer = layers.Convolutional(
            child.out_channels, child.kernel_size, child.stride, child.padding
        )
        layer.kernels = _numpy(child.weight)
        layer.biases = (_numpy(child.bias) if child.bias is not None
                        else np.zeros(child.out_channels, layer.kernels.dtype))
        return layer, 3, 1
    if kind is nn.Linear:
        layer = layers.Dense(child.out_features)
        layer.weights = np.ascontiguousarray(_numpy(child.weight).T)
        layer.bias = (_numpy(child.bias) if child.bias is not None
                      else np.zeros(child.out_features, layer.weights.dtype))
        return layer, 1, 1
    if kind in (nn.MaxPool2d, nn.AvgPool2d):
        _check_all(name, child, "padding", child.padding, 0)
        if child.ceil_mode:
            raise _unsupported(name, child, "with ceil_mode=True")
        if kind is nn.MaxPool2d:
            _check_all(name, child, "dilation", child.dilation, 1)
            if child.return_indices:
                raise _unsupported(name, child, "with return_indices=True")
            layer_class = layers.MaxPool2D
        else:
            if child.divisor_override is not None:
                raise _unsupported(name, child, f"with divisor_override {child.divisor_override}")
            layer_class = layers.AvgPool2D
        stride = child.stride if child.stride not in (None, (), []) else child.kernel_size
        return layer_class(child.kernel_size, stride), 3, 1
    if kind is nn.Flatten:
        if child.start_dim != 1 or child.end_dim != -1:
            raise _unsupported(
                name, child, f"with start_dim {child.start_dim}, end_dim {child.end_dim}"
            )
        return layers.Flatten(), 1, 1
    if kind is nn.Unflatten:
        if child.dim != 1:
            raise _unsupported(name, child, f"with dim {child.dim}")
        shape = tuple(child.unflattened_size)
        return layers.Reshape(shape), len(shape), 1
    if kind in (nn.ReLU, nn.Tanh, nn.Sigmoid):
        activation = {nn.ReLU: layers.ReLU, nn.Tanh: layers.Tanh, nn.Sigmoid: layers.Sigmoid}
        return activation[kind](), rank, 1
    if kind is nn.Softmax:
        if child.dim not in (-1, rank):  # dim `rank` is the last axis of (N, *sample)
            raise _unsupported(
                name, child,
                f"with dim {child.dim}" + ("" if rank is None else f" on {rank + 1}-d input")
                + " (fastcnn's Softmax is over the last axis)",
            )
        return layers.Softmax(), rank, 1
    if kind is nn.Dropout:
        return layers.Dropout(child.p), rank, 1
    if kind is nn.Identity:
        return None, rank, 1
    if kind in (nn.BatchNorm2d, nn.BatchNorm1d):
        return _batch_norm_from_torch(name, child, kind is nn.BatchNorm2d), rank, 1
    if kind is nn.AdaptiveAvgPool2d:
        if child.output_size not in (1, (1, 1)) or type(following) is not nn.Flatten:
            raise _unsupported(
                name, child,
                f"with output_size {child.output_size}" if child.output_size not in (1, (1, 1))
                else "without a Flatten after it",
            )
        return _new_layer(name, child, "GlobalAvgPool2D"), 1, 2
    raise ValueError(f"{kind.__name__} is not supported (module {name})")


def _batch_norm_from_torch(name, child, two_d):
    if not child.affine:
        raise _unsupported(name, child, "with affine=False")
    if not child.track_running_stats:
        raise _unsupported(name, child, "with track_running_stats=False")
    if child.momentum is None:
        raise _unsupported(name, child, "with momentum=None (a cumulative average)")
    layer = _new_layer(
        name, child, "BatchNorm2D" if two_d else "BatchNorm1D",
        momentum=child.momentum, eps=child.eps,
    )
    layer.gamma = _numpy(child.weight)
    layer.beta = _numpy(child.bias)
    layer.running_mean = _numpy(child.running_mean)
    layer.running_var = _numpy(child.running_var)
    if hasattr(layer, "num_batches_tracked"):
        layer.num_batches_tracked = int(child.num_batches_tracked)
    return layer
