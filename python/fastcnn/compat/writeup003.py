"""Write-up 003's functions (batched CIFAR-10 CNN with im2col) on fastcnn's kernels.

The names, signatures, defaults and array layouts are the write-up's: batches are
(N, C, H, W), weights (F, C, kh, kw), biases (F, 1); ``m`` is the write-up's ``CNN``
object, holding ``W2``, ``W4``, ... (layer L's weights are ``m.W<L>``). Its training
loop runs with only its imports changed. The convolutions and the pooling run in
``fastcnn.kernels`` (no im2col matrix is built); ``im2col_indices`` and
``col2im_indices`` are kept for code that calls them and are computed with strided
views rather than index arrays.

The write-up's conventions, kept:

- ``convolve_forward(m, inpt, W, b, layer, padding=2, stride=1)`` keeps what
  ``conv_backward(m, inpt, layer, ...)`` needs on ``m``, as the write-up does, under
  the same names ``m.Xcol2`` and ``m.Xcol4`` (``m.Xcol<L>`` for layer L): here that is
  the layer's input (N, C, H, W), not its im2col matrix. ``conv_backward`` uses that
  input, and ``m.W<L>``, so its own ``padding`` and ``stride`` must be the forward's.
- ``maxpool_forward`` numbers each argmax inside its window, row-major
  (``row * size + col``); ``maxpool_backward(argmaxes, inpt, outshape)`` reads them as
  places in 2 x 2 windows 2 apart, as the write-up's loop does: it is the backward of
  ``maxpool_forward(inpt, 2, 2)`` only.
- ``derivative_Softmax(z)`` is s (1 - s), the diagonal of the softmax Jacobian, which
  the write-up's loop multiplies element-wise with its output error. That is not the
  gradient of its cross-entropy (Yhat - labels would be), but the loop's numbers depend
  on it, so it is kept.

Where the write-up's code is wrong or narrower, the result here is the correct one;
its training loop gives the same values:

- ``Softmax`` subtracts each row's own maximum (the write-up's subtracts the batch's,
  so a row far below it underflows to 0 / 0 = nan).
- ``derivative_Softmax`` of a batch (N, K) is taken row by row, like ``Softmax``; the
  write-up's normalises over the whole batch at once (one row, its use, agrees).
- ``ReLU(-inf)`` is 0 (the write-up's ``z * (z > 0)`` gives nan).
- Window sizes that do not tile the padded input exactly are accepted, the output size
  being ``(H + 2 * padding - field) // stride + 1``, the write-up's own formula (its
  im2col asserts exact tiling, and checks the width against the field's height).
- ``maxpool_backward`` refuses argmaxes outside 0..3 and shapes that do not fit with a
  ValueError (the write-up's loop sends any other value to the window's bottom-right).

Bad input raises ValueError naming the argument (shapes that do not fit, a layer with
no forward pass kept on ``m``).
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import kernels

__all__ = [
    "get_im2col_indices",
    "im2col_indices",
    "col2im_indices",
    "convolve_forward",
    "conv_backward",
    "maxpool_forward",
    "maxpool_backward",
    "ReLU",
    "Softmax",
    "derivative_ReLU",
    "derivative_Softmax",
]

# The write-up's CNN() sets pad = 2 and stride = 1, which its functions take as defaults.
_PAD = 2
_STRIDE = 1


def _output_size(x_shape, fld_hgt, fld_wdth, padding, stride):
    """(Ho, Wo) = ((H + 2 padding - fld_hgt) // stride + 1, the same for W)."""
    if len(x_shape) != 4:
        raise ValueError(f"x_shape must be (N, C, H, W), got {tuple(x_shape)}")
    height, width = x_shape[2] + 2 * padding, x_shape[3] + 2 * padding
    if fld_hgt > height or fld_wdth > width or stride < 1:
        raise ValueError(
            f"a {fld_hgt}x{fld_wdth} field with stride {stride} gives no output on a "
            f"{height}x{width} input (padding {padding} included)"
        )
    return (height - fld_hgt) // stride + 1, (width - fld_wdth) // stride + 1


def _float(*arrays):
    """The arrays as one float dtype: float32 if all are, else float64 (as NumPy
    promotes the write-up's products)."""
    dtype = np.result_type(*arrays, np.float32)
    if dtype not in (np.float32, np.float64):
        dtype = np.dtype(np.float64)
    return [np.asarray(a, dtype=dtype) for a in arrays]


def get_im2col_indices(x_shape, fld_hgt, fld_wdth, padding, stride):
    """The write-up's index arrays (k, i, j) of im2col: ``x_padded[:, k, i, j]`` is
    (N, C * fld_hgt * fld_wdth, Ho * Wo); rows run over (channel, field row, field
    column), columns over (output row, output column). k is (C*fh*fw, 1), i and j are
    (C*fh*fw, Ho*Wo), all int. Raises ValueError when the field does not fit."""
    N, C, H, W = x_shape
    out_height, out_width = _output_size(x_shape, fld_hgt, fld_wdth, padding, stride)
    i0 = np.tile(np.repeat(np.arange(fld_hgt), fld_wdth), C)
    i1 = stride * np.repeat(np.arange(out_height), out_width)
    j0 = np.tile(np.arange(fld_wdth), fld_hgt * C)
    j1 = stride * np.tile(np.arange(out_width), out_height)
    i = i0.reshape(-1, 1) + i1.reshape(1, -1)
    j = j0.reshape(-1, 1) + j1.reshape(1, -1)
    k = np.repeat(np.arange(C), fld_hgt * fld_wdth).reshape(-1, 1)
    return (k.astype(int), i.astype(int), j.astype(int))


def _fields_last_sample(x, fld_hgt, fld_wdth, padding, stride):
    """View of every field of x zero-padded, samples last: (C, Ho, Wo, N, fh, fw).

    im2col's columns run with the sample fastest, so it copies from a (C, H, W, N)
    image: each run of N values is then contiguous at both ends of the copy."""
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    samples_last = np.ascontiguousarray(x.transpose(1, 2, 3, 0))
    windows = sliding_window_view(samples_last, (fld_hgt, fld_wdth), axis=(1, 2))
    return windows[:, ::stride, ::stride]


def im2col_indices(x, fld_hgt, fld_wdth, padding, stride):
    """x (N, C, H, W) -> cols (C * fld_hgt * fld_wdth, Ho * Wo * N), the write-up's
    im2col: row (c, a, b), column (output row, output column, sample), samples fastest.
    Raises ValueError when the field does not fit."""
    x = np.asarray(x)
    _output_size(x.shape, fld_hgt, fld_wdth, padding, stride)
    fields = _fields_last_sample(x, fld_hgt, fld_wdth, padding, stride)
    return fields.transpose(0, 4, 5, 1, 2, 3).reshape(x.shape[1] * fld_hgt * fld_wdth, -1)


def col2im_indices(cols, x_shape, fld_hgt, fld_wdth, padding, stride):
    """The adjoint of ``im2col_indices``: cols (C * fld_hgt * fld_wdth, Ho * Wo * N) ->
    (N, C, H, W), every column added back onto the pixels of its field (the padding
    dropped). Raises ValueError when cols does not have that shape."""
    N, C, H, W = x_shape
    out_height, out_width = _output_size(x_shape, fld_hgt, fld_wdth, padding, stride)
    cols = np.asarray(cols)
    expected = (C * fld_hgt * fld_wdth, out_height * out_width * N)
    if cols.shape != expected:
        raise ValueError(f"cols must be {expected} for x_shape {tuple(x_shape)}, got {cols.shape}")
    fields = cols.reshape(C, fld_hgt, fld_wdth, out_height, out_width, N)
    # summed in a (C, H, W, N) image, whose runs of N match the columns' (see above)
    padded = np.zeros((C, H + 2 * padding, W + 2 * padding, N), dtype=cols.dtype)
    for a in range(fld_hgt):
        for b in range(fld_wdth):
            rows = slice(a, a + stride * (out_height - 1) + 1, stride)
            columns = slice(b, b + stride * (out_width - 1) + 1, stride)
            padded[:, rows, columns] += fields[:, a, b]
    return padded[:, padding : padding + H, padding : padding + W].transpose(3, 0, 1, 2)


def convolve_forward(m, inpt, W, b, layer, padding=_PAD, stride=_STRIDE):
    """The write-up's convolution: inpt (N, C, H, W), W (F, C, kh, kw), b (F, 1) ->
    (N, F, Ho, Wo), ``Ho = (H + 2 * padding - kh) // stride + 1``; zero padding.
    Keeps inpt on ``m`` as ``m.Xcol<layer>`` for ``conv_backward``.
    Raises ValueError when the shapes do not fit."""
    x, W, b = _float(inpt, W, b)
    if x.ndim != 4 or W.ndim != 4 or x.shape[1] != W.shape[1]:
        raise ValueError(
            f"inpt must be (N, C, H, W) and W (F, C, kh, kw) with the same C, got "
            f"{x.shape} and {W.shape}"
        )
    if b.size != W.shape[0]:
        raise ValueError(f"b must hold one bias per filter, ({W.shape[0]}, 1), got {b.shape}")
    _output_size(x.shape, W.shape[2], W.shape[3], padding, stride)
    setattr(m, f"Xcol{layer}", x)
    return kernels.correlate2d(x, W, b.reshape(-1), stride, padding)


def conv_backward(m, inpt, layer, padding=_PAD, stride=_STRIDE):
    """The write-up's convolution backward: inpt, the error at the layer's output
    (N, F, Ho, Wo) -> (dW (F, C, kh, kw), db (F, 1), the error at its input
    (N, C, H, W)), from ``m.W<layer>`` and the input kept by ``convolve_forward``.
    Raises ValueError when that forward pass was not run or the shapes do not fit."""
    cached = getattr(m, f"Xcol{layer}", None)
    weights = getattr(m, f"W{layer}", None)
    if not isinstance(cached, np.ndarray) or cached.ndim != 4 or weights is None:
        raise ValueError(
            f"conv_backward(layer={layer!r}) needs m.W{layer} and the input kept by "
            f"convolve_forward(m, ..., layer={layer!r}); call that first"
        )
    x, delta, W = _float(cached, inpt, weights)
    expected = (len(x), W.shape[0], *_output_size(x.shape, W.shape[2], W.shape[3], padding, stride))
    if delta.shape != expected:
        raise ValueError(
            f"inpt must be the error at layer {layer}'s output, {expected}, got {delta.shape}"
        )
    dW = kernels.correlate2d_backward_weight(x, delta, W.shape[2:], stride, padding)
    db = delta.sum(axis=(0, 2, 3)).reshape(W.shape[0], -1)
    outp = kernels.convolve2d_full(delta, W, x.shape[2:], stride, padding)
    return dW, db, outp


def maxpool_forward(inpt, size=2, stride=2):
    """inpt (N, C, H, W) -> (outp, argmaxes), both (N, C, Ho, Wo) with
    ``Ho = (H - size) // stride + 1``: each window's maximum and its place inside the
    window, ``row * size + col`` (int64; ties go to the first, as np.argmax).
    Raises ValueError when the window does not fit."""
    (x,) = _float(inpt)
    if x.ndim != 4:
        raise ValueError(f"inpt must be (N, C, H, W), got {x.shape}")
    _output_size(x.shape, size, size, 0, stride)
    outp, flat = kernels.maxpool2d(x, size, stride)
    out_height, out_width = outp.shape[2:]
    rows = flat // x.shape[3] - stride * np.arange(out_height)[:, None]
    cols = flat % x.shape[3] - stride * np.arange(out_width)
    return outp, rows * size + cols


def maxpool_backward(argmaxes, inpt, outshape):
    """The write-up's pooling backward for 2 x 2 windows 2 apart: argmaxes and inpt
    (N, C, Ho, Wo) -> (outshape) float64, each inpt value at its window's argmax
    (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right), zeros elsewhere.
    Raises ValueError for an argmax outside 0..3 or shapes that do not fit."""
    argmaxes = np.asarray(argmaxes)
    grad = np.asarray(inpt, dtype=np.float64)
    outshape = tuple(outshape)
    if grad.ndim != 4 or argmaxes.shape != grad.shape:
        raise ValueError(
            f"argmaxes and inpt must both be (N, C, Ho, Wo), got {argmaxes.shape} and {grad.shape}"
        )
    n, c, out_height, out_width = grad.shape
    fits = len(outshape) == 4 and outshape[:2] == (n, c)
    if not fits or outshape[2] < 2 * out_height or outshape[3] < 2 * out_width:
        raise ValueError(
            f"outshape must be ({n}, {c}, H, W) with H >= {2 * out_height} and "
            f"W >= {2 * out_width} (2 x 2 windows 2 apart), got {outshape}"
        )
    integers = np.issubdtype(argmaxes.dtype, np.integer)
    if argmaxes.size and (not integers or argmaxes.min() < 0 or argmaxes.max() > 3):
        raise ValueError("argmaxes must be places in a 2 x 2 window, integers 0..3")
    width = outshape[3]
    # flat index in the (H, W) plane: the window's top-left plus the argmax's offset
    top_left = 2 * width * np.arange(out_height)[:, None] + 2 * np.arange(out_width)
    flat = np.take(np.array([0, 1, width, width + 1], np.int64), argmaxes) + top_left
    return kernels.maxpool2d_backward(grad, flat, outshape[2:])


def ReLU(z):
    """max(z, 0), element-wise, any shape."""
    return np.maximum(z, 0)


def Softmax(z):
    """Softmax of each row of z (N, K) (along axis 1), stable. Raises ValueError for a
    1-D z (the write-up's takes batches)."""
    z = np.asarray(z)
    if z.ndim < 2:
        raise ValueError(f"Softmax takes a batch (N, classes), got shape {z.shape}")
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def derivative_Softmax(z):
    """s (1 - s) where s is the softmax of z: of the whole array for one sample (K,),
    as the write-up uses it, of each row for a batch (N, K). This is the diagonal of
    the softmax Jacobian (see the module docstring)."""
    z = np.asarray(z)
    s = Softmax(z) if z.ndim >= 2 else Softmax(z.reshape(1, -1)).reshape(z.shape)
    return s * (1 - s)


def derivative_ReLU(z):
    """1.0 where z > 0, else 0.0 (float64), any shape."""
    return (np.asarray(z) > 0).astype(np.float64)
