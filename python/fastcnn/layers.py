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
import weakref

import numpy as np

from . import _checks, activations, kernels
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


def _initial_weights(rng, init, shape, fan_in, fan_out, dtype):
    """He normal (He et al. 2015, for layers followed by ReLU) or Glorot uniform
    (Glorot & Bengio 2010), drawn in float64 so a seed gives the same numbers in float32
    and float64."""
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


# --------------------------------------------------------------------------- one sample or a batch
#
# A layer that knows the rank of one sample (3 for (C, H, W), 1 for (features,)) decides
# from the input's rank whether it got one sample or a batch. Layers that do not know it
# (Flatten, Reshape, the activations) cannot decide: (5, 26, 26) may be one sample of 5
# feature maps or 5 samples. So the decision is made once, by the first layer that can
# make it (or by the Network, which always passes batches), and travels with the arrays:
# each layer's output is marked as one sample or a batch, and the next layer reads the mark.
# The marks are kept beside the arrays (by identity, released with them), never inside.

_marks = {}  # id(array) -> (weak reference to it, whether it is a batch)


def mark(array, batch):
    """Record that ``array`` is a batch (``batch=True``) or one sample; returns it."""
    key = id(array)
    _marks[key] = (weakref.ref(array, lambda _, key=key: _marks.pop(key, None)), batch)
    return array


def is_batch(array):
    """True (a batch), False (one sample), or None when no layer has decided."""
    entry = _marks.get(id(array))
    if entry is None or entry[0]() is not array:
        return None
    return entry[1]


