"""The write-ups' own class and function names and signatures, on fastcnn's kernels.

Code written against the write-ups runs after changing its imports to
``from fastcnn.compat import ...``. Each name keeps its write-up's signature and array
layout, one sample at a time, in float64 as NumPy computes by default; the arithmetic
runs in fastcnn's layers and kernels.

Where a write-up's own formula is wrong, the name here gives the correct result (the
docstrings say where): the softmax derivative is the full Jacobian, a convolution's
bias is added once per output value, pooling windows reach the input's edge, and the
HWC convolution of write-up 001 has one kernel per input channel. Parameters are
initialised with fastcnn's Glorot scheme rather than each write-up's own random draw.

Write-up 001 ("Neural Networks: For Beginners"): ``Layer`` with
``forward_propagation`` / ``backward_propagation``, ``FCLayer``, ``ActivationLayer``,
``ConvolutionalLayer`` and ``MaxPoolingLayer`` (one (H, W, C) sample), ``FlattenLayer``,
``NeuralNetwork``, and the functions ``tanh``, ``tanh_prime``, ``softmax``,
``softmax_prime``, ``mse``, ``mse_prime``.

Write-up 002 (convolution with scipy.signal): ``Layer`` with ``forward`` / ``backward``,
``Convolutional(input_shape, kernel_size, depth)`` (one (C, H, W) sample, untied
biases), ``Reshape``, ``Dense`` (column vectors), ``Activation``, ``Sigmoid``, ``Tanh``,
``Softmax``, ``train``, ``predict``, ``binary_cross_entropy``,
``binary_cross_entropy_prime``, ``mse``, ``mse_prime``.

Write-ups 003 and 004 reuse some of these names with other meanings (003's ``ReLU`` is
a function, 004's a layer class), so each has its own module:
``fastcnn.compat.writeup003`` (the batched im2col functions) and
``fastcnn.compat.writeup004`` (``ConvLayer``, ``ReLU``, ``MaxPool``, ``Output``); their
docstrings list what they keep and what they correct.

A compat class called with arguments that do not fit its write-up's signature (for
example ``FCLayer(784, 100)``, write-up 002's ``Dense`` call) raises a TypeError that
names the signature it takes, its write-up, and where the look-alike classes are.
"""

import inspect
import math

import numpy as np

from .. import activations, kernels, layers
from ..layers import Layer
# imported so that fastcnn.compat.writeup00N works after a plain ``import fastcnn``
from . import writeup003, writeup004
from ._signatures import writeup_signature

__all__ = [
    "Layer",
    "FCLayer",
    "ActivationLayer",
    "ConvolutionalLayer",
    "MaxPoolingLayer",
    "FlattenLayer",
    "NeuralNetwork",
    "Convolutional",
    "Dense",
    "Reshape",
    "Activation",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "train",
    "predict",
    "tanh",
    "tanh_prime",
    "sigmoid",
    "sigmoid_prime",
    "relu",
    "relu_prime",
    "softmax",
    "softmax_prime",
    "mse",
    "mse_prime",
    "binary_cross_entropy",
    "binary_cross_entropy_prime",
]

_DTYPE = np.float64


# -- functions ---------------------------------------------------------------------


def tanh(x):
    """tanh(x)."""
    return np.tanh(x)


def tanh_prime(x, output=None):
    """1 - tanh(x)^2. Takes (x) as in write-up 002 or (x, output) as in write-up 001."""
    return 1 - np.tanh(x) ** 2


def sigmoid(x):
    """1 / (1 + exp(-x)), without overflow for large |x|."""
    return activations.sigmoid(x)


def sigmoid_prime(x, output=None):
    """sigmoid(x) (1 - sigmoid(x)); takes (x) or (x, output)."""
    return activations.sigmoid_prime(x)


def relu(x):
    """max(x, 0)."""
    return np.maximum(x, 0)


def relu_prime(x, output=None):
    """1 where x > 0, else 0; takes (x) or (x, output)."""
    return (np.asarray(x) > 0).astype(np.float64)


def softmax(x):
    """exp(x) / sum(exp(x)) over the whole sample, as in write-up 001 (stable)."""
    x = np.asarray(x, dtype=np.float64)
    exps = np.exp(x - x.max())
    return exps / np.sum(exps)


