"""Export: every preset and write-up network written as ONNX (checked by onnx's checker
and run by ONNX Runtime), as safetensors (loaded by PyTorch), turned into a
torch.nn.Sequential and back, with training continuing on the other side where it
stopped. The tests that need onnx, onnxruntime or torch are skipped without them; the
ONNX bytes are also decoded here, so the writer is checked without any of them."""

import copy
import json
import re
import struct
import sys

import numpy as np
import pytest

from fastcnn import Network, cli, compat, datasets, layers
from fastcnn import export as export_module
from fastcnn.optimizers import SGD, Adam

ONNX_RELATIVE = 1e-5  # float32, relative to the largest output
TRAINING_RELATIVE = 1e-9  # float64


# --------------------------------------------------------------------------- networks


def as_color_32x32(images):
    """examples/writeup_003_cifar_style.py's input: (N, 28, 28) uint8 -> (N, 3, 32, 32)."""
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2))) / np.float32(255)
    color = np.repeat(padded[:, None], 3, axis=1)
    return color - color.mean(axis=0)


def scaled(images):
    return cli._network_input(images)


# The layer lists of cli.PRESETS and of examples/*.py (write-up 002's compat port uses
# fastcnn.compat's classes, which are refused: see test_compat_layers_are_refused).
NETWORKS = {
    **{f"preset_{name}": (preset.layers, scaled) for name, preset in cli.PRESETS.items()},
    "writeup_001_mlp": (
        lambda: [layers.Flatten(), layers.Dense(100), layers.Tanh(), layers.Dense(50),
                 layers.Tanh(), layers.Dense(10)],
        scaled,
    ),
    "writeup_001_conv_net": (
        lambda: [layers.Convolutional(5, 3, stride=2, padding=1), layers.Tanh(),
                 layers.MaxPool2D(2), layers.Flatten(), layers.Dense(100), layers.Tanh(),
                 layers.Dense(50), layers.Tanh(), layers.Dense(10)],
        scaled,
    ),
    "writeup_002_conv_sigmoid": (
        lambda: [layers.Convolutional(6, 3), layers.Sigmoid(), layers.Flatten(),
                 layers.Dense(100), layers.Tanh(), layers.Dense(10), layers.Sigmoid()],
        scaled,
    ),
    "writeup_003_cifar_style": (
        lambda: [layers.Convolutional(10, 5, padding=2), layers.ReLU(), layers.MaxPool2D(2),
                 layers.Convolutional(20, 5, padding=2), layers.ReLU(), layers.MaxPool2D(2),
                 layers.Flatten(), layers.Dense(100), layers.ReLU(), layers.Dropout(0.5),
                 layers.Dense(10)],
        as_color_32x32,
    ),
    "writeup_004_fashion_mnist": (
        lambda: [layers.Convolutional(6, 5, padding=2), layers.ReLU(),
                 layers.Convolutional(6, 5, padding=2), layers.ReLU(), layers.MaxPool2D(2),
                 layers.Flatten(), layers.Dense(10)],
        scaled,
    ),
    # Not a write-up's: every Reshape case (from one axis, and from (C, H, W))
    "reshapes": (
        lambda: [layers.Flatten(), layers.Dense(64), layers.Tanh(), layers.Reshape((1, 8, 8)),
                 layers.Convolutional(3, 3), layers.ReLU(), layers.Reshape((6, 6, 3)),
                 layers.AvgPool2D(2, stride=1), layers.Flatten(), layers.Dense(10)],
        scaled,
    ),
}


@pytest.fixture(scope="module")
def images():
    """(uint8 (64, 28, 28) Fashion-MNIST test images, their labels), from the sample."""
    _, (x_test, y_test) = datasets.fashion_mnist(path=datasets.SAMPLE_DIR)
    return x_test[:64], y_test[:64]


_TRAINED = {}


def trained(name, images, dtype=np.float32, dropout=None):
    """(network ``name`` after one short epoch with Adam, its input images, labels): a
    copy of the one trained for these arguments, so tests may change it."""
    key = (name, np.dtype(dtype), dropout)
    if key not in _TRAINED:
        _TRAINED[key] = train(name, images, dtype, dropout)
    return copy.deepcopy(_TRAINED[key])


