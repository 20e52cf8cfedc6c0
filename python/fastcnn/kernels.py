"""The C++ kernels: convolution, pooling and matrix multiply on NumPy arrays.

Every function has the same signature and answers as its twin in
`fastcnn.reference` (plain NumPy), which is the oracle the tests hold it to.
Arrays are NCHW, float32 or float64 (the output has the input's dtype; mixing
the two is a TypeError). ``stride``, ``padding``, ``size``, ``kernel_size``
and ``input_size`` take an int or an (h, w) pair. Any memory layout is
accepted. The work is split over ``fastcnn.get_num_threads()`` threads with
the GIL released, and the result does not depend on the thread count.

Output sizes follow ``Ho = (H + 2 * padding - kh) // stride + 1``.
"""

import numpy as np

from . import _core

__all__ = [
    "correlate2d",
    "correlate2d_backward_weight",
    "convolve2d_full",
    "maxpool2d",
    "maxpool2d_backward",
    "avgpool2d",
    "avgpool2d_backward",
    "matmul",
    "relu",
    "relu_backward",
    "softmax_cross_entropy",
    "gradient_descent_update",
    "batchnorm_forward",
    "batchnorm_inference",
    "batchnorm_backward",
]


def correlate2d(x, w, bias=None, stride=1, padding=0, relu=False):
    """Cross-correlate a batch with a filter bank (the conv forward pass).

    x (N, C, H, W), w (F, C, kh, kw), bias (F,) or None -> y (N, F, Ho, Wo),
    ``y[n, f] = bias[f] + sum_c correlate(pad(x[n, c]), w[f, c])`` with stride.
    With ``relu=True`` returns ``numpy.maximum(y, 0)``, applied as the sums are
    stored (a NaN stays NaN); ``relu_backward`` takes its gradient from it.
    """
    return _core.correlate2d(x, w, bias, stride, padding, relu)


def correlate2d_backward_weight(
    x, grad_y, kernel_size, stride=1, padding=0, bias_grad=False
):
    """The gradient of the loss w.r.t. the filters of ``correlate2d``.

    x (N, C, H, W), grad_y (N, F, Ho, Wo) -> grad_w (F, C, kh, kw), summed over
    the batch. With ``bias_grad=True`` returns ``(grad_w, grad_b)``, grad_b (F,)
    being grad_y summed over (N, Ho, Wo), the gradient w.r.t. the bias, computed
    in the same pass over grad_y.
    """
    return _core.correlate2d_backward_weight(
        x, grad_y, kernel_size, stride, padding, bias_grad
    )


def convolve2d_full(grad_y, w, input_size, stride=1, padding=0):
    """The gradient of the loss w.r.t. the input of ``correlate2d``.

    grad_y (N, F, Ho, Wo), w (F, C, kh, kw), input_size (H, W) -> grad_x
    (N, C, H, W): the full convolution of the stride-dilated grad_y with w,
    cropped by the padding. Input pixels no window reached get 0.
    """
    return _core.convolve2d_full(grad_y, w, input_size, stride, padding)


def maxpool2d(x, size=2, stride=None):
    """Max over each size window (stride defaults to size), no padding.

    x (N, C, H, W) -> (y, argmax), both (N, C, Ho, Wo); argmax (int64) is the
    flat index ``row * W + col`` of each window's winner in its (H, W) plane.
    Ties go to the first in row-major order; a NaN wins over any number.
    """
    return _core.maxpool2d(x, size, stride)


def maxpool2d_backward(grad_y, argmax, input_size):
    """Route each grad_y value to its window's winner: grad_x[argmax] += grad_y.

    grad_y and argmax (N, C, Ho, Wo), input_size (H, W) -> grad_x (N, C, H, W).
    """
    return _core.maxpool2d_backward(grad_y, argmax, input_size)


def avgpool2d(x, size=2, stride=None):
    """Mean over each size window (stride defaults to size), no padding.

    x (N, C, H, W) -> y (N, C, Ho, Wo).
    """
    return _core.avgpool2d(x, size, stride)


def avgpool2d_backward(grad_y, input_size, size=2, stride=None):
    """Spread each grad_y value evenly over its window.

    grad_y (N, C, Ho, Wo), input_size (H, W) -> grad_x (N, C, H, W).
    """
    return _core.avgpool2d_backward(grad_y, input_size, size, stride)


