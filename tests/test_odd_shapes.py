"""Odd shapes for every kernel, against fastcnn.reference.

test_kernels.py covers 1x1 images, kernels as large as the padded input, strides
larger than the kernel and empty batches for the forward pass; these add the rest:
no channels or no filters, single rows and columns, strides larger than the input,
paddings many times the input, and each of them for the gradients and pooling too.
They are also the cases the sanitizer run (.ci/sanitize) leans on.
"""

import numpy as np
import pytest

from fastcnn import kernels, reference


def as_pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def output_size(h, w, kernel, stride, padding):
    (kh, kw), (sh, sw), (ph, pw) = as_pair(kernel), as_pair(stride), as_pair(padding)
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def in_float64(array):
    return None if array is None else np.asarray(array, np.float64)


def magnitude(array):
    return None if array is None else np.abs(in_float64(array))


# N, C, H, W, filters, kernel, stride, padding
CONV_CASES = [
    pytest.param(1, 1, 1, 1, 1, 1, 7, 0, id="1x1-image-stride-larger-than-image"),
    pytest.param(2, 3, 1, 1, 2, 5, 1, 2, id="1x1-image-kernel-5-padding-2"),
    pytest.param(1, 2, 1, 1, 3, 3, 4, 5, id="1x1-image-padding-5-stride-4"),
    pytest.param(2, 2, 1, 9, 3, (1, 3), (1, 2), 0, id="single-row"),
    pytest.param(2, 2, 9, 1, 3, (3, 1), (2, 1), (1, 0), id="single-column"),
    pytest.param(2, 2, 4, 5, 3, (6, 7), 3, 1, id="kernel-as-large-as-padded-input-stride-3"),
    pytest.param(2, 2, 5, 5, 2, 2, 9, 0, id="stride-larger-than-image"),
    pytest.param(1, 2, 3, 4, 2, 3, (5, 7), 40, id="padding-40"),
    pytest.param(1, 1, 3, 3, 2, 2, 1, 20, id="padding-20-stride-1"),
    pytest.param(3, 0, 5, 5, 2, 3, 1, 1, id="no-channels"),
    pytest.param(2, 3, 5, 5, 0, 3, 1, 1, id="no-filters"),
    pytest.param(0, 3, 5, 5, 2, 3, 2, 30, id="empty-batch-padding-30"),
    pytest.param(2, 260, 2, 2, 3, 4, 1, 1, id="gemm-path-kernel-as-large-as-padded-input"),
    pytest.param(1, 256, 3, 3, 2, 4, 5, 2, id="gemm-path-stride-larger-than-kernel"),
]

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("n", "c", "h", "w", "f", "kernel", "stride", "padding"), CONV_CASES)
def test_convolution_kernels(assert_close, rng, n, c, h, w, f, kernel, stride, padding, dtype):
    x = rng.standard_normal((n, c, h, w), dtype)
    weights = rng.standard_normal((f, c, *as_pair(kernel)), dtype)
    bias = rng.standard_normal(f, dtype)
    grad_y = rng.standard_normal((n, f, *output_size(h, w, kernel, stride, padding)), dtype)

    y = kernels.correlate2d(x, weights, bias, stride, padding)
    assert y.dtype == dtype
    assert_close(y, reference.correlate2d(in_float64(x), in_float64(weights),
                                          in_float64(bias), stride, padding),
                 reference.correlate2d(magnitude(x), magnitude(weights), magnitude(bias),
                                       stride, padding))

    grad_w = kernels.correlate2d_backward_weight(x, grad_y, kernel, stride, padding)
    assert grad_w.dtype == dtype
    assert_close(grad_w, reference.correlate2d_backward_weight(
        in_float64(x), in_float64(grad_y), kernel, stride, padding),
        reference.correlate2d_backward_weight(magnitude(x), magnitude(grad_y), kernel,
                                              stride, padding))

    grad_x = kernels.convolve2d_full(grad_y, weights, (h, w), stride, padding)
    assert grad_x.dtype == dtype
    assert_close(grad_x, reference.convolve2d_full(
        in_float64(grad_y), in_float64(weights), (h, w), stride, padding),
        reference.convolve2d_full(magnitude(grad_y), magnitude(weights), (h, w), stride,
                                  padding))