def train(name, images, dtype, dropout):
    build, prepare = NETWORKS[name]
    network_layers = build()
    if dropout is not None:
        for layer in network_layers:
            if isinstance(layer, layers.Dropout):
                layer.rate = dropout
    network = Network(network_layers, dtype=dtype).use("softmax_cross_entropy")
    x, y = prepare(images[0]).astype(dtype), images[1]
    network.fit(x[:32], y[:32], epochs=1, learning_rate=1e-3, batch_size=16,
                optimizer=Adam(), verbose=0, seed=0)
    return network, x[32:], y[32:]


def assert_close(actual, expected, relative, scale=None):
    """|actual - expected| <= relative * (|expected| + scale), elementwise; ``scale``
    defaults to max |expected|."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    if scale is None:
        scale = float(np.abs(expected).max()) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=relative, atol=relative * scale)


def mentions(*fragments):
    """A regex for pytest.raises(match=...) that needs every fragment, in order."""
    return ".*".join(re.escape(fragment) for fragment in fragments)


# --------------------------------------------------------------------------- ONNX


@pytest.mark.parametrize("name", NETWORKS)
def test_onnx_runtime_gives_predicts_outputs(name, images, tmp_path):
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    network, x, _ = trained(name, images)
    path = tmp_path / "model.onnx"
    network.export(path)

    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 8
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (model_input,) = session.get_inputs()
    assert model_input.name == "input"
    assert model_input.shape == ["batch", *x.shape[1:]]
    assert [o.name for o in session.get_outputs()] == ["output"]
    for batch in (x, x[:1]):  # the batch dimension is dynamic
        (output,) = session.run(None, {"input": batch})
        assert_close(output, network.predict(batch), ONNX_RELATIVE)


def test_onnx_float64_model_is_valid_and_runs_without_convolutions(images, tmp_path):
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    network, x, _ = trained("preset_mlp", images, dtype=np.float64)
    path = tmp_path / "mlp.onnx"
    network.export(path)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {"input": x})
    assert output.dtype == np.float64
    assert_close(output, network.predict(x), TRAINING_RELATIVE)


def test_onnx_model_of_dropout_alone_passes_its_input_through():
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    network = Network([layers.Dropout(0.5)])
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    network.predict(x)
    model = export_module.onnx_bytes(network)
    onnx.checker.check_model(onnx.load_from_string(model), full_check=True)
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(None, {"input": x})[0], x)


def decode(data):
    """One protobuf message: [(field number, value)], value an int (varint), bytes
    (length-delimited) or 4 bytes (fixed32); fails on anything else or trailing bytes."""

    def varint(position):
        value, shift = 0, 0
        while True:
            byte = data[position]
            value |= (byte & 0x7F) << shift
            position += 1
            shift += 7
            if not byte & 0x80:
                return value, position

    fields, position = [], 0
    while position < len(data):
        key, position = varint(position)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, position = varint(position)
        elif wire_type == 2:
            length, position = varint(position)
            value = data[position : position + length]
            assert len(value) == length, "a length-delimited field runs past the end"
            position += length
        elif wire_type == 5:
            value = data[position : position + 4]
            position += 4
        else:
            raise AssertionError(f"unexpected wire type {wire_type}")
        fields.append((number, value))
    assert position == len(data)
    return fields


def values(fields, number):
    return [value for field_number, value in fields if field_number == number]


def signed(value):
    return value - (1 << 64) if value >= 1 << 63 else value


def test_onnx_bytes_decode_to_the_network_without_onnx():
    network = Network(
        [layers.Convolutional(3, 3, padding=1, input_shape=(2, 5, 5), seed=1), layers.ReLU(),
         layers.Flatten(), layers.Dense(4, seed=2), layers.Softmax()]
    )
    network.predict(np.zeros((1, 2, 5, 5)))  # builds the Dense layer
    model = decode(export_module.onnx_bytes(network))
    assert values(model, 1) == [8]  # ir_version
    assert [decode(o) for o in values(model, 8)] == [[(1, b""), (2, 17)]]  # opset_import
    (graph,) = [decode(g) for g in values(model, 7)]
    nodes = [decode(n) for n in values(graph, 1)]
    assert [values(n, 4) for n in nodes] == [
        [b"Conv"], [b"Relu"], [b"Flatten"], [b"Gemm"], [b"Softmax"]
    ]
    assert values(nodes[0], 1) == [b"input", b"layers.0.kernels", b"layers.0.biases"]
    assert values(nodes[-1], 2) == [b"output"]
    assert all(values(a, 1) != [b"pads"] or values(a, 8) == [1, 1, 1, 1]
               for a in map(decode, values(nodes[0], 5)))
    (axis,) = [decode(a) for a in values(nodes[-1], 5)]
    assert values(axis, 1) == [b"axis"] and [signed(v) for v in values(axis, 3)] == [-1]

    tensors = [decode(t) for t in values(graph, 5)]
    initializers = {values(t, 8)[0].decode(): t for t in tensors}
    expected = {"layers.0.kernels": network.layers[0].kernels,
                "layers.0.biases": network.layers[0].biases,
                "layers.3.weights": network.layers[3].weights,
                "layers.3.bias": network.layers[3].bias}
    assert set(initializers) == set(expected)
    for name, array in expected.items():
        tensor = initializers[name]
        assert values(tensor, 1) == list(array.shape)  # dims
        assert values(tensor, 2) == [1]  # FLOAT
        assert values(tensor, 9) == [array.astype("<f4").tobytes()]  # raw_data

    (model_input,) = [decode(v) for v in values(graph, 11)]
    assert values(model_input, 1) == [b"input"]
    (tensor_type,) = [decode(t) for t in values(decode(values(model_input, 2)[0]), 1)]
    assert values(tensor_type, 1) == [1]
    dims = [decode(d) for d in values(decode(values(tensor_type, 2)[0]), 1)]
    assert dims == [[(2, b"batch")], [(1, 2)], [(1, 5)], [(1, 5)]]


# --------------------------------------------------------------------------- PyTorch


@pytest.mark.parametrize("name", NETWORKS)
def test_to_torch_and_back_give_predicts_outputs(name, images):
    torch = pytest.importorskip("torch")
    network, x, _ = trained(name, images)
    module = network.to_torch().eval()
    with torch.no_grad():
        assert_close(module(torch.from_numpy(x)).numpy(), network.predict(x), ONNX_RELATIVE)

    again = Network.from_torch(module)
    assert again.dtype == network.dtype
    # (a Reshape of (C, H, W) comes back as Flatten and Reshape)
    trained_layers = [layer for layer in network.layers if layer.parameters]
    trained_again = [layer for layer in again.layers if layer.parameters]
    assert list(map(type, trained_again)) == list(map(type, trained_layers))
    for layer, original in zip(trained_again, trained_layers):
        assert layer.parameters.keys() == original.parameters.keys()
        for key, parameter in layer.parameters.items():
            np.testing.assert_array_equal(parameter, original.parameters[key])
    np.testing.assert_array_equal(again.predict(x), network.predict(x))


def torch_step(torch, module, optimizer, x, y):
    """One training step of ``module`` on (x, y) with the mean cross-entropy."""
    module.train()
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(module(torch.from_numpy(x)), torch.from_numpy(y))
    loss.backward()
    optimizer.step()


def fastcnn_step(network, optimizer, x, y, learning_rate):
    network.fit(x, y, epochs=1, learning_rate=learning_rate, batch_size=len(x),
                optimizer=optimizer, shuffle=False, verbose=0)


# fastcnn parameter -> (torch parameter, transposed?), per layer class
TORCH_NAMES = {
    layers.Convolutional: {"kernels": ("weight", False), "biases": ("bias", False)},
    layers.Dense: {"weights": ("weight", True), "bias": ("bias", False)},
    layers.BatchNorm2D: {"gamma": ("weight", False), "beta": ("bias", False)},
    layers.BatchNorm1D: {"gamma": ("weight", False), "beta": ("bias", False)},
}


def assert_same_training_state(torch, network, module):
    """Equal parameters and equal last gradients in the network and its torch twin,
    whose modules with parameters come in the order of the layers with parameters."""
    twins = [m for m in module if next(m.parameters(), None) is not None]
    trained_layers = [layer for layer in network.layers if layer.parameters]
    assert len(twins) == len(trained_layers)
    for layer, twin in zip(trained_layers, twins):
        # A gradient that is zero in exact arithmetic (a convolution's bias in front of
        # BatchNorm) is rounding noise in both libraries: judge it against the layer's
        # largest gradient, the size of the terms that cancelled.
        layer_scale = max(float(np.abs(g).max()) for g in layer.gradients.values())
        value_scale = max(float(np.abs(p).max()) for p in layer.parameters.values())
        for name, (torch_name, transposed) in TORCH_NAMES[type(layer)].items():
            parameter = getattr(twin, torch_name)
            value, gradient = parameter.detach().numpy(), parameter.grad.numpy()
            if transposed:
                value, gradient = value.T, gradient.T
            assert_close(layer.gradients[name], gradient, TRAINING_RELATIVE, layer_scale)
            assert_close(layer.parameters[name], value, TRAINING_RELATIVE, value_scale)


OPTIMIZERS = {
    "sgd_momentum": lambda: SGD(momentum=0.9, weight_decay=1e-3),
    "sgd_nesterov": lambda: SGD(momentum=0.9, nesterov=True),
    "adam": lambda: Adam(weight_decay=1e-3),
}


# The biases of convolutions in front of BatchNorm have no gradient in exact arithmetic;
# each library's rounding noise there is what Adam divides by its own square root, so
# their Adam steps differ by design for the vgg preset (its SGD steps agree within 1e-9).
CONTINUED = [
    (name, optimizer) for name in NETWORKS for optimizer in ("sgd_momentum", "adam")
    if (name, optimizer) != ("preset_vgg", "adam")
] + [("preset_lenet", "sgd_nesterov")]


@pytest.mark.parametrize("name, optimizer", CONTINUED)
def test_training_continues_in_torch(name, optimizer, images):
    """A step in fastcnn, then to_torch and to_torch_optimizer: the next step gives the
    same gradients and parameters on both sides (the second step uses the carried
    momentum or Adam moments and step count)."""
    torch = pytest.importorskip("torch")
    network, x, y = trained(name, images, dtype=np.float64, dropout=0.0)
    rule = OPTIMIZERS[optimizer]()
    fastcnn_step(network, rule, x[:16], y[:16], learning_rate=0.01)

    module = network.to_torch()
    torch_optimizer = export_module.to_torch_optimizer(network, module, learning_rate=0.01)
    fastcnn_step(network, rule, x[16:], y[16:], learning_rate=0.01)
    torch_step(torch, module, torch_optimizer, x[16:], y[16:])
    assert_same_training_state(torch, network, module)


@pytest.mark.parametrize(
    "name, optimizer", [pair for pair in CONTINUED if pair[1] != "sgd_nesterov"]
)
def test_training_continues_in_fastcnn(name, optimizer, images):
    """A step in torch, then from_torch and optimizer_from_torch: the next step gives
    the same gradients and parameters on both sides."""
    torch = pytest.importorskip("torch")
    network, x, y = trained(name, images, dtype=np.float64, dropout=0.0)
    module = network.to_torch()
    rule = OPTIMIZERS[optimizer]()
    if isinstance(rule, SGD):
        torch_optimizer = torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9,
                                          weight_decay=1e-3)
    else:
        torch_optimizer = torch.optim.Adam(module.parameters(), lr=0.01, weight_decay=1e-3)
    torch_step(torch, module, torch_optimizer, x[:16], y[:16])

    again = Network.from_torch(module).use("softmax_cross_entropy")
    carried = export_module.optimizer_from_torch(torch_optimizer, module, again)
    assert repr(carried) == repr(rule)
    fastcnn_step(again, carried, x[16:], y[16:], learning_rate=0.01)
    torch_step(torch, module, torch_optimizer, x[16:], y[16:])
    assert_same_training_state(torch, again, module)


def test_unsupported_torch_modules_are_refused_by_name():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    cases = [
        (nn.Sequential(nn.Conv2d(1, 2, 3, dilation=2)), "Conv2d with dilation 2 is not supported"),
        (nn.Sequential(nn.LSTM(4, 4)), "LSTM is not supported"),
        (nn.Sequential(nn.Conv2d(1, 2, 3, padding="same")), "Conv2d with padding='same'"),
        (nn.Sequential(nn.MaxPool2d(2, ceil_mode=True)), "MaxPool2d with ceil_mode=True"),
        (nn.Sequential(nn.Linear(4, 2), nn.Softmax(dim=0)), "Softmax with dim 0 on 2-d input"),
        (nn.Sequential(nn.AdaptiveAvgPool2d(1)), "AdaptiveAvgPool2d without a Flatten"),
        (nn.Sequential(nn.Sequential(nn.ReLU())), "Sequential is not supported"),
    ]
    for module, message in cases:
        with pytest.raises(ValueError, match=mentions(message)):
            Network.from_torch(module)
    with pytest.raises(TypeError, match=mentions("torch.nn.Sequential", "Linear")):
        Network.from_torch(nn.Linear(2, 2))


def test_from_torch_accepts_softmax_over_dim_1_of_2d_input_and_missing_biases():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.Flatten(),
                           nn.Linear(18, 3, bias=False), nn.Softmax(dim=1)).eval()
    network = Network.from_torch(module, input_shape=(1, 5, 5))
    x = np.random.default_rng(0).standard_normal((4, 1, 5, 5)).astype(np.float32)
    with torch.no_grad():
        assert_close(network.predict(x), module(torch.from_numpy(x)).numpy(), ONNX_RELATIVE)
    assert network.input_shape == (1, 5, 5)


def test_torch_optimizers_without_a_counterpart_are_refused(images):
    torch = pytest.importorskip("torch")
    network, _, _ = trained("preset_mlp", images)
    module = network.to_torch()
    cases = [
        (torch.optim.RMSprop(module.parameters()), "RMSprop is not supported"),
        (torch.optim.Adam(module.parameters(), amsgrad=True), "amsgrad"),
        (torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9, dampening=0.5),
         "dampening 0.5"),
    ]
    for torch_optimizer, message in cases:
        with pytest.raises(ValueError, match=mentions(message)):
            export_module.optimizer_from_torch(torch_optimizer, module, network)
    optimizer = network.layers[1].optimizer
    network.layers[1].optimizer = SGD(momentum=0.5)
    with pytest.raises(ValueError, match=mentions("different optimizers")):
        export_module.to_torch_optimizer(network, module, learning_rate=0.1)
    network.layers[1].optimizer = optimizer
    twin = mentions("is not the network's twin", "Linear", "Dense, Dense, Dense")
    with pytest.raises(ValueError, match=twin):
        export_module.to_torch_optimizer(network, torch.nn.Sequential(torch.nn.Linear(2, 2)), 0.1)


# --------------------------------------------------------------------------- safetensors


def read_safetensors(path):
    """name -> array from a .safetensors file, parsed by the format's description."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    assert length % 8 == 0
    header = json.loads(data[8 : 8 + length])
    assert header.pop("__metadata__")["format"] == "pt"
    body = data[8 + length :]
    dtypes = {"F32": "<f4", "F64": "<f8", "I64": "<i8"}
    arrays, end = {}, 0
    for name, entry in header.items():
        begin, stop = entry["data_offsets"]
        assert begin == end, "tensors are laid out back to back"
        arrays[name] = np.frombuffer(body[begin:stop], dtypes[entry["dtype"]]).reshape(
            entry["shape"]
        )
        end = stop
    assert end == len(body)
    return arrays


