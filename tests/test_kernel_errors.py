"""Bad input to fastcnn.kernels raises a clear exception naming what is wrong."""

import numpy as np
import pytest

from fastcnn import kernels

# A valid problem: x (2, 3, 6, 6) with w (4, 3, 3, 3), stride 1, padding 0 -> y (2, 4, 4, 4);
# 2x2 pooling of x -> (2, 3, 3, 3).
X = np.ones((2, 3, 6, 6))
W = np.ones((4, 3, 3, 3))
BIAS = np.ones(4)
GRAD_Y = np.ones((2, 4, 4, 4))
POOL_GRAD_Y = np.ones((2, 3, 3, 3))
ARGMAX = np.zeros((2, 3, 3, 3), np.int64)
A = np.ones((3, 4))
B = np.ones((4, 5))


def mentions(*patterns):
    """A regex matching a message that contains every pattern, in any order."""
    return "(?s)" + "".join(f"(?=.*{pattern})" for pattern in patterns)


def case(call, error, *patterns, id):
    return pytest.param(call, error, mentions(*patterns), id=id)


def argmax_with(index):
    argmax = ARGMAX.copy()
    argmax[1, 2, 0, 1] = index
    return argmax


FLOATS = r"float32 or float64"

CASES = [
    # dtypes other than float32 and float64
    case(lambda: kernels.correlate2d(X.astype(np.int32), W), TypeError, r"\bx\b", FLOATS,
         id="correlate2d-x-int32"),
    case(lambda: kernels.correlate2d(X.astype(np.float16), W), TypeError, r"\bx\b", FLOATS,
         id="correlate2d-x-float16"),
    case(lambda: kernels.correlate2d(X.astype(np.complex128), W), TypeError, r"\bx\b", FLOATS,
         id="correlate2d-x-complex128"),
    case(lambda: kernels.correlate2d(X, W.astype(np.uint8)), TypeError, r"\bw\b", FLOATS,
         id="correlate2d-w-uint8"),
    case(lambda: kernels.correlate2d(X, W, BIAS.astype(np.int64)), TypeError, r"\bbias\b",
         FLOATS, id="correlate2d-bias-int64"),
    case(lambda: kernels.correlate2d_backward_weight(X, GRAD_Y.astype(np.int32), 3),
         TypeError, r"\bgrad_y\b", FLOATS, id="backward-weight-grad_y-int32"),
    case(lambda: kernels.correlate2d_backward_weight(X.astype(np.uint8), GRAD_Y, 3),
         TypeError, r"\bx\b", FLOATS, id="backward-weight-x-uint8"),
    case(lambda: kernels.convolve2d_full(GRAD_Y.astype(np.float16), W, (6, 6)), TypeError,
         r"\bgrad_y\b", FLOATS, id="convolve2d_full-grad_y-float16"),
    case(lambda: kernels.convolve2d_full(GRAD_Y, W.astype(np.int32), (6, 6)), TypeError,
         r"\bw\b", FLOATS, id="convolve2d_full-w-int32"),
    case(lambda: kernels.maxpool2d(X.astype(np.uint8)), TypeError, r"\bx\b", FLOATS,
         id="maxpool2d-x-uint8"),
    case(lambda: kernels.maxpool2d_backward(POOL_GRAD_Y.astype(np.int32), ARGMAX, (6, 6)),
         TypeError, r"\bgrad_y\b", FLOATS, id="maxpool2d_backward-grad_y-int32"),
    case(lambda: kernels.avgpool2d(X.astype(np.int32)), TypeError, r"\bx\b", FLOATS,
         id="avgpool2d-x-int32"),
    case(lambda: kernels.avgpool2d_backward(POOL_GRAD_Y.astype(np.float16), (6, 6)), TypeError,
         r"\bgrad_y\b", FLOATS, id="avgpool2d_backward-grad_y-float16"),
    case(lambda: kernels.matmul(A.astype(np.int32), B), TypeError, r"\ba\b", FLOATS,
         id="matmul-a-int32"),
    case(lambda: kernels.matmul(A, B.astype(np.float16)), TypeError, r"\bb\b", FLOATS,
         id="matmul-b-float16"),
    # float32 mixed with float64
    case(lambda: kernels.correlate2d(X.astype(np.float32), W), TypeError, "dtype",
         id="correlate2d-x-float32-w-float64"),
    case(lambda: kernels.correlate2d(X, W, BIAS.astype(np.float32)), TypeError, "dtype",
         id="correlate2d-x-float64-bias-float32"),
    case(lambda: kernels.correlate2d_backward_weight(X, GRAD_Y.astype(np.float32), 3),
         TypeError, "dtype", id="backward-weight-x-float64-grad_y-float32"),
    case(lambda: kernels.convolve2d_full(GRAD_Y.astype(np.float32), W, (6, 6)), TypeError,
         "dtype", id="convolve2d_full-grad_y-float32-w-float64"),
    case(lambda: kernels.matmul(A, B.astype(np.float32)), TypeError, "dtype",
         id="matmul-a-float64-b-float32"),
    # wrong rank
    case(lambda: kernels.correlate2d(X[0], W), ValueError, r"\bx\b", "4-D",
         id="correlate2d-x-3d"),
    case(lambda: kernels.correlate2d(X[None], W), ValueError, r"\bx\b", "4-D",
         id="correlate2d-x-5d"),
    case(lambda: kernels.correlate2d(np.array(1.0), W), ValueError, r"\bx\b", "4-D",
         id="correlate2d-x-0d"),
    case(lambda: kernels.correlate2d(X, W[0]), ValueError, r"\bw\b", "4-D",
         id="correlate2d-w-3d"),
    case(lambda: kernels.correlate2d_backward_weight(X, GRAD_Y[0], 3), ValueError,
         r"\bgrad_y\b", "4-D", id="backward-weight-grad_y-3d"),
    case(lambda: kernels.convolve2d_full(GRAD_Y[0, 0], W, (6, 6)), ValueError, r"\bgrad_y\b",
         "4-D", id="convolve2d_full-grad_y-2d"),
    case(lambda: kernels.convolve2d_full(GRAD_Y, W[0], (6, 6)), ValueError, r"\bw\b", "4-D",
         id="convolve2d_full-w-3d"),
    case(lambda: kernels.maxpool2d(X[0]), ValueError, r"\bx\b", "4-D", id="maxpool2d-x-3d"),
    case(lambda: kernels.maxpool2d_backward(POOL_GRAD_Y[0], ARGMAX[0], (6, 6)), ValueError,
         r"\bgrad_y\b", "4-D", id="maxpool2d_backward-grad_y-3d"),
    case(lambda: kernels.avgpool2d(X[0, 0]), ValueError, r"\bx\b", "4-D", id="avgpool2d-x-2d"),
    case(lambda: kernels.avgpool2d_backward(POOL_GRAD_Y[0], (6, 6)), ValueError,
         r"\bgrad_y\b", "4-D", id="avgpool2d_backward-grad_y-3d"),
    case(lambda: kernels.matmul(A[0], B), ValueError, r"\ba\b", "2-D", id="matmul-a-1d"),
    case(lambda: kernels.matmul(A, B[None]), ValueError, r"\bb\b", "2-D", id="matmul-b-3d"),
    # shapes that do not fit together
    case(lambda: kernels.correlate2d(X, np.ones((4, 2, 3, 3))), ValueError, "channels",
         id="correlate2d-channel-mismatch"),
    case(lambda: kernels.correlate2d(X, W, np.ones(3)), ValueError, r"\bbias\b",
         id="correlate2d-bias-too-short"),
    case(lambda: kernels.correlate2d(X, W, np.ones((4, 1))), ValueError, r"\bbias\b",
         id="correlate2d-bias-2d"),
    case(lambda: kernels.correlate2d(X, np.ones((4, 3, 0, 3))), ValueError, r"\bw\b",
         id="correlate2d-w-empty-kernel"),
    case(lambda: kernels.convolve2d_full(np.ones((2, 5, 4, 4)), W, (6, 6)), ValueError,
         r"\bgrad_y\b", id="convolve2d_full-grad_y-channels-not-filters"),
    case(lambda: kernels.matmul(A, np.ones((5, 6))), ValueError, "cannot be multiplied",
         id="matmul-inner-mismatch"),
    case(lambda: kernels.matmul(A, B, transpose_a=True), ValueError, "cannot be multiplied",
         id="matmul-aT-inner-mismatch"),
    case(lambda: kernels.matmul(A, B, transpose_b=True), ValueError, "cannot be multiplied",
         id="matmul-bT-inner-mismatch"),
    # stride, padding, size, kernel_size
    case(lambda: kernels.correlate2d(X, W, stride=0), ValueError, "stride",
         id="correlate2d-stride-0"),
    case(lambda: kernels.correlate2d(X, W, stride=(1, -1)), ValueError, "stride",
         id="correlate2d-stride-negative"),
    case(lambda: kernels.correlate2d(X, W, stride=(1, 1, 1)), ValueError, "stride",
         id="correlate2d-stride-3-values"),
    case(lambda: kernels.correlate2d(X, W, padding=-1), ValueError, "padding",
         id="correlate2d-padding-negative"),
    case(lambda: kernels.correlate2d(X, W, padding=(0, -2)), ValueError, "padding",
         id="correlate2d-padding-pair-negative"),
    case(lambda: kernels.correlate2d(X, W, padding=(1, 1, 1)), ValueError, "padding",
         id="correlate2d-padding-3-values"),
    case(lambda: kernels.correlate2d_backward_weight(X, GRAD_Y, 3, stride=0), ValueError,
         "stride", id="backward-weight-stride-0"),
    case(lambda: kernels.correlate2d_backward_weight(X, GRAD_Y, 3, padding=-1), ValueError,
         "padding", id="backward-weight-padding-negative"),
    case(lambda: kernels.correlate2d_backward_weight(X, GRAD_Y, 0), ValueError, "kernel_size",
         id="backward-weight-kernel_size-0"),
    case(lambda: kernels.correlate2d_backward_weight(X, GRAD_Y, (3, -3)), ValueError,
         "kernel_size", id="backward-weight-kernel_size-negative"),
    case(lambda: kernels.correlate2d_backward_weight(X, GRAD_Y, (3, 3, 3)), ValueError,
         "kernel_size", id="backward-weight-kernel_size-3-values"),
    case(lambda: kernels.convolve2d_full(GRAD_Y, W, (6, 6), stride=0), ValueError, "stride",
         id="convolve2d_full-stride-0"),
    case(lambda: kernels.convolve2d_full(GRAD_Y, W, (6, 6), padding=-2), ValueError,
         "padding", id="convolve2d_full-padding-negative"),
    case(lambda: kernels.maxpool2d(X, size=0), ValueError, r"\bsize\b", id="maxpool2d-size-0"),
    case(lambda: kernels.maxpool2d(X, size=(2, -1)), ValueError, r"\bsize\b",
         id="maxpool2d-size-negative"),
    case(lambda: kernels.maxpool2d(X, size=(2, 2, 2)), ValueError, r"\bsize\b",
         id="maxpool2d-size-3-values"),
    case(lambda: kernels.maxpool2d(X, stride=0), ValueError, "stride", id="maxpool2d-stride-0"),
    case(lambda: kernels.maxpool2d(X, stride=(1, 2, 3)), ValueError, "stride",
         id="maxpool2d-stride-3-values"),
    case(lambda: kernels.avgpool2d(X, size=0), ValueError, r"\bsize\b", id="avgpool2d-size-0"),
    case(lambda: kernels.avgpool2d(X, stride=(0, 1)), ValueError, "stride",
         id="avgpool2d-stride-0"),
    case(lambda: kernels.avgpool2d_backward(POOL_GRAD_Y, (6, 6), size=0), ValueError,
         r"\bsize\b", id="avgpool2d_backward-size-0"),
    case(lambda: kernels.avgpool2d_backward(POOL_GRAD_Y, (6, 6), stride=-2), ValueError,
         "stride", id="avgpool2d_backward-stride-negative"),
    # windows that do not fit
    case(lambda: kernels.correlate2d(X, np.ones((4, 3, 9, 9)), padding=1), ValueError,
         "larger than the padded input", id="correlate2d-kernel-too-large"),
    case(lambda: kernels.correlate2d(X, np.ones((4, 3, 1, 7))), ValueError,
         "larger than the padded input", id="correlate2d-kernel-too-wide"),
    case(lambda: kernels.correlate2d_backward_weight(X, GRAD_Y, 9, padding=1), ValueError,
         "larger than the padded input", id="backward-weight-kernel-too-large"),
    case(lambda: kernels.convolve2d_full(GRAD_Y, W, (1, 1)), ValueError,
         "larger than the padded input|input_size", id="convolve2d_full-kernel-too-large"),
    case(lambda: kernels.maxpool2d(X[:, :, :2, :2], size=3), ValueError,
         "larger than the input", id="maxpool2d-window-too-large"),
    case(lambda: kernels.maxpool2d(X[:, :, :2, :2], size=(1, 3)), ValueError,
         "larger than the input", id="maxpool2d-window-too-wide"),
    case(lambda: kernels.avgpool2d(X[:, :, :2, :2], size=3), ValueError,
         "larger than the input", id="avgpool2d-window-too-large"),
    case(lambda: kernels.avgpool2d_backward(POOL_GRAD_Y, (2, 2), size=3), ValueError,
         "larger than the input|input_size", id="avgpool2d_backward-window-too-large"),
    # grad_y and input_size that the forward pass could not have produced
    case(lambda: kernels.correlate2d_backward_weight(X, np.ones((2, 4, 5, 5)), 3), ValueError,
         r"\bgrad_y\b", id="backward-weight-grad_y-wrong-size"),
    case(lambda: kernels.correlate2d_backward_weight(X, np.ones((3, 4, 4, 4)), 3), ValueError,
         r"\bgrad_y\b", id="backward-weight-grad_y-wrong-batch"),
    case(lambda: kernels.convolve2d_full(GRAD_Y, W, (7, 7)), ValueError, r"\binput_size\b",
         id="convolve2d_full-input_size-mismatch"),
    case(lambda: kernels.convolve2d_full(GRAD_Y, W, (6, 6, 6)), ValueError, r"\binput_size\b",
         id="convolve2d_full-input_size-3-values"),
    case(lambda: kernels.maxpool2d_backward(POOL_GRAD_Y, ARGMAX, (2, 2)), ValueError,
         r"\binput_size\b", id="maxpool2d_backward-input_size-smaller-than-grad_y"),
    case(lambda: kernels.maxpool2d_backward(POOL_GRAD_Y, ARGMAX, (0, 6)), ValueError,
         r"\binput_size\b", id="maxpool2d_backward-input_size-0"),
    case(lambda: kernels.avgpool2d_backward(POOL_GRAD_Y, (8, 8)), ValueError,
         r"\binput_size\b", id="avgpool2d_backward-input_size-mismatch"),
    # argmax
    case(lambda: kernels.maxpool2d_backward(POOL_GRAD_Y, ARGMAX.astype(np.int32), (6, 6)),
         TypeError, r"\bargmax\b", id="argmax-int32"),
    case(lambda: kernels.maxpool2d_backward(POOL_GRAD_Y, ARGMAX.astype(np.float64), (6, 6)),
         TypeError, r"\bargmax\b", id="argmax-float64"),
    case(lambda: kernels.maxpool2d_backward(POOL_GRAD_Y, ARGMAX[:, :, :, :2], (6, 6)),
         ValueError, r"\bargmax\b", id="argmax-wrong-shape"),
    case(lambda: kernels.maxpool2d_backward(POOL_GRAD_Y, ARGMAX[0], (6, 6)), ValueError,
         r"\bargmax\b", id="argmax-3d"),
    case(lambda: kernels.maxpool2d_backward(POOL_GRAD_Y, argmax_with(-1), (6, 6)), IndexError,
         r"\bargmax\b", id="argmax-negative"),
    case(lambda: kernels.maxpool2d_backward(POOL_GRAD_Y, argmax_with(36), (6, 6)), IndexError,
         r"\bargmax\b", id="argmax-past-the-plane"),
    # not arrays at all
    case(lambda: kernels.correlate2d(None, W), TypeError, r"\bx\b", id="correlate2d-x-None"),
    case(lambda: kernels.correlate2d(X, None), TypeError, r"\bw\b", id="correlate2d-w-None"),
    case(lambda: kernels.correlate2d_backward_weight(X, None, 3), TypeError, r"\bgrad_y\b",
         id="backward-weight-grad_y-None"),
    case(lambda: kernels.convolve2d_full(None, W, (6, 6)), TypeError, r"\bgrad_y\b",
         id="convolve2d_full-grad_y-None"),
    case(lambda: kernels.maxpool2d("x"), TypeError, r"\bx\b", id="maxpool2d-x-str"),
    case(lambda: kernels.maxpool2d_backward(POOL_GRAD_Y, None, (6, 6)), TypeError,
         r"\bargmax\b", id="maxpool2d_backward-argmax-None"),
    case(lambda: kernels.avgpool2d(None), TypeError, r"\bx\b", id="avgpool2d-x-None"),
    case(lambda: kernels.matmul(None, B), TypeError, r"\ba\b", id="matmul-a-None"),
    # empty outputs whose other extents are too big to index: NumPy's "too big", not an
    # overflow in the strides
    case(lambda: kernels.maxpool2d_backward(np.ones((0, 3, 3, 3)), np.zeros((0, 3, 3, 3),
                                                                        np.int64),
                                            (2**31 - 1, 2**31 - 1)),
         ValueError, "strides would not fit", id="maxpool2d_backward-empty-huge-input_size"),
    case(lambda: kernels.avgpool2d_backward(np.ones((0, 3, 1, 1)), (2**31 - 1, 2**31 - 1),
                                            size=2**31 - 1),
         ValueError, "strides would not fit", id="avgpool2d_backward-empty-huge-input_size"),
    case(lambda: kernels.convolve2d_full(np.ones((0, 4, 1, 1)), W, (2**31 - 1, 2**31 - 1),
                                         stride=2**31 - 1),
         ValueError, "strides would not fit", id="convolve2d_full-empty-huge-input_size"),
]


@pytest.mark.parametrize(("call", "error", "message"), CASES)
def test_bad_input_raises(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_valid_problem_runs():
    """The arrays the cases above spoil are themselves valid."""
    assert kernels.correlate2d(X, W, BIAS).shape == GRAD_Y.shape
    assert kernels.correlate2d_backward_weight(X, GRAD_Y, 3).shape == W.shape
    assert kernels.convolve2d_full(GRAD_Y, W, (6, 6)).shape == X.shape
    assert kernels.maxpool2d(X)[0].shape == POOL_GRAD_Y.shape
    assert kernels.maxpool2d_backward(POOL_GRAD_Y, argmax_with(35), (6, 6)).shape == X.shape
    assert kernels.avgpool2d(X).shape == POOL_GRAD_Y.shape
    assert kernels.avgpool2d_backward(POOL_GRAD_Y, (6, 6)).shape == X.shape
    assert kernels.matmul(A, B).shape == (3, 5)
