"""Layers: the write-ups' ``forward(input)`` / ``backward(output_gradient, learning_rate)``
contract, on batches, with the arithmetic in ``fastcnn.kernels``.

Shapes: a batch is (N, C, H, W) for convolution and pooling and (N, features) for
Dense; one unbatched sample ((C, H, W) or (features,)) works too and comes back
unbatched. Input of any numeric dtype is converted to the layer's dtype (float32 unless
a Network or ``astype`` says otherwise).

``backward`` returns the gradient with respect to the input and updates the layer's
parameters: it keeps the gradients in ``layer.gradients`` and hands each (parameter,
gradient) pair to ``layer.optimizer`` (plain gradient descent, ``p -= learning_rate * g``,
unless set otherwise). Gradients are summed over the batch; the loss carries the 1/N.
"""

import math

import numpy as np

from . import activations, kernels
from .optimizers import GradientDescent, Optimizer

__all__ = [
    "Layer",
    "Dense",
    "Convolutional",
    "MaxPool2D",
    "AvgPool2D",
    "Flatten",
    "Reshape",
    "Activation",
    "ReLU",
    "Tanh",
    "Sigmoid",
    "Softmax",
    "Dropout",
    "BatchNorm1D",
    "BatchNorm2D",
    "GlobalAvgPool2D",
]

_DEFAULT_OPTIMIZER = GradientDescent()
_INITIALISERS = ("he", "glorot")


def _float_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _pair(name, value, minimum=1):
    """An int or an (h, w) pair of ints >= minimum, as a tuple."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else value
    try:
        pair = tuple(pair)
    except TypeError:
        pair = (value,)
    if len(pair) != 2 or any(
        isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum
        for v in pair
    ):
        raise ValueError(f"{name} must be an int >= {minimum} or a pair of them, got {value!r}")
    return (int(pair[0]), int(pair[1]))


def _sample_shape(name, shape, rank):
    """A per-sample shape (ints >= 1) of the given rank; an int counts as (int,)."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError:
        shape = (shape,)
    if len(shape) != rank or any(
        isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in shape
    ):
        raise ValueError(f"{name} must be {rank} positive int(s) for one sample, got {shape!r}")
    return tuple(int(v) for v in shape)


def _output_length(axis, length, window, stride, padding):
    # output = floor((input + 2 padding - window) / stride) + 1
    if length + 2 * padding < window:
        raise ValueError(
            f"the window {window} is larger than the padded input {length + 2 * padding} "
            f"along {axis}"
        )
    return (length + 2 * padding - window) // stride + 1


def _initial_weights(rng, init, shape, fan_in, fan_out, dtype):
    """He normal (for layers followed by ReLU) or Glorot uniform, drawn in float64 so a
    seed gives the same numbers in float32 and float64."""
    if init == "he":
        weights = rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)
    else:
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        weights = rng.uniform(-limit, limit, shape)
    return weights.astype(dtype)


def _check_init(init):
    if init is not None and init not in _INITIALISERS:
        raise ValueError(f"init must be None, 'he' or 'glorot', got {init!r}")
    return init


def _batched(layer, x, sample_rank, expected):
    """(batch, unbatched?) for input of one sample (rank sample_rank) or a batch."""
    if x.ndim == sample_rank + 1:
        return x, False
    if x.ndim == sample_rank:
        return x[None], True
    raise ValueError(
        f"{type(layer).__name__} expects a batch {expected} or one sample without N, "
        f"got an array of shape {x.shape}"
    )