class Layer:
    """Base class of every layer, the write-ups' contract.

    Subclasses define ``forward(input)`` and ``backward(output_gradient, learning_rate)``
    (or the other write-up's ``forward_propagation`` / ``backward_propagation``: either
    name works and the other is made to match). A layer with parameters exposes them in
    ``parameters`` (name -> array) and, in ``backward``, calls
    ``self.update_parameters({name: gradient}, learning_rate)``.

    What a layer tells the rest of fastcnn about itself (saving, the Network and the
    exporters ask, and never reach inside): ``parameters`` (trained), ``buffers`` (saved
    but not trained, such as running statistics), ``state_shapes(input_shape)`` (the
    shapes of both for one sample's shape, without building anything), ``load_state``,
    ``optimizer_state``, ``random_state`` (its random generator, if it has one),
    ``set_default_init`` and ``seed_from``. A layer of one's own needs none of them
    unless it has parameters.
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

    # ------------------------------------------------------------------ state

    @property
    def parameters(self):
        """Name -> parameter array (empty for a layer without parameters)."""
        return {}

    @property
    def buffers(self):
        """Name -> array of state that is saved but not trained (empty for most layers)."""
        return {}

    def state_shapes(self, input_shape):
        """Name -> shape of every parameter and buffer the layer has once built for
        samples of ``input_shape`` (a list or tuple of ints); computed, never allocated,
        so a model file's claims can be checked before anything is built. Raises
        ValueError if the layer cannot take that shape."""
        return {}

    def load_state(self, arrays):
        """Take over ``arrays`` (name -> array, as ``state_shapes`` names them) as the
        layer's parameters and buffers, converted to its dtype."""
        for name, array in arrays.items():
            setattr(self, name, np.array(array, dtype=self.dtype, order="C"))

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
        self._optimizer_state = {}

    @property
    def optimizer_state(self):
        """Parameter name -> the dict its optimizer keeps for it (momentum, Adam's
        moments and step); empty before the first step."""
        return self.__dict__.setdefault("_optimizer_state", {})

    @optimizer_state.setter
    def optimizer_state(self, states):
        self._optimizer_state = {name: dict(state) for name, state in states.items()}

    @property
    def random_state(self):
        """The state of the layer's random generator as a JSON-able dict (NumPy's
        ``bit_generator.state``), or None for a layer without randomness."""
        rng = self.__dict__.get("rng")
        return None if rng is None else rng.bit_generator.state

    @random_state.setter
    def random_state(self, state):
        rng = self.__dict__.get("rng")
        if rng is None:
            raise ValueError(f"{type(self).__name__} has no random generator to restore")
        try:
            rng.bit_generator.state = state
        except (TypeError, ValueError, KeyError) as error:
            raise ValueError(f"not a {type(rng.bit_generator).__name__} state: {error}") from None

    def set_default_init(self, relu_follows):
        """Choose the initialisation left open by ``init=None``: He before a ReLU,
        else Glorot. Only layers with weights have one."""
        if getattr(self, "init", "") is None:
            self.init = "he" if relu_follows else "glorot"

    def seed_from(self, seed_sequence):
        """Seed the layer's random generator from ``seed_sequence`` (a
        np.random.SeedSequence), unless it was given a seed of its own."""
        if "rng" in self.__dict__ and getattr(self, "seed", None) is None:
            self.rng = np.random.default_rng(seed_sequence)

    def update_parameters(self, gradients, learning_rate):
        """Keep ``gradients`` (name -> array) and let the optimizer update each parameter.
        Raises TypeError / ValueError unless ``learning_rate`` is a finite number >= 0."""
        _checks.number("learning_rate", learning_rate, minimum=0)
        self.__dict__["_gradients"] = gradients
        optimizer = self.optimizer
        states = self.optimizer_state
        for name, parameter in self.parameters.items():
            optimizer.update(parameter, gradients[name], learning_rate, states.setdefault(name, {}))

    def astype(self, dtype):
        """Compute in ``dtype`` (float32 or float64) from now on; returns the layer."""
        dtype = _checks.float_dtype(dtype)
        if dtype != self.dtype:
            self.dtype = dtype
            for name, array in {**self.parameters, **self.buffers}.items():
                setattr(self, name, array.astype(dtype))
            self._optimizer_state = {}
        return self

    def config(self):
        """The constructor arguments, as a JSON-able dict."""
        return {}

    def __repr__(self):
        return f"{type(self).__name__}()"

    # ------------------------------------------------------------------ input and output

    def _as_input(self, input):
        x = np.asarray(input)
        if x.dtype != self.dtype:
            if x.dtype.kind not in "biuf":
                raise TypeError(
                    f"{type(self).__name__} needs numeric input, got an array of dtype {x.dtype}"
                )
            batch = is_batch(input)
            x = x.astype(self.dtype)
            if batch is not None:
                mark(x, batch)
        return x

    def _split_batch(self, x, sample_rank, layout):
        """(batch, unbatched) for ``x``, one sample of rank ``sample_rank`` or a batch.

        ``layout`` names the batch's axes, for example "(N, C, H, W)". An input marked by
        an earlier layer or a Network is taken as marked; a rank that does not fit the
        mark is refused, naming the missing axis."""
        marked = is_batch(x)
        if marked is None and x.ndim in (sample_rank, sample_rank + 1):
            marked = x.ndim == sample_rank + 1
        name = type(self).__name__
        if marked is True and x.ndim == sample_rank + 1:
            return x, False
        if marked is False and x.ndim == sample_rank:
            return x[None], True
        if marked is True and x.ndim == sample_rank and layout == "(N, C, H, W)":
            raise ValueError(
                f"{name} expects a batch {layout}, got an array of shape {x.shape}: the "
                "channel axis C is missing. For one-channel images add it with x[:, None] "
                "(x.reshape(N, 1, H, W))"
            )
        what = {True: "a batch", False: "one sample"}.get(marked, "an array")
        raise ValueError(
            f"{name} expects a batch {layout} or one sample without N, got {what} of shape "
            f"{x.shape}"
        )

    def _finish(self, input, output_batch, unbatched):
        """Keep ``input`` and the output (unbatched again if the input was), marked."""
        self.input = input
        self.output = mark(output_batch[0], False) if unbatched else mark(output_batch, True)
        return self.output

    def _like_input(self, output):
        """Mark a same-shaped output as its input was marked (element-wise layers)."""
        batch = is_batch(self.input)
        return output if batch is None else mark(output, batch)

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


def _image_shape(layer, shape):
    """One image sample's (C, H, W), refusing an (H, W) with the missing axis named,
    and an (H, W, C) image (channels last, as image files and some write-ups hold them:
    a last axis of 1, 3 or 4 far shorter than the other two)."""
    if np.ndim(shape) == 1 and len(shape) == 2:
        raise ValueError(
            f"{layer} takes samples (C, H, W), got samples of shape {tuple(shape)}: the "
            "channel axis C is missing. For one-channel images add it with x[:, None] "
            "(x.reshape(N, 1, H, W))"
        )
    shape = _checks.sample_shape(f"{layer} input_shape", shape, 3)
    height, width, last = shape
    if last in (1, 3, 4) and height >= 8 * last and width >= 8 * last:
        raise ValueError(
            f"{layer} takes samples (C, H, W), got samples of shape {shape}, which look like "
            "channels-last images (H, W, C): pass x.transpose(0, 3, 1, 2) (one image: "
            "x.transpose(2, 0, 1))"
        )
    return shape


