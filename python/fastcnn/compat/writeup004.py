"""Write-up 004's layers (Fashion-MNIST CNN, compared with Keras) on fastcnn's kernels.

``ConvLayer``, ``ReLU``, ``MaxPool`` and ``Output`` keep the write-up's signatures,
methods (``forward(input)``, ``backprop(d_L_d_out[, learn_rate])``), attribute names
(``kernels``, ``bias``, ``weights``, ``prev_input``, ...) and initialisation (the same
``np.random.randn`` draws in the same order, so ``np.random.seed`` gives the write-up's
weights). They take one sample, (C, H, W) images, and compute in float64, as the
write-up does; the write-up's ``SimpleCNN`` and its ``train`` loop run on them
unchanged. The convolutions and the pooling run in ``fastcnn.kernels``.

The write-up's conventions, kept:

- ``ConvLayer(input_shape, kernel_size=5, num_kernels=6, padding=0)``: ``padding`` is
  the value the border is filled with, not its width; the width is always
  ``kernel_size // 2`` on each side and the output is (num_kernels, H, W) (with an even
  kernel the last row and column of windows are dropped to keep that size).
- Its bias is untied: ``bias`` has the output's shape (num_kernels, H, W), one value
  per output position, initialised ``randn / (h * w)`` where ``h = H + kernel_size - 1``.
- ``backprop`` returns the input gradient computed with the kernels from before the
  update, then updates ``bias`` and ``kernels`` in place (plain gradient descent).
- ``Output`` flattens its input, applies ``weights`` (input_len, nodes) and ``bias``
  (nodes,) and returns the softmax; ``backprop`` takes the gradient with respect to
  those probabilities.

Where the write-up's code is wrong, the result here is the correct one; the write-up's
network and training loop give the same values either way:

- ``Output.forward`` subtracts the largest total before ``exp`` (the write-up's
  softmax overflows to nan once a total passes about 709).
- ``Output.backprop`` applies the full softmax Jacobian to the whole gradient; the
  write-up's uses only the first nonzero entry (right for its one-hot cross-entropy
  gradient, wrong for any other) and returns None for an all-zero gradient, where this
  returns zeros.
- ``ConvLayer.backprop`` with an even ``kernel_size`` returns the true input gradient;
  the write-up's full convolution is then shifted by one pixel (odd kernels, which the
  write-up uses, agree exactly).
- ``MaxPool.backprop`` sends each window's gradient to its first maximum in row-major
  order (PyTorch's and fastcnn's convention); the write-up's copies it to every input
  equal to the maximum, which counts a tied window's gradient several times. After the
  write-up's ReLU the ties are windows of zeros, whose gradient the ReLU then drops.

Bad input raises ValueError (wrong shape) or TypeError (a wrong-signature call names
the write-up's signature).
"""

import numpy as np

from .. import kernels
from ._signatures import writeup_signature

__all__ = ["ConvLayer", "ReLU", "MaxPool", "Output"]

_DTYPE = np.float64


def _sample(layer, input, expected_shape=None):
    """input as a float64 (C, H, W) array, of ``expected_shape`` when given."""
    x = np.asarray(input, dtype=_DTYPE)
    if x.ndim != 3 or (expected_shape is not None and x.shape != tuple(expected_shape)):
        wanted = expected_shape if expected_shape is not None else "(C, H, W)"
        raise ValueError(
            f"{type(layer).__name__}.forward takes one sample of shape {wanted} "
            f"(write-up 004 feeds one image at a time), got an array of shape {x.shape}"
        )
    return x


def _gradient(layer, d_L_d_out, shape):
    g = np.asarray(d_L_d_out, dtype=_DTYPE)
    if g.shape != tuple(shape):
        raise ValueError(
            f"{type(layer).__name__}.backprop expects d_L_d_out of the output's shape "
            f"{tuple(shape)}, got {g.shape}"
        )
    return g