def matmul(a, b, transpose_a=False, transpose_b=False):
    """op(a) @ op(b) for 2-D arrays, where op transposes when its flag is set.

    (m, k) @ (k, n) -> (m, n). Transposed or strided operands are read in place.
    Raises TypeError unless both flags are bools (checked in C++: this is the
    path of a dense layer at batch 1, where a microsecond counts).
    """
    return _core.matmul(a, b, transpose_a, transpose_b)


def relu(x):
    """max(x, 0) element-wise, in one C++ pass over all threads.

    x of any shape, float32 or float64 -> y of x's shape and dtype (C order). NaN
    stays NaN, as with ``numpy.maximum(x, 0)``. Raises TypeError for anything but a
    float32 or float64 array.
    """
    return _core.relu(x)


def relu_backward(grad_y, y):
    """The gradient through a ReLU, taken from its output y (any shape).

    grad_y and y of one shape and dtype -> grad_x with ``grad_x = grad_y`` where
    ``y > 0`` and 0 elsewhere (also where y is NaN); no pre-activation is needed
    (oneDNN's ``eltwise_relu_use_dst_for_bwd``). Raises TypeError for non-float
    arrays or mixed dtypes, ValueError for different shapes.
    """
    return _core.relu_backward(grad_y, y)


def softmax_cross_entropy(logits, labels):
    """The softmax cross-entropy of integer class labels, its gradient and the hits,
    in one C++ pass (a training step's loss at batch 1 took 50 µs in NumPy).

    logits (N, K) float32 or float64, labels (N,) integers in [0, K) ->
    ``(loss, grad, correct)``: loss = mean over rows of ``-log softmax(logits)[label]``
    (log-sum-exp, summed in float64, a Python float), grad (N, K) of the logits' dtype
    = ``(softmax(logits) - onehot(labels)) / N``, the gradient of that mean, and
    correct = the rows whose first largest logit is at the label (an int). A NaN
    logit makes the loss NaN. Raises TypeError for non-float logits or non-integer
    labels, ValueError for labels out of range or shapes that do not fit.
    """
    return _core.softmax_cross_entropy(logits, labels)


def gradient_descent_update(parameter, gradient, learning_rate):
    """``parameter -= learning_rate * gradient`` in place, in one C++ pass: the same
    numbers as NumPy (the product rounded to the parameter's dtype, then subtracted)
    without its temporary array.

    parameter: a writeable C-contiguous float32 or float64 array; gradient: an array of
    its shape and dtype (any layout); learning_rate: a float. Returns True when done,
    False (parameter untouched) for anything else, which NumPy's general rule (with
    broadcasting and casting) is left to handle.
    """
    return _core.gradient_descent_update(parameter, gradient, learning_rate)


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Batch normalisation in training: normalise each channel by its batch statistics.

    x (N, C, H, W) or (N, C), gamma and beta (C,) -> (y, mean, var): y like x,
    mean and the biased var (C,) over the N*H*W values of each channel,
    ``y = (x - mean) / sqrt(var + eps) * gamma + beta`` (Ioffe & Szegedy 2015; as
    ``torch.nn.functional.batch_norm(training=True)``). Sums are taken in float64.
    ValueError when a channel has a single value (N*H*W = 1), as in PyTorch, or
    when eps is not a positive finite number.
    """
    return _core.batchnorm_forward(x, gamma, beta, eps)


def batchnorm_inference(x, gamma, beta, mean, var, eps=1e-5):
    """Batch normalisation with given statistics (the running ones, at inference).

    x (N, C, H, W) or (N, C), gamma, beta, mean, var (C,) -> y like x,
    ``y = (x - mean) / sqrt(var + eps) * gamma + beta``. A negative var is a
    ValueError.
    """
    return _core.batchnorm_inference(x, gamma, beta, mean, var, eps)


def batchnorm_backward(grad_y, x, gamma, mean, var, eps=1e-5, training=True):
    """The gradients of ``batchnorm_forward`` (training) or ``batchnorm_inference``.

    grad_y and x (N, C, H, W) or (N, C), gamma, mean, var (C,) (the statistics the
    forward pass used) -> (grad_x like x, grad_gamma (C,), grad_beta (C,)), with
    ``xhat = (x - mean) / sqrt(var + eps)`` and M = N*H*W:
    ``grad_gamma = sum(grad_y * xhat)``, ``grad_beta = sum(grad_y)`` per channel, and
    ``grad_x = gamma / sqrt(var + eps) * (grad_y - (grad_beta + xhat * grad_gamma) / M)``
    when ``training`` (the statistics depend on x), else
    ``grad_x = gamma / sqrt(var + eps) * grad_y``.
    """
    return _core.batchnorm_backward(grad_y, x, gamma, mean, var, eps, training)