def _wrong_signature(layer, write_up_form, fastcnn_form):
    """The TypeError for a write-up's constructor signature used on a fastcnn layer."""
    return TypeError(
        f"{layer}{fastcnn_form} is fastcnn's signature; {layer}{write_up_form} is the "
        f"write-ups' one, which fastcnn.compat.{layer} takes (input shapes are inferred "
        "here, or given as input_shape=...)"
    )


class Dense(Layer):
    """Fully connected: ``y = x @ weights + bias``.

    x (N, in) or (in,) -> y (N, units) or (units,); ``weights`` (in, units), ``bias``
    (units,). ``init``: "he", "glorot", or None (Glorot, or He when a Network sees a
    ReLU after this layer). ``seed`` seeds the initialisation. Raises TypeError for
    write-up 001/002's ``Dense(input_size, output_size)`` (that is ``fastcnn.compat``'s).
    """

    def __init__(
        self, units, *extra, input_shape=None, init=None, seed=None, dtype=np.float32
    ):
        super().__init__()
        if extra:
            raise _wrong_signature("Dense", "(input_size, output_size)", "(units)")
        self.units = _checks.positive_int("units", units)
        self.init = _check_init(init)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.dtype = _checks.float_dtype(dtype)
        self.weights = None
        self.bias = None
        self.input_shape = None
        self.output_shape = (self.units,)
        if input_shape is not None:
            self.build(input_shape)

    def compute_output_shape(self, input_shape):
        """(units,) for samples of shape (in,)."""
        _checks.sample_shape("Dense input_shape", input_shape, 1)
        return (self.units,)

    def state_shapes(self, input_shape):
        (inputs,) = _checks.sample_shape("Dense input_shape", input_shape, 1)
        return {"weights": (inputs, self.units), "bias": (self.units,)}

    def build(self, input_shape):
        """Record samples of shape (in,) and create the parameters for them, unless
        they exist already (set by hand or loaded), in which case they must fit."""
        self.input_shape = _checks.sample_shape("Dense input_shape", input_shape, 1)
        (inputs,) = self.input_shape
        _checks.fits_in_memory("Dense weights", (inputs, self.units), self.dtype)
        if self.weights is not None:
            if self.weights.shape[0] != inputs:
                raise ValueError(
                    f"Dense has weights for {self.weights.shape[0]} input features, "
                    f"got samples of {inputs}"
                )
            return
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
        batch, unbatched = self._split_batch(x, 1, "(N, features)")
        if self.weights is None:
            self.build(batch.shape[1:])
        elif batch.shape[1] != self.weights.shape[0]:
            raise ValueError(
                f"Dense was built for {self.weights.shape[0]} input features, "
                f"got {batch.shape[1]} (input shape {x.shape})"
            )
        y = kernels.matmul(batch, self.weights)
        y += self.bias
        return self._finish(x, y, unbatched)

    def backward(self, output_gradient, learning_rate):
        g = self._as_output_gradient(output_gradient)
        x = self.input
        unbatched = self.output.ndim == 1
        if unbatched:
            x, g = x[None], g[None]
        grad_weights = kernels.matmul(x, g, transpose_a=True)
        grad_bias = g.sum(axis=0)
        grad_x = None
        if self.input_gradient:
            grad_x = kernels.matmul(g, self.weights, transpose_b=True)
            if unbatched:
                grad_x = grad_x[0]
        self.update_parameters({"weights": grad_weights, "bias": grad_bias}, learning_rate)
        return grad_x

    def config(self):
        return {
            "units": self.units,
            "input_shape": list(self.input_shape) if self.input_shape else None,
            "init": self.init,
            "seed": self.seed,
        }

    def __repr__(self):
        return f"{type(self).__name__}({self.units})"