@pytest.mark.parametrize("name", NETWORKS)
def test_safetensors_load_strictly_into_the_torch_twin(name, images, tmp_path):
    torch = pytest.importorskip("torch")
    network, x, _ = trained(name, images)
    path = tmp_path / "weights.safetensors"
    network.export(path)
    arrays = read_safetensors(path)
    module = network.to_torch().eval()
    assert list(arrays) == list(module.state_dict())
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.zero_()
    module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in arrays.items()},
                           strict=True)
    with torch.no_grad():
        assert_close(module(torch.from_numpy(x)).numpy(), network.predict(x), ONNX_RELATIVE)


def test_dense_weights_are_stored_as_torch_orders_them(tmp_path):
    network = Network([layers.Dense(3, input_shape=(5,), seed=0)])
    network.metadata = {"pixels": "x / 255", "classes": ["a", "b", "c"]}
    path = tmp_path / "dense.safetensors"
    network.export(path)
    arrays = read_safetensors(path)
    np.testing.assert_array_equal(arrays["0.weight"], network.layers[0].weights.T)
    np.testing.assert_array_equal(arrays["0.bias"], network.layers[0].bias)
    (length,) = struct.unpack("<Q", path.read_bytes()[:8])
    metadata = json.loads(path.read_bytes()[8 : 8 + length])["__metadata__"]
    assert metadata == {"pixels": "x / 255", "classes": '["a", "b", "c"]', "format": "pt"}