class Layer:
    """Base class of every layer, the write-ups' contract.

    Subclasses define ``forward(input)`` and ``backward(output_gradient, learning_rate)``
    (or the other write-up's ``forward_propagation`` / ``backward_propagation``: either
    name works and the other is made to match). A layer with parameters exposes them in
    ``parameters`` (name -> array) and, in ``backward``, calls
    ``self.update_parameters({name: gradient}, learning_rate)``.
    """

    training = True
    dtype = np.dtype(np.float32)
    # Whether backward computes d loss / d input: a Network's first layer need
    # not (fit turns it off there; backward then returns None).
    input_gradient = True

    def __init__(self):
        self.input = None
        self.output = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, alias in (
            ("forward", "forward_propagation"),
            ("backward", "backward_propagation"),
        ):
            own = cls.__dict__
            if alias in own and name not in own:
                setattr(cls, name, own[alias])
            elif name in own and alias not in own:
                setattr(cls, alias, own[name])

    def forward(self, input):
        """Return the layer's output for ``input``."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward(input)")

    def backward(self, output_gradient, learning_rate):
        """Update the parameters and return d loss / d input."""
        raise NotImplementedError(
            f"{type(self).__name__} does not define backward(output_gradient, learning_rate)"
        )

    forward_propagation = forward
    backward_propagation = backward

    @property
    def parameters(self):
        """Name -> parameter array (empty for a layer without parameters)."""
        return {}

    @property
    def gradients(self):
        """Name -> the gradient computed by the last ``backward``."""
        return self.__dict__.get("_gradients", {})

    @property
    def optimizer(self):
        """The Optimizer that ``backward`` hands the gradients to."""
        return self.__dict__.get("_optimizer") or _DEFAULT_OPTIMIZER

    @optimizer.setter
    def optimizer(self, optimizer):
        if optimizer is not None and not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be an fastcnn.optimizers.Optimizer, got {optimizer!r}")
        self.__dict__["_optimizer"] = optimizer
        self.__dict__["_optimizer_state"] = {}

    def update_parameters(self, gradients, learning_rate):
        """Keep ``gradients`` (name -> array) and let the optimizer update each parameter."""
        self.__dict__["_gradients"] = gradients
        optimizer = self.optimizer
        states = self.__dict__.setdefault("_optimizer_state", {})
        for name, parameter in self.parameters.items():
            optimizer.update(parameter, gradients[name], learning_rate, states.setdefault(name, {}))

    def astype(self, dtype):
        """Compute in ``dtype`` (float32 or float64) from now on; returns the layer."""
        dtype = _float_dtype(dtype)
        if dtype != self.dtype:
            self.dtype = dtype
            for name, parameter in self.parameters.items():
                setattr(self, name, parameter.astype(dtype))
            self.__dict__["_optimizer_state"] = {}
        return self

    def config(self):
        """The constructor arguments, as a JSON-able dict."""
        return {}

    def __repr__(self):
        return f"{type(self).__name__}()"

    def _as_input(self, input):
        x = np.asarray(input)
        if x.dtype != self.dtype:
            if x.dtype.kind not in "biuf":
                raise TypeError(
                    f"{type(self).__name__} needs numeric input, got an array of dtype {x.dtype}"
                )
            x = x.astype(self.dtype)
        return x

    def _as_output_gradient(self, output_gradient):
        if self.output is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        g = np.asarray(output_gradient)
        if g.shape != self.output.shape:
            raise ValueError(
                f"{type(self).__name__}.backward got a gradient of shape {g.shape}, "
                f"but its last output had shape {self.output.shape}"
            )
        return g.astype(self.dtype, copy=False)


class Dense(Layer):
    """Fully connected: ``y = x @ weights + bias``.

    x (N, in) or (in,) -> y (N, units) or (units,); ``weights`` (in, units), ``bias``
    (units,). ``init``: "he", "glorot", or None (Glorot, or He when a Network sees a
    ReLU after this layer). ``seed`` seeds the initialisation.
    """

    def __init__(self, units, *, input_shape=None, init=None, seed=None, dtype=np.float32):
        super().__init__()
        self.units = _positive_int("units", units)
        self.init = _check_init(init)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.dtype = _float_dtype(dtype)
        self.weights = None
        self.bias = None
        self.input_shape = None
        self.output_shape = (self.units,)
        if input_shape is not None:
            self.build(input_shape)

    def build(self, input_shape):
        """Create the parameters for samples of shape (in,)."""
        self.input_shape = _sample_shape("Dense input_shape", input_shape, 1)
        (inputs,) = self.input_shape
        self.weights = _initial_weights(
            self.rng, self.init, (inputs, self.units), inputs, self.units, self.dtype
        )
        self.bias = np.zeros(self.units, self.dtype)

    @property
    def parameters(self):
        if self.weights is None:
            return {}
        return {"weights": self.weights, "bias": self.bias}

    def forward(self, input):
        x = self._as_input(input)
        batch, unbatched = _batched(self, x, 1, "(N, features)")
        if self.weights is None:
            self.build(batch.shape[1:])
        elif batch.shape[1] != self.weights.shape[0]:
            raise ValueError(
                f"Dense was built for {self.weights.shape[0]} input features, "
                f"got {batch.shape[1]} (input shape {x.shape})"
            )
        y = kernels.matmul(batch, self.weights)
        y += self.bias
        self.input = x
        self.output = y[0] if unbatched else y
        return self.output

    def backward(self, output_gradient, learning_rate):
        g = self._as_output_gradient(output_gradient)
        x = self.input
        if x.ndim == 1:
            x, g = x[None], g[None]
        grad_weights = kernels.matmul(x, g, transpose_a=True)
        grad_bias = g.sum(axis=0)
        grad_x = kernels.matmul(g, self.weights, transpose_b=True)
        self.update_parameters({"weights": grad_weights, "bias": grad_bias}, learning_rate)
        return grad_x[0] if self.input.ndim == 1 else grad_x

    def config(self):
        return {
            "units": self.units,
            "input_shape": list(self.input_shape) if self.input_shape else None,
            "init": self.init,
            "seed": self.seed,
        }

    def __repr__(self):
        return f"Dense({self.units})"


class Convolutional(Layer):
    """2-D correlation over every input channel, plus one bias per output channel.

    x (N, C, H, W) or (C, H, W) -> y (N, depth, Ho, Wo) or (depth, Ho, Wo), with
    Ho = (H + 2 padding - kh) // stride + 1. ``kernels`` (depth, C, kh, kw), ``biases``
    (depth,). ``kernel_size``, ``stride`` and ``padding`` (zeros) are ints or (h, w) pairs.
    """

    def __init__(
        self,
        depth,
        kernel_size,
        stride=1,
        padding=0,
        *,
        input_shape=None,
        init=None,
        seed=None,
        dtype=np.float32,
    ):
        super().__init__()
        self.depth = _positive_int("depth", depth)
        self.kernel_size = _pair("kernel_size", kernel_size)
        self.stride = _pair("stride", stride)
        self.padding = _pair("padding", padding, minimum=0)
        self.init = _check_init(init)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.dtype = _float_dtype(dtype)
        self.kernels = None
        self.biases = None
        self.input_shape = None
        self.output_shape = None
        if input_shape is not None:
            self.build(input_shape)

    def _output_shape(self, input_shape):
        _, height, width = input_shape
        return (
            self.depth,
            _output_length("height", height, self.kernel_size[0], self.stride[0], self.padding[0]),
            _output_length("width", width, self.kernel_size[1], self.stride[1], self.padding[1]),
        )

    def build(self, input_shape):
        """Create the parameters for samples of shape (C, H, W)."""
        input_shape = _sample_shape("Convolutional input_shape", input_shape, 3)
        self.output_shape = self._output_shape(input_shape)
        self.input_shape = input_shape
        channels = input_shape[0]
        area = self.kernel_size[0] * self.kernel_size[1]
        self.kernels = _initial_weights(
            self.rng,
            self.init,
            (self.depth, channels, *self.kernel_size),
            channels * area,
            self.depth * area,
            self.dtype,
        )
        self.biases = np.zeros(self.depth, self.dtype)

    @property
    def parameters(self):
        if self.kernels is None:
            return {}
        return {"kernels": self.kernels, "biases": self.biases}

    def forward(self, input):
        x = self._as_input(input)
        batch, unbatched = _batched(self, x, 3, "(N, C, H, W)")
        if self.kernels is None:
            self.build(batch.shape[1:])
        elif batch.shape[1] != self.kernels.shape[1]:
            raise ValueError(
                f"Convolutional was built for {self.kernels.shape[1]} input channels, "
                f"got {batch.shape[1]} (input shape {x.shape})"
            )
        y = kernels.correlate2d(batch, self.kernels, self.biases, self.stride, self.padding)
        self.input = x
        self.output = y[0] if unbatched else y
        return self.output

    def backward(self, output_gradient, learning_rate):
        g = self._as_output_gradient(output_gradient)
        x = self.input
        if x.ndim == 3:
            x, g = x[None], g[None]
        grad_kernels = kernels.correlate2d_backward_weight(
            x, g, self.kernel_size, self.stride, self.padding
        )
        grad_biases = g.sum(axis=(0, 2, 3))
        grad_x = None
        if self.input_gradient:
            grad_x = kernels.convolve2d_full(
                g, self.kernels, x.shape[2:], self.stride, self.padding
            )
            if self.input.ndim == 3:
                grad_x = grad_x[0]
        self.update_parameters({"kernels": grad_kernels, "biases": grad_biases}, learning_rate)
        return grad_x

    def config(self):
        return {
            "depth": self.depth,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "input_shape": list(self.input_shape) if self.input_shape else None,
            "init": self.init,
            "seed": self.seed,
        }

    def __repr__(self):
        text = f"Convolutional({self.depth}, kernel_size={_short(self.kernel_size)}"
        if self.stride != (1, 1):
            text += f", stride={_short(self.stride)}"
        if self.padding != (0, 0):
            text += f", padding={_short(self.padding)}"
        return text + ")"


def _short(pair):
    return pair[0] if pair[0] == pair[1] else pair


class _Pool2D(Layer):
    """Shared shape handling of the pooling layers (no padding; stride=None is size)."""

    def __init__(self, size=2, stride=None, *, input_shape=None, dtype=np.float32):
        super().__init__()
        self.size = _pair("size", size)
        self.stride = self.size if stride is None else _pair("stride", stride)
        self.dtype = _float_dtype(dtype)
        self.input_shape = None
        self.output_shape = None
        if input_shape is not None:
            self.build(input_shape)

    def build(self, input_shape):
        """Check and record samples of shape (C, H, W)."""
        channels, height, width = _sample_shape(
            f"{type(self).__name__} input_shape", input_shape, 3
        )
        self.output_shape = (
            channels,
            _output_length("height", height, self.size[0], self.stride[0], 0),
            _output_length("width", width, self.size[1], self.stride[1], 0),
        )
        self.input_shape = (channels, height, width)

    def _input_batch(self, input):
        x = self._as_input(input)
        batch, unbatched = _batched(self, x, 3, "(N, C, H, W)")
        if batch.shape[1:] != self.input_shape:
            self.build(batch.shape[1:])
        return x, batch, unbatched

    def config(self):
        return {
            "size": list(self.size),
            "stride": list(self.stride),
            "input_shape": list(self.input_shape) if self.input_shape else None,
        }

    def __repr__(self):
        text = f"{type(self).__name__}({_short(self.size)}"
        if self.stride != self.size:
            text += f", stride={_short(self.stride)}"
        return text + ")"


class MaxPool2D(_Pool2D):
    """The maximum of each (size) window, moved by ``stride`` (default: ``size``).

    x (N, C, H, W) or (C, H, W) -> y (N, C, Ho, Wo), Ho = (H - size) // stride + 1.
    The gradient goes to the first maximum of each window (added up where windows
    overlap).
    """

    def forward(self, input):
        x, batch, unbatched = self._input_batch(input)
        y, self._argmax = kernels.maxpool2d(batch, self.size, self.stride)
        self.input = x
        self.output = y[0] if unbatched else y
        return self.output

    def backward(self, output_gradient, learning_rate):
        g = self._as_output_gradient(output_gradient)
        unbatched = self.input.ndim == 3
        if unbatched:
            g = g[None]
        grad_x = kernels.maxpool2d_backward(g, self._argmax, self.input.shape[-2:])
        return grad_x[0] if unbatched else grad_x


class AvgPool2D(_Pool2D):
    """The mean of each (size) window, moved by ``stride`` (default: ``size``).

    x (N, C, H, W) or (C, H, W) -> y (N, C, Ho, Wo), Ho = (H - size) // stride + 1.
    """

    def forward(self, input):
        x, batch, unbatched = self._input_batch(input)
        y = kernels.avgpool2d(batch, self.size, self.stride)
        self.input = x
        self.output = y[0] if unbatched else y
        return self.output

    def backward(self, output_gradient, learning_rate):
        g = self._as_output_gradient(output_gradient)
        unbatched = self.input.ndim == 3
        if unbatched:
            g = g[None]
        grad_x = kernels.avgpool2d_backward(g, self.input.shape[-2:], self.size, self.stride)
        return grad_x[0] if unbatched else grad_x


class Flatten(Layer):
    """(N, ...) -> (N, features). The first input is taken as a batch unless the layer
    was built with ``input_shape``; after that, an input of exactly that shape is one
    sample and comes back as (features,)."""

    def __init__(self, *, input_shape=None, dtype=np.float32):
        super().__init__()
        self.dtype = _float_dtype(dtype)
        self.input_shape = None
        self.output_shape = None
        if input_shape is not None:
            self.build(input_shape)

    def build(self, input_shape):
        """Record the shape of one sample."""
        shape = tuple(input_shape) if np.ndim(input_shape) else (input_shape,)
        self.input_shape = _sample_shape("Flatten input_shape", shape, len(shape))
        self.output_shape = (math.prod(self.input_shape),)

    def forward(self, input):
        x = self._as_input(input)
        self.input = x
        if self.input_shape is not None and x.shape == self.input_shape:
            self.output = x.reshape(-1)
            return self.output
        if x.ndim < 2:
            raise ValueError(f"Flatten expects a batch (N, ...), got an array of shape {x.shape}")
        if self.input_shape is None:
            self.build(x.shape[1:])
        self.output = x.reshape(len(x), -1)
        return self.output

    def backward(self, output_gradient, learning_rate):
        return self._as_output_gradient(output_gradient).reshape(self.input.shape)

    def config(self):
        return {"input_shape": list(self.input_shape) if self.input_shape else None}


class Reshape(Layer):
    """Reshape each sample to ``shape``: (N, ...) -> (N, *shape), or one sample to
    ``shape``. An input whose size per sample does not fit is an error."""

    def __init__(self, shape, *, input_shape=None, dtype=np.float32):
        super().__init__()
        shape = tuple(shape) if np.ndim(shape) else (shape,)
        self.shape = _sample_shape("Reshape shape", shape, len(shape))
        self.dtype = _float_dtype(dtype)
        self.input_shape = None
        self.output_shape = self.shape
        if input_shape is not None:
            self.build(input_shape)

    def build(self, input_shape):
        """Record (and check) the shape of one input sample."""
        shape = tuple(input_shape) if np.ndim(input_shape) else (input_shape,)
        shape = _sample_shape("Reshape input_shape", shape, len(shape))
        if math.prod(shape) != math.prod(self.shape):
            raise ValueError(
                f"Reshape cannot turn samples of shape {shape} ({math.prod(shape)} values) "
                f"into {self.shape} ({math.prod(self.shape)} values)"
            )
        self.input_shape = shape

    def forward(self, input):
        x = self._as_input(input)
        self.input = x
        size = math.prod(self.shape)
        if x.shape == self.input_shape or (
            self.input_shape is None and x.size == size and math.prod(x.shape[1:]) != size
        ):
            self.output = x.reshape(self.shape)
            return self.output
        if x.ndim < 1 or math.prod(x.shape[1:]) != size:
            raise ValueError(
                f"Reshape to {self.shape} ({size} values per sample) cannot take an input "
                f"of shape {x.shape}"
            )
        if self.input_shape is None:
            self.build(x.shape[1:])
        self.output = x.reshape(len(x), *self.shape)
        return self.output

    def backward(self, output_gradient, learning_rate):
        return self._as_output_gradient(output_gradient).reshape(self.input.shape)

    def config(self):
        return {
            "shape": list(self.shape),
            "input_shape": list(self.input_shape) if self.input_shape else None,
        }

    def __repr__(self):
        return f"Reshape({self.shape})"


class Activation(Layer):
    """An element-wise function: ``y = f(x)``, ``backward`` returns ``g * f_prime(x)``.

    Any shape; the output has the input's shape.
    """

    def __init__(self, f, f_prime, *, dtype=np.float32):
        super().__init__()
        if not callable(f) or not callable(f_prime):
            raise TypeError("Activation needs two functions, f and f_prime")
        self.f = f
        self.f_prime = f_prime
        self.dtype = _float_dtype(dtype)

    def forward(self, input):
        x = self._as_input(input)
        self.input = x
        self.output = np.asarray(self.f(x), dtype=self.dtype)
        return self.output

    def derivative(self):
        """f'(x) at the last input, element-wise."""
        return self.f_prime(self.input)

    def backward(self, output_gradient, learning_rate):
        g = self._as_output_gradient(output_gradient)
        return np.asarray(g * self.derivative(), dtype=self.dtype)

    def config(self):
        return {"f": self.f.__name__, "f_prime": self.f_prime.__name__}

    def __repr__(self):
        return f"Activation({self.f.__name__}, {self.f_prime.__name__})"


