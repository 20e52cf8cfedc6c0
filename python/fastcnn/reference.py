"""The kernels of :mod:`fastcnn.kernels` in plain NumPy.

Same signatures and semantics as the compiled kernels; this module is the oracle the
tests compare them with and the baseline the benchmarks time them against. Clarity comes
first: each function is the textbook definition written with whole-array operations.

Layout is NCHW: ``x`` is (N, C, H, W), ``w`` is (F, C, kh, kw), ``bias`` is (F,).
``stride``, ``padding``, ``size`` and ``kernel_size`` take an int or an (h, w) pair.
Outputs have the dtype of the inputs (float32 or float64).
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

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


def _pair(value, name):
    """An int or an (h, w) pair as a tuple of two ints."""
    if np.ndim(value) == 0:
        return int(value), int(value)
    if len(value) != 2:
        raise ValueError(f"{name} must be an int or an (h, w) pair, got {value!r}")
    return int(value[0]), int(value[1])


def _output_size(input_size, kernel_size, stride, padding):
    """Ho, Wo of a sliding window: (H + 2*ph - kh) // sh + 1, per axis."""
    sizes = []
    for extent, kernel, step, pad in zip(input_size, kernel_size, stride, padding):
        if kernel > extent + 2 * pad:
            raise ValueError(
                f"window {kernel_size[0]}x{kernel_size[1]} is larger than the input "
                f"{input_size[0] + 2 * padding[0]}x{input_size[1] + 2 * padding[1]} "
                "(padding included)"
            )
        sizes.append((extent + 2 * pad - kernel) // step + 1)
    return tuple(sizes)


def _windows(x, kernel_size, stride, padding=(0, 0)):
    """View of every window of x: (N, C, Ho, Wo, kh, kw), zero padding included."""
    (ph, pw), (sh, sw) = padding, stride
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    return sliding_window_view(x, kernel_size, axis=(2, 3))[:, :, ::sh, ::sw]


def _window_rows(offset, step, count):
    """The slice picking row ``offset`` of each of ``count`` windows ``step`` apart."""
    return slice(offset, offset + step * (count - 1) + 1, step)


def correlate2d(x, w, bias=None, stride=1, padding=0, relu=False):
    """Cross-correlation of x (N, C, H, W) with w (F, C, kh, kw), plus bias (F,).

    y[n, f, i, j] = bias[f] + sum_{c, a, b} w[f, c, a, b] * xp[n, c, i*sh + a, j*sw + b]
    where xp is x zero-padded; returns y (N, F, Ho, Wo), or maximum(y, 0) if relu.
    """
    x, w = np.asarray(x), np.asarray(w)
    stride, padding = _pair(stride, "stride"), _pair(padding, "padding")
    kernel_size = w.shape[2:]
    _output_size(x.shape[2:], kernel_size, stride, padding)
    windows = _windows(x, kernel_size, stride, padding)
    y = np.tensordot(windows, w, axes=([1, 4, 5], [1, 2, 3]))  # (N, Ho, Wo, F)
    y = np.ascontiguousarray(y.transpose(0, 3, 1, 2))
    if bias is not None:
        y += np.asarray(bias)[:, None, None]
    return np.maximum(y, 0) if relu else y


def correlate2d_backward_weight(x, grad_y, kernel_size, stride=1, padding=0):
    """Gradient of correlate2d with respect to w, summed over the batch.

    grad_w[f, c, a, b] = sum_{n, i, j} grad_y[n, f, i, j] * xp[n, c, i*sh + a, j*sw + b];
    returns grad_w (F, C, kh, kw).
    """
    x, grad_y = np.asarray(x), np.asarray(grad_y)
    kernel_size = _pair(kernel_size, "kernel_size")
    stride, padding = _pair(stride, "stride"), _pair(padding, "padding")
    output_size = _output_size(x.shape[2:], kernel_size, stride, padding)
    if grad_y.shape[2:] != output_size:
        raise ValueError(
            f"grad_y has spatial shape {grad_y.shape[2:]}, expected {output_size}"
        )
    windows = _windows(x, kernel_size, stride, padding)
    return np.tensordot(grad_y, windows, axes=([0, 2, 3], [0, 2, 3]))


def convolve2d_full(grad_y, w, input_size, stride=1, padding=0):
    """Gradient of correlate2d with respect to x: grad_x (N, C, H, W).

    Each grad_y[n, f, i, j] is spread back over the input pixels its window covered,
    weighted by w[f]; pixels no window touches get 0. ``input_size`` is (H, W).
    """
    grad_y, w = np.asarray(grad_y), np.asarray(w)
    input_size = _pair(input_size, "input_size")
    (sh, sw), (ph, pw) = _pair(stride, "stride"), _pair(padding, "padding")
    kh, kw = w.shape[2:]
    output_size = _output_size(input_size, (kh, kw), (sh, sw), (ph, pw))
    if grad_y.shape[2:] != output_size:
        raise ValueError(
            f"input_size {input_size} gives outputs of {output_size}, "
            f"but grad_y has {grad_y.shape[2:]}"
        )
    n, _, ho, wo = grad_y.shape
    height, width = input_size
    # contributions[n, i, j, c, a, b]: what window (i, j) sends to its pixel (a, b).
    contributions = np.tensordot(grad_y, w, axes=([1], [0]))
    grad_padded = np.zeros((n, w.shape[1], height + 2 * ph, width + 2 * pw), grad_y.dtype)
    for a in range(kh):
        for b in range(kw):
            rows, cols = _window_rows(a, sh, ho), _window_rows(b, sw, wo)
            grad_padded[:, :, rows, cols] += contributions[..., a, b].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(grad_padded[:, :, ph : ph + height, pw : pw + width])


def maxpool2d(x, size=2, stride=None):
    """Max-pool x (N, C, H, W) over size windows, stride apart (default: size).

    Returns (y, argmax), both (N, C, Ho, Wo); argmax (int64) is the flat index
    row*W + col of each window's maximum in its (H, W) plane. Ties go to the first
    in row-major order, and a NaN wins (the first NaN), as with np.argmax.
    """
    x = np.asarray(x)
    kh, kw = _pair(size, "size")
    stride = (kh, kw) if stride is None else _pair(stride, "stride")
    ho, wo = _output_size(x.shape[2:], (kh, kw), stride, (0, 0))
    windows = _windows(x, (kh, kw), stride)
    flat_windows = windows.reshape(*windows.shape[:4], kh * kw)
    winner = np.argmax(flat_windows, axis=-1)  # row-major index inside the window
    y = np.take_along_axis(flat_windows, winner[..., None], axis=-1)[..., 0]
    window_top = (np.arange(ho) * stride[0])[:, None]
    window_left = (np.arange(wo) * stride[1])[None, :]
    rows, cols = window_top + winner // kw, window_left + winner % kw
    argmax = (rows * x.shape[3] + cols).astype(np.int64)
    return np.ascontiguousarray(y), argmax


def maxpool2d_backward(grad_y, argmax, input_size):
    """Gradient of maxpool2d: each grad_y value is added to the input pixel at argmax.

    Overlapping windows that picked the same pixel add up. Returns grad_x (N, C, H, W).
    """
    grad_y, argmax = np.asarray(grad_y), np.asarray(argmax)
    height, width = _pair(input_size, "input_size")
    n, c = grad_y.shape[:2]
    grad_x = np.zeros((n, c, height * width), grad_y.dtype)
    planes = np.arange(n * c).reshape(n, c, 1, 1) * (height * width)
    np.add.at(grad_x.reshape(-1), (planes + argmax).reshape(-1), grad_y.reshape(-1))
    return grad_x.reshape(n, c, height, width)


def avgpool2d(x, size=2, stride=None):
    """Average-pool x (N, C, H, W): each window's sum divided by its area kh*kw."""
    x = np.asarray(x)
    kh, kw = _pair(size, "size")
    stride = (kh, kw) if stride is None else _pair(stride, "stride")
    _output_size(x.shape[2:], (kh, kw), stride, (0, 0))
    windows = _windows(x, (kh, kw), stride)
    return np.ascontiguousarray(windows.sum(axis=(4, 5)) / x.dtype.type(kh * kw))


def avgpool2d_backward(grad_y, input_size, size=2, stride=None):
    """Gradient of avgpool2d: grad_y / (kh*kw) spread over each window, summed."""
    grad_y = np.asarray(grad_y)
    height, width = _pair(input_size, "input_size")
    kh, kw = _pair(size, "size")
    sh, sw = (kh, kw) if stride is None else _pair(stride, "stride")
    output_size = _output_size((height, width), (kh, kw), (sh, sw), (0, 0))
    if grad_y.shape[2:] != output_size:
        raise ValueError(
            f"input_size {(height, width)} gives outputs of {output_size}, "
            f"but grad_y has {grad_y.shape[2:]}"
        )
    ho, wo = output_size
    share = grad_y / grad_y.dtype.type(kh * kw)
    grad_x = np.zeros((*grad_y.shape[:2], height, width), grad_y.dtype)
    for a in range(kh):
        for b in range(kw):
            grad_x[:, :, _window_rows(a, sh, ho), _window_rows(b, sw, wo)] += share
    return grad_x


def matmul(a, b, transpose_a=False, transpose_b=False):
    """op(a) @ op(b) for 2-D a and b, where op transposes when its flag is set."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"a and b must be 2-D, got {a.ndim}-D and {b.ndim}-D")
    if transpose_a:
        a = a.T
    if transpose_b:
        b = b.T
    return np.ascontiguousarray(a @ b)


def relu(x):
    """max(x, 0) element-wise (NaN stays NaN)."""
    return np.maximum(np.asarray(x), 0)


def relu_backward(grad_y, y):
    """Gradient through a ReLU from its output: grad_y where y > 0, else 0."""
    grad_y, y = np.asarray(grad_y), np.asarray(y)
    return np.where(y > 0, grad_y, np.zeros((), grad_y.dtype))


def softmax_cross_entropy(logits, labels):
    """(loss, grad, correct) of softmax cross-entropy over integer labels (N,) for
    logits (N, K): the mean of -log softmax(logits)[label] (float64), grad =
    (softmax(logits) - onehot(labels)) / N in the logits' dtype, and the number of rows
    whose first largest logit is the label."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    rows = np.arange(len(labels))
    one_hot = np.zeros_like(z)
    one_hot[rows, labels] = 1
    grad = ((np.exp(log_p) - one_hot) / len(labels)).astype(logits.dtype)
    return (float(-log_p[rows, labels].mean()), grad,
            int(np.count_nonzero(logits.argmax(axis=1) == labels)))


def gradient_descent_update(parameter, gradient, learning_rate):
    """parameter -= learning_rate * gradient, in place; returns True."""
    parameter -= learning_rate * gradient
    return True


def _channel_axes(x):
    """The axes batch normalisation reduces over: N, and H, W when there are any."""
    if x.ndim not in (2, 4):
        raise ValueError(f"x must be (N, C, H, W) or (N, C), got shape {x.shape}")
    return (0,) if x.ndim == 2 else (0, 2, 3)


def _per_channel(values, x):
    """(C,) values shaped to broadcast against x."""
    return np.asarray(values, np.float64).reshape((1, -1) + (1,) * (x.ndim - 2))


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Batch normalisation in training, per channel c over the M = N*H*W values of x:

    mean[c] = sum(x[:, c]) / M,  var[c] = sum((x[:, c] - mean[c])**2) / M (biased),
    y = (x - mean) / sqrt(var + eps) * gamma + beta; returns (y, mean, var).
    x is (N, C, H, W) or (N, C); computed in float64, returned in x's dtype.
    """
    x = np.asarray(x)
    axes = _channel_axes(x)
    values = x.astype(np.float64)
    if values.size // max(x.shape[1], 1) <= 1:
        raise ValueError(
            f"Expected more than 1 value per channel when training, got x of shape {x.shape}"
        )
    mean = values.mean(axis=axes)
    var = values.var(axis=axes)
    y = batchnorm_inference(values, gamma, beta, mean, var, eps)
    return y.astype(x.dtype), mean.astype(x.dtype), var.astype(x.dtype)


def batchnorm_inference(x, gamma, beta, mean, var, eps=1e-5):
    """Batch normalisation with given statistics: y = (x - mean) / sqrt(var + eps) * gamma
    + beta, per channel (axis 1) of x (N, C, H, W) or (N, C)."""
    x = np.asarray(x)
    _channel_axes(x)
    scale = _per_channel(gamma, x) / np.sqrt(_per_channel(var, x) + eps)
    y = (x.astype(np.float64) - _per_channel(mean, x)) * scale + _per_channel(beta, x)
    return y.astype(x.dtype)


def batchnorm_backward(grad_y, x, gamma, mean, var, eps=1e-5, training=True):
    """Gradients of batch normalisation, per channel over its M = N*H*W values, with
    xhat = (x - mean) / sqrt(var + eps):

    grad_gamma = sum(grad_y * xhat),  grad_beta = sum(grad_y),
    grad_x = gamma / sqrt(var + eps) * (grad_y - (grad_beta + xhat * grad_gamma) / M)
    when training (mean and var are x's own batch statistics), else
    grad_x = gamma / sqrt(var + eps) * grad_y. Returns (grad_x, grad_gamma, grad_beta).
    """
    grad_y, x = np.asarray(grad_y), np.asarray(x)
    axes = _channel_axes(x)
    g = grad_y.astype(np.float64)
    inv_std = 1 / np.sqrt(_per_channel(var, x) + eps)
    xhat = (x.astype(np.float64) - _per_channel(mean, x)) * inv_std
    grad_gamma = (g * xhat).sum(axis=axes)
    grad_beta = g.sum(axis=axes)
    grad_x = g
    if training:
        count = x.size // x.shape[1]
        grad_x = g - (_per_channel(grad_beta, x) + xhat * _per_channel(grad_gamma, x)) / count
    grad_x = grad_x * _per_channel(gamma, x) * inv_std
    return grad_x.astype(x.dtype), grad_gamma.astype(x.dtype), grad_beta.astype(x.dtype)