# --------------------------------------------------------------------------- BatchNorm


class _BatchNorm(layers.Layer):
    """Inference-only stand-in for fastcnn's BatchNorm layers where this version lacks
    them: y = gamma (x - running_mean) / sqrt(running_var + eps) + beta per channel."""

    def __init__(self, momentum=0.1, eps=1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.gamma = self.beta = self.running_mean = self.running_var = None
        self.num_batches_tracked = 0

    @property
    def parameters(self):
        return {} if self.gamma is None else {"gamma": self.gamma, "beta": self.beta}

    def forward(self, input):
        x = self._as_input(input)
        if self.gamma is None:
            channels = x.shape[1]
            self.gamma, self.beta = np.ones(channels, x.dtype), np.zeros(channels, x.dtype)
            self.running_mean = np.zeros(channels, x.dtype)
            self.running_var = np.ones(channels, x.dtype)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        scale = self.gamma / np.sqrt(self.running_var + self.eps)
        centred = x - self.running_mean.reshape(shape)
        return centred * scale.reshape(shape) + self.beta.reshape(shape)


class BatchNorm2D(_BatchNorm):
    pass


class BatchNorm1D(_BatchNorm):
    pass


class GlobalAvgPool2D(layers.Layer):
    """Stand-in: (N, C, H, W) -> (N, C), the mean of each plane."""

    def forward(self, input):
        return self._as_input(input).mean(axis=(2, 3))


def new_layer(name, **arguments):
    """fastcnn.layers' own class when it exists, else the stand-in above."""
    return getattr(layers, name, globals()[name])(**arguments)


def batch_norm_network(rng):
    network = Network(
        [layers.Convolutional(4, 3, padding=1, input_shape=(2, 6, 6), seed=0),
         new_layer("BatchNorm2D", momentum=0.2, eps=1e-3), layers.ReLU(),
         new_layer("GlobalAvgPool2D"), layers.Dense(5, seed=1),
         new_layer("BatchNorm1D"), layers.Softmax()]
    )
    network.predict(np.zeros((1, 2, 6, 6), np.float32))  # builds every layer
    for layer in network.layers:
        if hasattr(layer, "running_var"):
            count = len(layer.running_var)
            layer.gamma = rng.uniform(0.5, 2, count).astype(np.float32)
            layer.beta = rng.standard_normal(count).astype(np.float32)
            layer.running_mean = rng.standard_normal(count).astype(np.float32)
            layer.running_var = rng.uniform(0.5, 2, count).astype(np.float32)
            layer.num_batches_tracked = 7
    return network


def test_batch_norm_and_global_pooling_export(rng, tmp_path):
    network = batch_norm_network(rng)
    x = rng.standard_normal((3, 2, 6, 6)).astype(np.float32)
    expected = network.predict(x)
    names = list(export_module.state_dict(network))
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                     "1.running_var", "1.num_batches_tracked", "5.weight", "5.bias",
                     "6.weight", "6.bias", "6.running_mean", "6.running_var",
                     "6.num_batches_tracked"]

    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    path = tmp_path / "batch_norm.onnx"
    network.export(path)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node] == [
        "Conv", "BatchNormalization", "Relu", "GlobalAveragePool", "Flatten", "Gemm",
        "BatchNormalization", "Softmax"]
    momentum = [a.f for a in model.graph.node[1].attribute if a.name == "momentum"]
    assert momentum == [pytest.approx(0.8)]  # ONNX weighs the running value, PyTorch the batch
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert_close(session.run(None, {"input": x})[0], expected, ONNX_RELATIVE)