class ReLU(Activation):
    """max(x, 0); its gradient is 0 where x <= 0."""

    def __init__(self, *, dtype=np.float32):
        super().__init__(activations.relu, activations.relu_prime, dtype=dtype)

    def derivative(self):
        return self.input > 0

    def config(self):
        return {}

    def __repr__(self):
        return "ReLU()"


class Tanh(Activation):
    """tanh(x); the derivative 1 - y^2 is taken from the output."""

    def __init__(self, *, dtype=np.float32):
        super().__init__(activations.tanh, activations.tanh_prime, dtype=dtype)

    def derivative(self):
        return 1 - self.output * self.output

    def config(self):
        return {}

    def __repr__(self):
        return "Tanh()"


class Sigmoid(Activation):
    """1 / (1 + exp(-x)), without overflow; the derivative y (1 - y) is taken from the
    output."""

    def __init__(self, *, dtype=np.float32):
        super().__init__(activations.sigmoid, activations.sigmoid_prime, dtype=dtype)

    def derivative(self):
        return self.output * (1 - self.output)

    def config(self):
        return {}

    def __repr__(self):
        return "Sigmoid()"


class Softmax(Layer):
    """softmax over the last axis: (N, K) or (K,) -> probabilities of the same shape.

    ``backward`` is the full Jacobian-vector product, s * (g - sum(g * s)), not an
    element-wise derivative. For training a classifier, prefer no Softmax layer and the
    fused ``softmax_cross_entropy`` loss on the logits.
    """

    def __init__(self, *, dtype=np.float32):
        super().__init__()
        self.dtype = _float_dtype(dtype)

    def forward(self, input):
        x = self._as_input(input)
        self.input = x
        self.output = activations.softmax(x)
        return self.output

    def backward(self, output_gradient, learning_rate):
        g = self._as_output_gradient(output_gradient)
        s = self.output
        return s * (g - np.sum(g * s, axis=-1, keepdims=True))