# N, C, H, W, size, stride
POOL_CASES = [
    pytest.param(2, 3, 1, 1, 1, None, id="1x1-image"),
    pytest.param(2, 3, 1, 1, 1, 5, id="1x1-image-stride-5"),
    pytest.param(1, 2, 4, 5, (4, 5), 9, id="window-is-the-image-stride-larger"),
    pytest.param(2, 2, 1, 9, (1, 3), (1, 2), id="single-row"),
    pytest.param(2, 2, 9, 1, (2, 1), (3, 1), id="single-column"),
    pytest.param(2, 2, 7, 7, 1, 3, id="size-1-stride-3"),
    pytest.param(2, 2, 6, 6, 2, 7, id="stride-larger-than-image"),
    pytest.param(3, 0, 4, 4, 2, None, id="no-channels"),
    pytest.param(0, 2, 4, 4, 3, 1, id="empty-batch"),
    pytest.param(1, 1, 33, 35, (33, 1), (1, 2), id="tall-window"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("n", "c", "h", "w", "size", "stride"), POOL_CASES)
def test_pooling_kernels(assert_close, rng, n, c, h, w, size, stride, dtype):
    x = rng.standard_normal((n, c, h, w), dtype)
    y, argmax = kernels.maxpool2d(x, size, stride)
    expected_y, expected_argmax = reference.maxpool2d(x, size, stride)
    np.testing.assert_array_equal(y, expected_y, strict=True)
    np.testing.assert_array_equal(argmax, expected_argmax, strict=True)

    grad_y = rng.standard_normal(y.shape, dtype)
    grad_x = kernels.maxpool2d_backward(grad_y, argmax, (h, w))
    assert grad_x.dtype == dtype
    assert_close(grad_x, reference.maxpool2d_backward(in_float64(grad_y), argmax, (h, w)),
                 reference.maxpool2d_backward(magnitude(grad_y), argmax, (h, w)))

    average = kernels.avgpool2d(x, size, stride)
    assert average.dtype == dtype
    assert_close(average, reference.avgpool2d(in_float64(x), size, stride),
                 reference.avgpool2d(magnitude(x), size, stride))

    grad_x = kernels.avgpool2d_backward(grad_y, (h, w), size, stride)
    assert grad_x.dtype == dtype
    assert_close(grad_x, reference.avgpool2d_backward(in_float64(grad_y), (h, w), size, stride),
                 reference.avgpool2d_backward(magnitude(grad_y), (h, w), size, stride))


def test_maxpool2d_backward_with_a_larger_input_than_the_windows_cover(assert_close, rng):
    # Windows need not reach the last rows and columns; argmax may point anywhere.
    grad_y = rng.standard_normal((2, 3, 2, 2))
    argmax = rng.integers(0, 7 * 9, grad_y.shape)
    assert_close(kernels.maxpool2d_backward(grad_y, argmax, (7, 9)),
                 reference.maxpool2d_backward(grad_y, argmax, (7, 9)),
                 reference.maxpool2d_backward(np.abs(grad_y), argmax, (7, 9)))


MATMUL_OPERANDS = [
    pytest.param(lambda rng: (rng.standard_normal((1, 1)), rng.standard_normal((1, 1))),
                 id="1x1"),
    pytest.param(lambda rng: (rng.standard_normal((1, 3000)), rng.standard_normal((3000, 1))),
                 id="row-times-column"),
    pytest.param(lambda rng: (rng.standard_normal((300, 1)), rng.standard_normal((1, 301))),
                 id="outer-product"),
    pytest.param(lambda rng: (np.broadcast_to(rng.standard_normal((1, 37)), (41, 37)),
                              np.broadcast_to(rng.standard_normal((37, 1)), (37, 43))),
                 id="broadcast-operands"),
    pytest.param(lambda rng: (rng.standard_normal((50, 60))[::-2, ::-3],
                              rng.standard_normal((40, 30))[::2, ::-1]),
                 id="negative-strides"),
]


@pytest.mark.parametrize("operands", MATMUL_OPERANDS)
def test_matmul_odd_operands(assert_close, rng, operands):
    a, b = operands(rng)
    assert_close(kernels.matmul(a, b), reference.matmul(a, b),
                 reference.matmul(np.abs(a), np.abs(b)))