class Convolutional(Layer):
    """2-D correlation over every input channel, plus one bias per output channel.

    x (N, C, H, W) or (C, H, W) -> y (N, depth, Ho, Wo) or (depth, Ho, Wo), with
    Ho = (H + 2 padding - kh) // stride + 1. ``kernels`` (depth, C, kh, kw), ``biases``
    (depth,). ``kernel_size``, ``stride`` and ``padding`` (zeros) are ints or (h, w) pairs.

    ``depth`` is the number of output channels (write-up 002's name; PyTorch's
    ``out_channels``, Keras's ``filters``; the C++ kernels' messages say "filters", and
    write-up 001's compat layer "filters_count"). Raises TypeError for write-up 002's
    ``Convolutional(input_shape, kernel_size, depth)`` (that is ``fastcnn.compat``'s).
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
        if isinstance(depth, (tuple, list)):
            raise _wrong_signature(
                "Convolutional", "(input_shape, kernel_size, depth)",
                "(depth, kernel_size, stride=1, padding=0)",
            )
        self.depth = _checks.positive_int("depth", depth)
        self.kernel_size = _checks.pair("kernel_size", kernel_size)
        self.stride = _checks.pair("stride", stride)
        self.padding = _checks.pair("padding", padding, minimum=0)
        self.init = _check_init(init)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.dtype = _checks.float_dtype(dtype)
        self.kernels = None
        self.biases = None
        self.input_shape = None
        self.output_shape = None
        if input_shape is not None:
            self.build(input_shape)

    def compute_output_shape(self, input_shape):
        """(depth, Ho, Wo) for samples of shape (C, H, W)."""
        _, height, width = _image_shape("Convolutional", input_shape)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return (
            self.depth,
            _checks.output_length("height", height, kh, sh, ph),
            _checks.output_length("width", width, kw, sw, pw),
        )

    def state_shapes(self, input_shape):
        self.compute_output_shape(input_shape)
        return {
            "kernels": (self.depth, int(input_shape[0]), *self.kernel_size),
            "biases": (self.depth,),
        }

    def build(self, input_shape):
        """Record samples of shape (C, H, W) and create the parameters for them, unless
        they exist already (set by hand or loaded), in which case they must fit."""
        input_shape = _image_shape("Convolutional", input_shape)
        self.output_shape = self.compute_output_shape(input_shape)
        self.input_shape = input_shape
        channels = input_shape[0]
        _checks.fits_in_memory("Convolutional kernels", (self.depth, channels, *self.kernel_size),
                               self.dtype)
        if self.kernels is not None:
            if self.kernels.shape[1] != channels:
                raise ValueError(
                    f"Convolutional has kernels for {self.kernels.shape[1]} input channels, "
                    f"got samples of shape {input_shape}"
                )
            return
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
        batch, unbatched = self._split_batch(x, 3, "(N, C, H, W)")
        if self.kernels is None:
            self.build(batch.shape[1:])
        elif batch.shape[1] != self.kernels.shape[1]:
            hint = ""
            if unbatched:
                hint = (f"; if this is a batch of {x.shape[0]} images without the channel "
                        "axis, add it with x[:, None]")
            raise ValueError(
                f"Convolutional was built for {self.kernels.shape[1]} input channels, "
                f"got {batch.shape[1]} (input shape {x.shape}){hint}"
            )
        y = kernels.correlate2d(batch, self.kernels, self.biases, self.stride, self.padding)
        return self._finish(x, y, unbatched)

    def backward(self, output_gradient, learning_rate):
        g = self._as_output_gradient(output_gradient)
        x = self.input
        unbatched = self.output.ndim == 3
        if unbatched:
            x, g = x[None], g[None]
        grad_kernels, grad_biases = kernels.correlate2d_backward_weight(
            x, g, self.kernel_size, self.stride, self.padding, bias_grad=True
        )
        grad_x = None
        if self.input_gradient:
            grad_x = kernels.convolve2d_full(
                g, self.kernels, x.shape[2:], self.stride, self.padding
            )
            if unbatched:
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
        text = f"{type(self).__name__}({self.depth}, kernel_size={_short(self.kernel_size)}"
        if self.stride != (1, 1):
            text += f", stride={_short(self.stride)}"
        if self.padding != (0, 0):
            text += f", padding={_short(self.padding)}"
        return text + ")"


def _short(pair):
    return pair[0] if pair[0] == pair[1] else pair


class _ImageSampleLayer(Layer):
    """A layer without parameters on (C, H, W) samples, built from its output shape
    (``compute_output_shape``) and rebuilt when the sample shape changes."""

    def build(self, input_shape):
        """Check and record samples of shape (C, H, W)."""
        self.output_shape = self.compute_output_shape(input_shape)
        self.input_shape = tuple(int(v) for v in input_shape)

    def _input_batch(self, input):
        x = self._as_input(input)
        batch, unbatched = self._split_batch(x, 3, "(N, C, H, W)")
        if batch.shape[1:] != self.input_shape:
            self.build(batch.shape[1:])
        return x, batch, unbatched


class _Pool2D(_ImageSampleLayer):
    """Shared shape handling of the pooling layers (no padding; stride=None is size)."""

    def __init__(self, size=2, stride=None, *, input_shape=None, dtype=np.float32):
        super().__init__()
        self.size = _checks.pair("size", size)
        self.stride = self.size if stride is None else _checks.pair("stride", stride)
        self.dtype = _checks.float_dtype(dtype)
        self.input_shape = None
        self.output_shape = None
        if input_shape is not None:
            self.build(input_shape)

    def compute_output_shape(self, input_shape):
        """(C, Ho, Wo) for samples of shape (C, H, W)."""
        channels, height, width = _image_shape(type(self).__name__, input_shape)
        return (
            channels,
            _checks.output_length("height", height, self.size[0], self.stride[0], 0),
            _checks.output_length("width", width, self.size[1], self.stride[1], 0),
        )

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
        return self._finish(x, y, unbatched)

    def backward(self, output_gradient, learning_rate):
        g = self._as_output_gradient(output_gradient)
        unbatched = self.output.ndim == 3
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
        return self._finish(x, y, unbatched)

    def backward(self, output_gradient, learning_rate):
        g = self._as_output_gradient(output_gradient)
        unbatched = self.output.ndim == 3
        if unbatched:
            g = g[None]
        grad_x = kernels.avgpool2d_backward(g, self.input.shape[-2:], self.size, self.stride)
        return grad_x[0] if unbatched else grad_x


def _any_shape(name, shape):
    shape = tuple(shape) if np.ndim(shape) else (shape,)
    return _checks.sample_shape(name, shape, len(shape))


class Flatten(Layer):
    """(N, ...) -> (N, features), or one sample (...) -> (features,).

    Whether an input is one sample or a batch is read from the layer before it (a
    Convolutional or pooling layer given one (C, H, W) sample passes one sample on), or
    from ``input_shape`` once built: an input of exactly that shape is one sample.
    Otherwise the input is a batch, as inside a Network.
    """

    def __init__(self, *, input_shape=None, dtype=np.float32):
        super().__init__()
        self.dtype = _checks.float_dtype(dtype)
        self.input_shape = None
        self.output_shape = None
        if input_shape is not None:
            self.build(input_shape)

    def compute_output_shape(self, input_shape):
        """(features,) for samples of any shape."""
        return (math.prod(_any_shape("Flatten input_shape", input_shape)),)

    def build(self, input_shape):
        """Record the shape of one sample."""
        self.input_shape = _any_shape("Flatten input_shape", input_shape)
        self.output_shape = (math.prod(self.input_shape),)

    def forward(self, input):
        x = self._as_input(input)
        batch = is_batch(x)
        if batch is None:
            batch = not (self.input_shape is not None and x.shape == self.input_shape)
        if not batch:
            if self.input_shape is None:
                self.build(x.shape)
            return self._finish(x, x.reshape(1, -1), True)
        if x.ndim < 2:
            raise ValueError(f"Flatten expects a batch (N, ...), got an array of shape {x.shape}")
        if self.input_shape is None:
            self.build(x.shape[1:])
        return self._finish(x, x.reshape(len(x), -1), False)

    def backward(self, output_gradient, learning_rate):
        return self._as_output_gradient(output_gradient).reshape(self.input.shape)

    def config(self):
        return {"input_shape": list(self.input_shape) if self.input_shape else None}


class Reshape(Layer):
    """Reshape each sample to ``shape``: (N, ...) -> (N, *shape), or one sample to
    ``shape``. An input whose size per sample does not fit is an error. One sample or a
    batch is decided as in Flatten."""

    def __init__(self, shape, *, input_shape=None, dtype=np.float32):
        super().__init__()
        self.shape = _any_shape("Reshape shape", shape)
        self.dtype = _checks.float_dtype(dtype)
        self.input_shape = None
        self.output_shape = self.shape
        if input_shape is not None:
            self.build(input_shape)

    def compute_output_shape(self, input_shape):
        """``shape``, for samples of as many values."""
        shape = _any_shape("Reshape input_shape", input_shape)
        if math.prod(shape) != math.prod(self.shape):
            raise ValueError(
                f"Reshape cannot turn samples of shape {shape} ({math.prod(shape)} values) "
                f"into {self.shape} ({math.prod(self.shape)} values)"
            )
        return self.shape

    def build(self, input_shape):
        """Record (and check) the shape of one input sample."""
        self.compute_output_shape(input_shape)
        self.input_shape = _any_shape("Reshape input_shape", input_shape)

    def forward(self, input):
        x = self._as_input(input)
        size = math.prod(self.shape)
        batch = is_batch(x)
        if batch is None:
            batch = not (
                x.shape == self.input_shape
                or (self.input_shape is None and x.size == size and math.prod(x.shape[1:]) != size)
            )
        if not batch and x.size == size:
            if self.input_shape is None:
                self.build(x.shape)
            return self._finish(x, x.reshape(1, *self.shape), True)
        if x.ndim < 1 or math.prod(x.shape[1:]) != size:
            raise ValueError(
                f"Reshape to {self.shape} ({size} values per sample) cannot take "
                f"{'a batch' if batch else 'one sample'} of shape {x.shape}"
            )
        if self.input_shape is None:
            self.build(x.shape[1:])
        return self._finish(x, x.reshape(len(x), *self.shape), False)

    def backward(self, output_gradient, learning_rate):
        return self._as_output_gradient(output_gradient).reshape(self.input.shape)

    def config(self):
        return {
            "shape": list(self.shape),
            "input_shape": list(self.input_shape) if self.input_shape else None,
        }

    def __repr__(self):
        return f"{type(self).__name__}({self.shape})"


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
        self.dtype = _checks.float_dtype(dtype)

    def compute_output_shape(self, input_shape):
        """The input's shape."""
        return tuple(input_shape)

    def forward(self, input):
        x = self._as_input(input)
        self.input = x
        self.output = self._like_input(np.asarray(self.f(x), dtype=self.dtype))
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
        return f"{type(self).__name__}({self.f.__name__}, {self.f_prime.__name__})"