def test_batch_norm_and_global_pooling_in_torch(rng, tmp_path):
    torch = pytest.importorskip("torch")
    network = batch_norm_network(rng)
    x = rng.standard_normal((3, 2, 6, 6)).astype(np.float32)
    module = network.to_torch().eval()
    assert [type(m).__name__ for m in module] == [
        "Conv2d", "BatchNorm2d", "ReLU", "AdaptiveAvgPool2d", "Flatten", "Linear",
        "BatchNorm1d", "Softmax"]
    assert module[1].momentum == pytest.approx(0.2) and module[1].eps == pytest.approx(1e-3)
    assert int(module[1].num_batches_tracked) == 7
    with torch.no_grad():
        assert_close(module(torch.from_numpy(x)).numpy(), network.predict(x), ONNX_RELATIVE)
    path = tmp_path / "batch_norm.safetensors"
    network.export(path)
    arrays = read_safetensors(path)
    assert arrays["1.num_batches_tracked"].dtype == np.int64
    module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in arrays.items()},
                           strict=True)

    if not hasattr(layers, "BatchNorm2D"):
        missing = mentions("BatchNorm2d needs fastcnn.layers.BatchNorm2D")
        with pytest.raises(ValueError, match=missing):
            Network.from_torch(module)
        return
    again = Network.from_torch(module)
    np.testing.assert_allclose(again.predict(x), network.predict(x), rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------- refusals


def test_layers_without_a_counterpart_are_refused_by_name(tmp_path):
    class Square(layers.Layer):
        def forward(self, input):
            return input * input

    own_functions = layers.Activation(np.square, lambda x: 2 * x)
    for layer, names in [(own_functions, ("layer 1", "Activation(square, <lambda>)",
                                          "use ReLU(), Tanh()")),
                         (Square(), ("layer 1", "Square", "Convolutional, Dense"))]:
        network = Network([layers.Flatten(input_shape=(2, 2)), layer])
        for path in ("model.onnx", "model.safetensors"):
            with pytest.raises(ValueError, match=mentions(*names)):
                network.export(tmp_path / path)
            assert not (tmp_path / path).exists()
        with pytest.raises(ValueError, match=mentions(*names)):
            export_module.state_dict(network)


def test_compat_layers_are_refused():
    network = Network([compat.Convolutional((1, 28, 28), 3, 6), compat.Sigmoid()])
    with pytest.raises(ValueError, match=mentions("layer 0", "fastcnn.compat.Convolutional")):
        export_module.onnx_bytes(network)


def test_unknown_suffix_and_unbuilt_networks_are_refused(tmp_path):
    network = Network([layers.Flatten(), layers.Dense(3)])
    with pytest.raises(ValueError, match=mentions("model.pt", ".onnx or .safetensors")):
        network.export(tmp_path / "model.pt")
    with pytest.raises(ValueError, match=mentions("input shape is not known", "predict")):
        network.export(tmp_path / "model.onnx")
    built_first_only = Network([layers.Flatten(input_shape=(4,)), layers.Dense(3)])
    with pytest.raises(ValueError, match=mentions("layer 1, Dense(3), has no weights yet")):
        built_first_only.export(tmp_path / "model.onnx")


# --------------------------------------------------------------------------- command line


def test_command_line_exports_a_saved_model(images, tmp_path, capsys):
    network, x, _ = trained("preset_mlp", images)
    network.metadata = {"preprocessing": cli.SCALING.as_dict()}
    model = tmp_path / "model.npz"
    network.save(model)
    assert cli.main(["export", str(model), str(tmp_path / "model.onnx")]) == 0
    assert "model.onnx" in capsys.readouterr().out
    assert cli.main(["export", str(model), str(tmp_path / "model.safetensors")]) == 0
    assert set(read_safetensors(tmp_path / "model.safetensors")) == {
        "1.weight", "1.bias", "3.weight", "3.bias", "5.weight", "5.bias"}

    onnxruntime = pytest.importorskip("onnxruntime")
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    assert_close(session.run(None, {"input": x})[0], network.predict(x), ONNX_RELATIVE)
    meta = session.get_modelmeta().custom_metadata_map
    assert meta == {"preprocessing": json.dumps(cli.SCALING.as_dict())}


@pytest.mark.parametrize(
    "arguments, message",
    [(["MODEL", "out.pt"], ".onnx or .safetensors"),
     (["missing.npz", "out.onnx"], "no model file missing.npz")],
)
def test_command_line_export_fails_in_one_line(arguments, message, images, tmp_path, capsys):
    network, _, _ = trained("preset_mlp", images)
    network.save(tmp_path / "MODEL")
    arguments = [str(tmp_path / a) if a == "MODEL" else a for a in arguments]
    assert cli.main(["export", *arguments]) == 1
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 and message in error


def test_torch_functions_say_how_to_get_torch_when_it_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    network = Network([layers.Dense(2, input_shape=(3,))])
    with pytest.raises(ImportError, match=mentions("needs PyTorch", "pip install torch")):
        network.to_torch()
    with pytest.raises(ImportError, match=mentions("needs PyTorch")):
        Network.from_torch(object())