def softmax_prime(x, output=None):
    """The Jacobian of ``softmax`` at the sample x: diag(s) - s s^T, (x.size, x.size).

    Write-up 001's version loops over (i, j) but keeps only the last term, which is not
    the derivative. Softmax has no element-wise derivative: ``ActivationLayer(softmax,
    softmax_prime)`` therefore multiplies the gradient by this Jacobian (a
    Jacobian-vector product) instead of element-wise.
    """
    s = softmax(x).reshape(-1)
    return np.diag(s) - np.outer(s, s)


def mse(y_true, y_pred):
    """mean((y_true - y_pred)^2)."""
    return np.mean(np.power(np.asarray(y_true) - y_pred, 2))


def mse_prime(y_true, y_pred):
    """2 (y_pred - y_true) / y_true.size."""
    return 2 * (y_pred - np.asarray(y_true)) / np.size(y_true)


def _clip(p):
    # keep log(p) and log(1 - p) finite where a prediction saturates at 0 or 1
    info = np.finfo(np.float64)
    return np.clip(p, info.tiny, 1 - info.epsneg)


def binary_cross_entropy(y_true, y_pred):
    """mean(-y log p - (1 - y) log(1 - p)); p is clipped so a saturated prediction
    gives a large finite loss rather than inf or nan."""
    p = _clip(np.asarray(y_pred, dtype=np.float64))
    return np.mean(-y_true * np.log(p) - (1 - np.asarray(y_true)) * np.log1p(-p))


def binary_cross_entropy_prime(y_true, y_pred):
    """((1 - y) / (1 - p) - y / p) / y.size, with p clipped as in the loss."""
    p = _clip(np.asarray(y_pred, dtype=np.float64))
    y = np.asarray(y_true)
    return ((1 - y) / (1 - p) - y / p) / np.size(y)


# -- write-up 001: one sample at a time, images (H, W, C) ----------------------------


@writeup_signature(
    "001",
    "for write-up 002's Dense(input_size, output_size) use fastcnn.compat.Dense, for "
    "write-up 004's Output(input_len, nodes) fastcnn.compat.writeup004.Output",
)
class FCLayer(layers.Dense):
    """Write-up 001's fully connected layer: ``FCLayer(output_size)``, built on the
    first sample. Any input is one sample, flattened to (1, input_size); the output is
    (1, output_size) and the returned gradient has the input's shape. ``weights`` is
    (input_size, output_size) as in the write-up; ``bias`` is (output_size,)."""

    def __init__(self, output_size):
        super().__init__(output_size, dtype=_DTYPE)
        self.output_size = self.units

    def forward(self, input_data):
        self._sample_shape = np.shape(input_data)
        return super().forward(np.reshape(input_data, (1, -1)))

    def backward(self, output_error, learning_rate):
        gradient = super().backward(np.reshape(output_error, (1, self.units)), learning_rate)
        return gradient.reshape(self._sample_shape)