class ReLU(Activation):
    """max(x, 0), in one C++ pass (``kernels.relu``); its gradient is 0 where x <= 0,
    taken from the output in one C++ pass (``kernels.relu_backward``)."""

    def __init__(self, *, dtype=np.float32):
        super().__init__(activations.relu, activations.relu_prime, dtype=dtype)

    def forward(self, input):
        x = self._as_input(input)
        self.input = x
        self.output = self._like_input(kernels.relu(x))
        return self.output

    def derivative(self):
        return self.input > 0

    def backward(self, output_gradient, learning_rate):
        return kernels.relu_backward(self._as_output_gradient(output_gradient), self.output)

    def config(self):
        return {}

    def __repr__(self):
        return f"{type(self).__name__}()"


class Tanh(Activation):
    """tanh(x); the derivative 1 - y^2 is taken from the output."""

    def __init__(self, *, dtype=np.float32):
        super().__init__(activations.tanh, activations.tanh_prime, dtype=dtype)

    def derivative(self):
        return 1 - self.output * self.output

    def config(self):
        return {}

    def __repr__(self):
        return f"{type(self).__name__}()"


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
        return f"{type(self).__name__}()"


class Softmax(Layer):
    """softmax over the last axis: (N, K) or (K,) -> probabilities of the same shape.

    ``backward`` is the full Jacobian-vector product, s * (g - sum(g * s)), not an
    element-wise derivative. For training a classifier, prefer no Softmax layer and the
    fused ``softmax_cross_entropy`` loss on the logits.
    """

    def __init__(self, *, dtype=np.float32):
        super().__init__()
        self.dtype = _checks.float_dtype(dtype)

    def compute_output_shape(self, input_shape):
        """The input's shape."""
        return tuple(input_shape)

    def forward(self, input):
        x = self._as_input(input)
        self.input = x
        self.output = self._like_input(activations.softmax(x))
        return self.output

    def backward(self, output_gradient, learning_rate):
        g = self._as_output_gradient(output_gradient)
        s = self.output
        return s * (g - np.sum(g * s, axis=-1, keepdims=True))