@writeup_signature(
    "004",
    "write-up 002's Convolutional(input_shape, kernel_size, depth) is "
    "fastcnn.compat.Convolutional, write-up 001's ConvolutionalLayer(filters_count, "
    "filter_shape, padding, stride) fastcnn.compat.ConvolutionalLayer",
)
class ConvLayer:
    """Write-up 004's ``ConvLayer(input_shape, kernel_size=5, num_kernels=6, padding=0)``.

    ``forward(input)``: one (C, H, W) sample, ``input_shape``, -> (num_kernels, H, W):
    the input is padded with ``kernel_size // 2`` rows and columns of the value
    ``padding`` on each side and cross-correlated with ``kernels`` (num_kernels, C,
    kernel_size, kernel_size), plus ``bias`` (num_kernels, H, W). ``prev_input`` keeps the
    padded input and ``output`` the result.

    ``backprop(d_L_d_out, learn_rate)``: d_L_d_out (num_kernels, H, W) -> d_L_d_input
    (C, H, W), computed with the current kernels; then ``bias -= learn_rate * d_L_d_out``
    and ``kernels -= learn_rate * d_L_d_kernels`` in place.

    Raises ValueError when an input or gradient has another shape.
    """

    def __init__(self, input_shape, kernel_size=5, num_kernels=6, padding=0):
        if np.ndim(input_shape) != 1 or len(input_shape) != 3:
            raise ValueError(
                f"ConvLayer's input_shape is one sample's (C, H, W), got {input_shape!r}; "
                "for grayscale images that is (1, H, W)"
            )
        input_depth, input_height, input_width = input_shape
        self.d = input_depth
        self.h = input_height + kernel_size - 1
        self.w = input_width + kernel_size - 1
        self.input_shape = input_shape
        self.padding = padding
        self.num_kernels = num_kernels
        self.kernel_size = kernel_size
        self.pad_size = kernel_size // 2
        self.kernel_shape = (self.num_kernels, self.d, self.kernel_size, self.kernel_size)
        self.bias_shape = (
            self.num_kernels, self.h - self.kernel_size + 1, self.w - self.kernel_size + 1
        )
        # the write-up's draws, in its order, so np.random.seed gives its weights
        self.kernels = np.random.randn(*self.kernel_shape) / (self.kernel_size * self.kernel_size)
        self.bias = np.random.randn(*self.bias_shape) / (self.h * self.w)

    def __repr__(self):
        return (
            f"ConvLayer(input_shape={tuple(self.input_shape)}, kernel_size={self.kernel_size}, "
            f"num_kernels={self.num_kernels}, padding={self.padding})"
        )

    def _windows_read(self):
        # the part of prev_input that windows read: (d, h, w); with an even kernel the
        # padded input has one more row and column, which no window reaches
        return self.prev_input[None, :, : self.h, : self.w]

    def forward(self, input):
        x = _sample(self, input, self.input_shape)
        p = self.pad_size
        self.prev_input = np.pad(x, ((0, 0), (p, p), (p, p)), constant_values=self.padding)
        self.output = kernels.correlate2d(self._windows_read(), self.kernels)[0]
        self.output += self.bias
        return self.output

    def backprop(self, d_L_d_out, learn_rate):
        g = _gradient(self, d_L_d_out, self.bias_shape)
        x = self._windows_read()
        d_L_d_kernels = kernels.correlate2d_backward_weight(x, g[None], self.kernel_size)
        # gradient w.r.t. the padded input, then the part that is the input itself
        d_L_d_padded = kernels.convolve2d_full(g[None], self.kernels, (self.h, self.w))[0]
        p = self.pad_size
        d_L_d_input = d_L_d_padded[:, p : p + self.bias_shape[1], p : p + self.bias_shape[2]]
        self.bias -= learn_rate * g
        self.kernels -= learn_rate * d_L_d_kernels
        return np.ascontiguousarray(d_L_d_input)


@writeup_signature("004", "write-up 003's ReLU(z) function is fastcnn.compat.writeup003.ReLU")
class ReLU:
    """Write-up 004's ``ReLU()``: ``forward(input)`` -> max(0, input), kept in
    ``prev_output``; ``backprop(d_L_d_out)`` -> d_L_d_out where prev_output > 0, else 0.
    Any shape; float64."""

    def __init__(self):
        pass

    def __repr__(self):
        return "ReLU()"

    def forward(self, input):
        self.prev_output = np.maximum(0, np.asarray(input, dtype=_DTYPE))
        return self.prev_output

    def backprop(self, d_L_d_out):
        g = _gradient(self, d_L_d_out, self.prev_output.shape)
        return np.where(self.prev_output > 0, g, 0.0)