def _arity(function):
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return 1
    positional = [
        p for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return len(positional)


@writeup_signature(
    "001",
    "write-up 002's Activation(activation, activation_prime) is "
    "fastcnn.compat.Activation; Tanh() and Sigmoid() take no arguments",
)
class ActivationLayer(layers.Activation):
    """Write-up 001's ``ActivationLayer(activation, activation_prime)``;
    ``activation_prime(input, output)`` (write-up 001) or ``activation_prime(input)``
    (write-up 002) gives the element-wise derivative.

    With ``softmax_prime`` the gradient is multiplied by the softmax Jacobian (its
    correct derivative), not element-wise.
    """

    def __init__(self, activation, activation_prime):
        super().__init__(activation, activation_prime, dtype=_DTYPE)
        self.activation = activation
        self.activation_prime = activation_prime
        self._takes_output = _arity(activation_prime) >= 2

    def derivative(self):
        if self._takes_output:
            return self.f_prime(self.input, self.output)
        return self.f_prime(self.input)

    def backward(self, output_error, learning_rate):
        if self.activation_prime is softmax_prime:
            g = self._as_output_gradient(output_error)
            return (self.derivative() @ g.reshape(-1)).reshape(g.shape)
        return super().backward(output_error, learning_rate)


def _hwc_to_chw(x):
    if np.ndim(x) < 3:
        raise ValueError(
            f"write-up 001's image layers take (H, W, C) samples (or (N, H, W, C)), got an "
            f"array of shape {np.shape(x)}: one channel still needs its axis, x[..., None]"
        )
    return np.moveaxis(x, -1, -3)


def _chw_to_hwc(x):
    return np.moveaxis(x, -3, -1)


@writeup_signature(
    "001",
    "write-up 002's Convolutional(input_shape, kernel_size, depth) is "
    "fastcnn.compat.Convolutional, write-up 004's ConvLayer(input_shape, kernel_size, "
    "num_kernels, padding) fastcnn.compat.writeup004.ConvLayer",
)
class ConvolutionalLayer(layers.Convolutional):
    """Write-up 001's ``ConvolutionalLayer(filters_count, filter_shape, padding=(0, 0),
    stride=1)`` on one (H, W, C) image (or a batch (N, H, W, C)), giving (Ho, Wo,
    filters_count); ``padding`` is (rows, columns) of zeros.

    Each filter has one (kh, kw) kernel per input channel and one bias, as the
    write-up's text describes (its code shares one 2-D kernel across the channels,
    skips the windows that end on the input's last row or column, and overwrites its
    weight gradient where it should sum it). ``weights`` are the kernels,
    (filters_count, C, kh, kw).
    """

    def __init__(self, filters_count, filter_shape, padding=(0, 0), stride=1):
        super().__init__(filters_count, filter_shape, stride=stride, padding=padding, dtype=_DTYPE)
        self.filters_count = self.depth
        self.filter_shape = self.kernel_size

    @property
    def weights(self):
        return self.kernels

    def forward(self, input_data):
        return _chw_to_hwc(super().forward(_hwc_to_chw(self._as_input(input_data))))

    def backward(self, output_error, learning_rate):
        gradient = _hwc_to_chw(np.asarray(output_error))
        return _chw_to_hwc(super().backward(gradient, learning_rate))


@writeup_signature(
    "001",
    "write-up 004's MaxPool(pool_size) is fastcnn.compat.writeup004.MaxPool",
)
class MaxPoolingLayer(layers.MaxPool2D):
    """Write-up 001's ``MaxPoolingLayer(pool_shape=(2, 2), stride=2)`` on one (H, W, C)
    sample (or (N, H, W, C)), giving (Ho, Wo, C). As in the write-up, a pool larger than
    the stride pads the input with int((pool - stride) / 2) zeros on each side.

    Every window that fits is pooled (the write-up's loop skips those that end on the
    last row or column).
    """

    def __init__(self, pool_shape=(2, 2), stride=2):
        super().__init__(pool_shape, stride, dtype=_DTYPE)
        self.pool_shape = self.size
        self.padding = tuple(max((p - s) // 2, 0) for p, s in zip(self.size, self.stride))

    def _padded(self, x):
        rows, cols = self.padding
        if rows == 0 and cols == 0:
            return x
        width = [(0, 0)] * (x.ndim - 2) + [(rows, rows), (cols, cols)]
        return np.pad(x, width)

    def forward(self, input_data):
        x = _hwc_to_chw(self._as_input(input_data))
        return _chw_to_hwc(super().forward(self._padded(x)))

    def backward(self, output_error, learning_rate):
        gradient = super().backward(_hwc_to_chw(np.asarray(output_error)), learning_rate)
        rows, cols = self.padding
        height, width = gradient.shape[-2:]
        return _chw_to_hwc(gradient[..., rows : height - rows, cols : width - cols])


@writeup_signature(
    "001",
    "write-up 002's Reshape(input_shape, output_shape) is fastcnn.compat.Reshape",
)
class FlattenLayer(Layer):
    """Write-up 001's ``FlattenLayer``: one sample of any shape -> a 1-D array."""

    def forward(self, input_data):
        self.input_shape = np.shape(input_data)
        return np.asarray(input_data, dtype=_DTYPE).reshape(-1)

    def backward(self, output_error, learning_rate):
        return np.reshape(output_error, self.input_shape)


@writeup_signature(
    "001",
    "add layers with add(layer), then use(loss, loss_prime) and "
    "fit(x_train, y_train, epochs, learning_rate)",
)
class NeuralNetwork:
    """Write-up 001's ``NeuralNetwork``: ``add(layer)`` and ``use(loss, loss_prime)``
    return the network, ``fit(x_train, y_train, epochs, learning_rate)`` updates after
    every sample in order, printing ``epoch i/n   error=e`` (the mean loss), and
    ``predict(input_data)`` returns a list with one output per sample.

    For mini-batches, shuffling, optimizers and metrics, use ``fastcnn.Network``.
    """

    def __init__(self):
        self.layers = []
        self.loss = None
        self.loss_prime = None

    def add(self, layer):
        self.layers.append(layer)
        return self

    def use(self, loss, loss_prime):
        self.loss = loss
        self.loss_prime = loss_prime
        return self

    def fit(self, x_train, y_train, epochs, learning_rate):
        if self.loss is None:
            raise RuntimeError("call use(loss, loss_prime) before fit")
        samples = len(x_train)
        for epoch in range(epochs):
            error = 0
            for x, y in zip(x_train, y_train):
                output = x
                for layer in self.layers:
                    output = layer.forward_propagation(output)
                error += self.loss(y, output)
                gradient = self.loss_prime(y, output)
                for layer in reversed(self.layers):
                    gradient = layer.backward_propagation(gradient, learning_rate)
            print("epoch %d/%d   error=%f" % (epoch + 1, epochs, error / samples))
        return self

    def predict(self, input_data):
        result = []
        for x in input_data:
            output = x
            for layer in self.layers:
                output = layer.forward_propagation(output)
            result.append(output)
        return result


# -- write-up 002: one sample at a time, images (C, H, W), column vectors --------------


@writeup_signature(
    "002",
    "write-up 001's ConvolutionalLayer(filters_count, filter_shape, padding, "
    "stride) is fastcnn.compat.ConvolutionalLayer, write-up 004's ConvLayer(input_shape, "
    "kernel_size, num_kernels, padding) fastcnn.compat.writeup004.ConvLayer",
)
class Convolutional(layers.Convolutional):
    """Write-up 002's ``Convolutional(input_shape, kernel_size, depth)``: one (C, H, W)
    sample (or a batch (N, C, H, W)) -> (depth, H - k + 1, W - k + 1), stride 1, no
    padding.

    Its biases are untied, as in the write-up: ``biases`` has the output's shape
    (depth, Ho, Wo), one bias per output value, added once (not once per input
    channel). ``kernels`` is (depth, C, k, k).
    """

    def __init__(self, input_shape, kernel_size, depth):
        super().__init__(depth, kernel_size, input_shape=input_shape, dtype=_DTYPE)
        self.input_depth = self.input_shape[0]
        self.kernel_shape = self.kernels.shape

    def build(self, input_shape):
        super().build(input_shape)
        self.biases = np.zeros(self.output_shape, self.dtype)

    def forward(self, input):
        x = self._as_input(input)
        batch = x if x.ndim == 4 else x[None]
        if batch.shape[1:] != self.input_shape:
            raise ValueError(
                f"Convolutional was built for samples of shape {self.input_shape}, got {x.shape}"
            )
        y = kernels.correlate2d(batch, self.kernels)
        y += self.biases
        self.input = x
        self.output = y if x.ndim == 4 else y[0]
        return self.output

    def backward(self, output_gradient, learning_rate):
        g = self._as_output_gradient(output_gradient)
        x = self.input
        if x.ndim == 3:
            x, g = x[None], g[None]
        grad_kernels = kernels.correlate2d_backward_weight(x, g, self.kernel_size)
        grad_x = kernels.convolve2d_full(g, self.kernels, x.shape[2:])
        self.update_parameters({"kernels": grad_kernels, "biases": g.sum(axis=0)}, learning_rate)
        return grad_x if self.input.ndim == 4 else grad_x[0]


@writeup_signature(
    "002",
    "write-up 001's FCLayer(output_size) is fastcnn.compat.FCLayer, write-up 004's "
    "Output(input_len, nodes) fastcnn.compat.writeup004.Output",
)
class Dense(layers.Dense):
    """Write-up 002's ``Dense(input_size, output_size)`` on column vectors: a sample
    (input_size, 1) -> (output_size, 1), and the gradient back to (input_size, 1).

    ``weights`` is stored (input_size, output_size), fastcnn's orientation (the
    transpose of the write-up's), and ``bias`` is (output_size,).
    """

    def __init__(self, input_size, output_size):
        super().__init__(output_size, input_shape=(input_size,), dtype=_DTYPE)

    def forward(self, input):
        self._sample_shape = np.shape(input)
        output = super().forward(np.reshape(input, (1, -1)))
        return output.reshape(self.units, 1)

    def backward(self, output_gradient, learning_rate):
        gradient = super().backward(np.reshape(output_gradient, (1, self.units)), learning_rate)
        return gradient.reshape(self._sample_shape)


@writeup_signature(
    "002",
    "write-up 001's FlattenLayer() is fastcnn.compat.FlattenLayer",
)
class Reshape(Layer):
    """Write-up 002's ``Reshape(input_shape, output_shape)``; also takes a batch
    (N, *input_shape) -> (N, *output_shape)."""

    def __init__(self, input_shape, output_shape):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.output_shape = tuple(output_shape)
        if math.prod(self.input_shape) != math.prod(self.output_shape):
            raise ValueError(f"cannot reshape {self.input_shape} into {self.output_shape}")

    def forward(self, input):
        input = np.asarray(input)
        if input.shape[1:] == self.input_shape:
            return input.reshape(len(input), *self.output_shape)
        return np.reshape(input, self.output_shape)

    def backward(self, output_gradient, learning_rate):
        output_gradient = np.asarray(output_gradient)
        if output_gradient.shape[1:] == self.output_shape:
            return output_gradient.reshape(len(output_gradient), *self.input_shape)
        return np.reshape(output_gradient, self.input_shape)


@writeup_signature(
    "002",
    "write-up 001's ActivationLayer(activation, activation_prime) is "
    "fastcnn.compat.ActivationLayer",
)
class Activation(layers.Activation):
    """Write-up 002's ``Activation(activation, activation_prime)`` (float64)."""

    def __init__(self, activation, activation_prime):
        super().__init__(activation, activation_prime, dtype=_DTYPE)
        self.activation = activation
        self.activation_prime = activation_prime


@writeup_signature(
    "002",
    "for tanh on any layer use Activation(tanh, tanh_prime)",
)
class Tanh(layers.Tanh):
    """Write-up 002's ``Tanh()`` (float64)."""

    def __init__(self):
        super().__init__(dtype=_DTYPE)


@writeup_signature(
    "002",
    "for sigmoid on any layer use Activation(sigmoid, sigmoid_prime)",
)
class Sigmoid(layers.Sigmoid):
    """Write-up 002's ``Sigmoid()`` (float64, no overflow for large |x|)."""

    def __init__(self):
        super().__init__(dtype=_DTYPE)


@writeup_signature(
    "002",
    "write-up 003's Softmax(z) function is fastcnn.compat.writeup003.Softmax",
)
class Softmax(Layer):
    """Softmax over the whole sample (for write-up 002's column vectors), with the full
    Jacobian-vector product in ``backward``."""

    def forward(self, input):
        self.output = softmax(input)
        return self.output

    def backward(self, output_gradient, learning_rate):
        s = self.output
        return s * (output_gradient - np.sum(output_gradient * s))


def predict(network, input):
    """Write-up 002's ``predict(network, input)``: run ``input`` through a list of layers."""
    output = input
    for layer in network:
        output = layer.forward(output)
    return output


def train(
    network, loss, loss_prime, x_train, y_train, epochs=1000, learning_rate=0.01, verbose=True
):
    """Write-up 002's ``train``: for each epoch, for each sample in order, forward,
    loss, backward (one update per sample); prints ``e/epochs, error=...`` (the mean
    loss) when ``verbose``."""
    for epoch in range(epochs):
        error = 0
        for x, y in zip(x_train, y_train):
            output = predict(network, x)
            error += loss(y, output)
            gradient = loss_prime(y, output)
            for layer in reversed(network):
                gradient = layer.backward(gradient, learning_rate)
        error /= len(x_train)
        if verbose:
            print(f"{epoch + 1}/{epochs}, error={error}")