class Dropout(Layer):
    """Inverted dropout: while training, each value is zeroed with probability ``rate``
    and the rest are scaled by 1 / (1 - rate); when not training (``predict``,
    ``evaluate``) it passes the input through. Any shape. Its random generator's state
    is saved with the network, so training continues identically after ``load``."""

    def __init__(self, rate, *, seed=None, dtype=np.float32):
        super().__init__()
        self.rate = _checks.number("Dropout rate", rate, minimum=0, below=1)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.dtype = _checks.float_dtype(dtype)
        self.mask = None

    def compute_output_shape(self, input_shape):
        """The input's shape."""
        return tuple(input_shape)

    def forward(self, input):
        x = self._as_input(input)
        self.input = x
        if self.training and self.rate > 0:
            keep = self.rng.random(x.shape, dtype=self.dtype) >= self.rate
            self.mask = keep.astype(self.dtype) / self.dtype.type(1 - self.rate)
            self.output = self._like_input(x * self.mask)
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
        return f"{type(self).__name__}({self.rate})"



class _BatchNorm(Layer):
    """Shared by BatchNorm1D and BatchNorm2D: parameters, buffers, the two modes."""

    _sample_rank = None  # 1 for (features,), 3 for (C, H, W)
    _layout = None

    def __init__(self, momentum=0.1, eps=1e-5, *, input_shape=None, dtype=np.float32):
        super().__init__()
        self.momentum = _checks.number("momentum", momentum, minimum=0, maximum=1)
        self.eps = _checks.number("eps", eps, minimum=0)
        if self.eps == 0:
            raise ValueError("eps must be a positive finite number, got 0.0")
        self.dtype = _checks.float_dtype(dtype)
        self.gamma = None
        self.beta = None
        self.running_mean = None
        self.running_var = None
        self.num_batches_tracked = 0
        self.input_shape = None
        self.output_shape = None
        if input_shape is not None:
            self.build(input_shape)

    def compute_output_shape(self, input_shape):
        """The input's shape."""
        return _checks.sample_shape(
            f"{type(self).__name__} input_shape", input_shape, self._sample_rank
        )

    def state_shapes(self, input_shape):
        channels = self.compute_output_shape(input_shape)[0]
        return {name: (channels,) for name in ("gamma", "beta", "running_mean", "running_var")}

    def build(self, input_shape):
        """Record samples of the given shape (its first entry is the channel count) and
        create gamma (ones), beta (zeros), running_mean (zeros) and running_var (ones),
        unless they exist already (set by hand or loaded), in which case they must fit."""
        self.input_shape = self.compute_output_shape(input_shape)
        self.output_shape = self.input_shape
        channels = self.input_shape[0]
        if self.gamma is not None:
            if len(self.gamma) != channels:
                raise ValueError(
                    f"{type(self).__name__} has parameters for {len(self.gamma)} channels, "
                    f"got samples of shape {self.input_shape}"
                )
            return
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

    def forward(self, input):
        x = self._as_input(input)
        batch, unbatched = self._split_batch(x, self._sample_rank, self._layout)
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
        return self._finish(x, y, unbatched)

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
        unbatched = self.output.ndim == self._sample_rank
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


class GlobalAvgPool2D(_ImageSampleLayer):
    """The mean of each channel's whole (H, W) plane: x (N, C, H, W) -> y (N, C), or
    (C, H, W) -> (C,). Backward spreads each gradient evenly: g / (H * W) per pixel."""

    def __init__(self, *, input_shape=None, dtype=np.float32):
        super().__init__()
        self.dtype = _checks.float_dtype(dtype)
        self.input_shape = None
        self.output_shape = None
        if input_shape is not None:
            self.build(input_shape)

    def compute_output_shape(self, input_shape):
        """(C,) for samples of shape (C, H, W)."""
        return _image_shape("GlobalAvgPool2D", input_shape)[:1]

    def forward(self, input):
        x, batch, unbatched = self._input_batch(input)
        return self._finish(x, batch.mean(axis=(2, 3), dtype=self.dtype), unbatched)

    def backward(self, output_gradient, learning_rate):
        g = self._as_output_gradient(output_gradient)
        height, width = self.input.shape[-2:]
        share = g / self.dtype.type(height * width)
        return np.ascontiguousarray(np.broadcast_to(share[..., None, None], self.input.shape))

    def config(self):
        return {"input_shape": list(self.input_shape) if self.input_shape else None}