class Dropout(Layer):
    """Inverted dropout: while training, each value is zeroed with probability ``rate``
    and the rest are scaled by 1 / (1 - rate); when not training (``predict``,
    ``evaluate``) it passes the input through. Any shape."""

    def __init__(self, rate, *, seed=None, dtype=np.float32):
        super().__init__()
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.dtype = _float_dtype(dtype)
        self.mask = None

    def forward(self, input):
        x = self._as_input(input)
        self.input = x
        if self.training and self.rate > 0:
            keep = self.rng.random(x.shape, dtype=self.dtype) >= self.rate
            self.mask = keep.astype(self.dtype) / self.dtype.type(1 - self.rate)
            self.output = x * self.mask
        else:
            self.mask = None
            self.output = x
        return self.output

    def backward(self, output_gradient, learning_rate):
        g = self._as_output_gradient(output_gradient)
        return g if self.mask is None else g * self.mask

    def config(self):
        return {"rate": self.rate, "seed": self.seed}

    def __repr__(self):
        return f"Dropout({self.rate})"


class _BatchNorm(Layer):
    """Shared by BatchNorm1D and BatchNorm2D: parameters, buffers, the two modes."""

    _sample_rank = None  # 1 for (features,), 3 for (C, H, W)
    _layout = None

    def __init__(self, momentum=0.1, eps=1e-5, *, input_shape=None, dtype=np.float32):
        super().__init__()
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float, np.floating)):
            raise TypeError(f"momentum must be a number, got {momentum!r}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {momentum!r}")
        if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)):
            raise TypeError(f"eps must be a number, got {eps!r}")
        if not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"eps must be a positive finite number, got {eps!r}")
        self.momentum = float(momentum)
        self.eps = float(eps)
        self.dtype = _float_dtype(dtype)
        self.gamma = None
        self.beta = None
        self.running_mean = None
        self.running_var = None
        self.num_batches_tracked = 0
        self.input_shape = None
        self.output_shape = None
        if input_shape is not None:
            self.build(input_shape)

    def build(self, input_shape):
        """Create gamma (ones), beta (zeros), running_mean (zeros) and running_var (ones)
        for samples of the given shape; its first entry is the channel count."""
        self.input_shape = _sample_shape(
            f"{type(self).__name__} input_shape", input_shape, self._sample_rank
        )
        self.output_shape = self.input_shape
        channels = self.input_shape[0]
        self.gamma = np.ones(channels, self.dtype)
        self.beta = np.zeros(channels, self.dtype)
        self.running_mean = np.zeros(channels, self.dtype)
        self.running_var = np.ones(channels, self.dtype)
        self.num_batches_tracked = 0

    @property
    def parameters(self):
        if self.gamma is None:
            return {}
        return {"gamma": self.gamma, "beta": self.beta}

    @property
    def buffers(self):
        """Name -> array of the state that is saved but not trained: the running
        statistics, (C,) each."""
        if self.running_mean is None:
            return {}
        return {"running_mean": self.running_mean, "running_var": self.running_var}

    def astype(self, dtype):
        super().astype(dtype)
        for name, buffer in self.buffers.items():
            setattr(self, name, buffer.astype(self.dtype, copy=False))
        return self

    def forward(self, input):
        x = self._as_input(input)
        batch, unbatched = _batched(self, x, self._sample_rank, self._layout)
        if self.gamma is None:
            self.build(batch.shape[1:])
        elif batch.shape[1] != len(self.gamma):
            raise ValueError(
                f"{type(self).__name__} was built for {len(self.gamma)} channels, "
                f"got {batch.shape[1]} (input shape {x.shape})"
            )
        if self.training:
            y, mean, var = kernels.batchnorm_forward(batch, self.gamma, self.beta, self.eps)
            self._update_running_statistics(mean, var, batch.size // batch.shape[1])
        else:
            mean, var = self.running_mean.copy(), self.running_var.copy()
            y = kernels.batchnorm_inference(batch, self.gamma, self.beta, mean, var, self.eps)
        # Backward needs the statistics this forward used, and whether they were x's own.
        self._statistics = (mean, var, self.training)
        self.input = x
        self.output = y[0] if unbatched else y
        return self.output

    def _update_running_statistics(self, mean, var, count):
        # As torch.nn.BatchNorm2d: running = (1 - momentum) * running + momentum * batch,
        # with the unbiased variance (count / (count - 1)); normalising uses the biased one.
        unbiased = var * self.dtype.type(count / (count - 1))
        keep = self.dtype.type(1 - self.momentum)
        momentum = self.dtype.type(self.momentum)
        self.running_mean *= keep
        self.running_mean += momentum * mean
        self.running_var *= keep
        self.running_var += momentum * unbiased
        self.num_batches_tracked += 1

    def backward(self, output_gradient, learning_rate):
        g = self._as_output_gradient(output_gradient)
        x = self.input
        unbatched = x.ndim == self._sample_rank
        if unbatched:
            x, g = x[None], g[None]
        mean, var, training = self._statistics
        grad_x, grad_gamma, grad_beta = kernels.batchnorm_backward(
            g, x, self.gamma, mean, var, self.eps, training
        )
        self.update_parameters({"gamma": grad_gamma, "beta": grad_beta}, learning_rate)
        return grad_x[0] if unbatched else grad_x

    def config(self):
        return {
            "momentum": self.momentum,
            "eps": self.eps,
            "input_shape": list(self.input_shape) if self.input_shape else None,
        }

    def __repr__(self):
        arguments = []
        if self.momentum != 0.1:
            arguments.append(f"momentum={self.momentum}")
        if self.eps != 1e-5:
            arguments.append(f"eps={self.eps}")
        return f"{type(self).__name__}({', '.join(arguments)})"


class BatchNorm2D(_BatchNorm):
    """Batch normalisation per channel over N, H and W (Ioffe & Szegedy 2015), with
    torch.nn.BatchNorm2d's semantics.

    x (N, C, H, W) or (C, H, W) -> y of the same shape,
    ``y = (x - mean) / sqrt(var + eps) * gamma + beta`` per channel. While training,
    mean and var are the batch's (var biased) and the buffers follow them:
    ``running = (1 - momentum) * running + momentum * batch`` (the unbiased variance
    for ``running_var``), counted in ``num_batches_tracked``; when not training
    (``predict``, ``evaluate``) ``running_mean`` and ``running_var`` are used.
    Parameters ``gamma`` (ones) and ``beta`` (zeros), buffers ``running_mean``
    (zeros) and ``running_var`` (ones), all (C,). Training on a batch with one value
    per channel (N*H*W = 1) is a ValueError, as in PyTorch.
    """

    _sample_rank = 3
    _layout = "(N, C, H, W)"


class BatchNorm1D(_BatchNorm):
    """Batch normalisation per feature over the batch (Ioffe & Szegedy 2015), with
    torch.nn.BatchNorm1d's semantics on (N, features) input.

    x (N, features) or (features,) -> y of the same shape; everything else as in
    BatchNorm2D, with one channel per feature. Training needs N >= 2 (one sample is a
    ValueError, as in PyTorch).
    """

    _sample_rank = 1
    _layout = "(N, features)"


class GlobalAvgPool2D(Layer):
    """The mean of each channel's whole (H, W) plane: x (N, C, H, W) -> y (N, C), or
    (C, H, W) -> (C,). Backward spreads each gradient evenly: g / (H * W) per pixel."""

    def __init__(self, *, input_shape=None, dtype=np.float32):
        super().__init__()
        self.dtype = _float_dtype(dtype)
        self.input_shape = None
        self.output_shape = None
        if input_shape is not None:
            self.build(input_shape)

    def build(self, input_shape):
        """Record samples of shape (C, H, W)."""
        self.input_shape = _sample_shape("GlobalAvgPool2D input_shape", input_shape, 3)
        self.output_shape = self.input_shape[:1]

    def forward(self, input):
        x = self._as_input(input)
        batch, _ = _batched(self, x, 3, "(N, C, H, W)")
        if batch.shape[1:] != self.input_shape:
            self.build(batch.shape[1:])
        self.input = x
        self.output = x.mean(axis=(-2, -1), dtype=self.dtype)
        return self.output

    def backward(self, output_gradient, learning_rate):
        g = self._as_output_gradient(output_gradient)
        height, width = self.input.shape[-2:]
        share = g / self.dtype.type(height * width)
        return np.ascontiguousarray(np.broadcast_to(share[..., None, None], self.input.shape))

    def config(self):
        return {"input_shape": list(self.input_shape) if self.input_shape else None}