@writeup_signature(
    "004",
    "write-up 001's MaxPoolingLayer(pool_shape, stride) is fastcnn.compat.MaxPoolingLayer",
)
class MaxPool:
    """Write-up 004's ``MaxPool(pool_size=2)``: windows of pool_size x pool_size,
    pool_size apart.

    ``forward(input)``: (C, H, W) -> (C, H // pool_size, W // pool_size), the maximum of
    each window (rows and columns past the last whole window are left out);
    ``prev_input`` keeps the input. ``backprop(d_L_d_out)``: that output's shape ->
    (C, H, W), each gradient at its window's first maximum (row-major), zeros elsewhere.

    Raises ValueError for a sample that is not (C, H, W), smaller than one window, or a
    gradient of another shape.
    """

    def __init__(self, pool_size=2):
        self.size = pool_size

    def __repr__(self):
        return f"MaxPool(pool_size={self.size})"

    def forward(self, input):
        self.prev_input = _sample(self, input)
        output, self._argmax = kernels.maxpool2d(self.prev_input[None], self.size)
        return output[0]

    def backprop(self, d_L_d_out):
        g = _gradient(self, d_L_d_out, self._argmax.shape[1:])
        return kernels.maxpool2d_backward(g[None], self._argmax, self.prev_input.shape[1:])[0]


@writeup_signature(
    "004",
    "write-up 002's Dense(input_size, output_size) is fastcnn.compat.Dense, write-up "
    "001's FCLayer(output_size) fastcnn.compat.FCLayer",
)
class Output:
    """Write-up 004's ``Output(input_len, nodes)``: a dense layer with softmax.

    ``forward(input)``: any array of input_len values -> (nodes,) probabilities,
    softmax(input.flatten() @ weights + bias); ``weights`` is (input_len, nodes), drawn
    ``randn / input_len`` as in the write-up, ``bias`` (nodes,) zeros. ``prev_input``,
    ``prev_input_shape`` and ``prev_totals`` keep the flattened input, its shape and the
    totals.

    ``backprop(d_L_d_out, learn_rate)``: d_L_d_out (nodes,), the gradient with respect
    to the probabilities -> d_L_d_input of the input's shape, computed with the current
    weights; then ``weights`` and ``bias`` take a gradient-descent step in place.

    Raises ValueError when the input does not have input_len values or the gradient is
    not (nodes,).
    """

    def __init__(self, input_len, nodes):
        self.weights = np.random.randn(input_len, nodes) / input_len
        self.bias = np.zeros(nodes)

    def __repr__(self):
        return f"Output(input_len={self.weights.shape[0]}, nodes={self.weights.shape[1]})"

    def forward(self, input):
        input = np.asarray(input, dtype=_DTYPE)
        if input.size != self.weights.shape[0]:
            raise ValueError(
                f"Output.forward takes {self.weights.shape[0]} values (input_len), got an "
                f"array of shape {input.shape}"
            )
        flat = input.reshape(-1)
        totals = flat @ self.weights + self.bias
        self.prev_input_shape = input.shape
        self.prev_input = flat
        self.prev_totals = totals
        exp = np.exp(totals - totals.max())
        self._probabilities = exp / np.sum(exp)
        return self._probabilities

    def backprop(self, d_L_d_out, learn_rate):
        g = _gradient(self, d_L_d_out, self.bias.shape)
        s = self._probabilities
        # the softmax Jacobian (diag(s) - s s^T) times g
        d_L_d_t = s * (g - g @ s)
        d_L_d_inputs = self.weights @ d_L_d_t
        self.weights -= learn_rate * np.outer(self.prev_input, d_L_d_t)
        self.bias -= learn_rate * d_L_d_t
        return d_L_d_inputs.reshape(self.prev_input_shape)
