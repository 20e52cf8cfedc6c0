"""The NumPy reference, anchored by hand-computed cases, plain loops and finite differences."""

import numpy as np
import pytest

from fastcnn import reference

CONV_CASES = [
    # x shape, w shape, stride, padding
    pytest.param((1, 1, 3, 3), (1, 1, 2, 2), 2, 1, id="3x3-k2x2-s2-p1"),
    pytest.param((2, 2, 5, 6), (3, 2, 3, 2), (2, 1), (1, 0), id="rectangular"),
    pytest.param((2, 2, 7, 6), (2, 2, 2, 1), 3, 0, id="stride-larger-than-kernel"),
    pytest.param((1, 3, 4, 4), (2, 3, 1, 1), 1, 0, id="1x1-kernel"),
    pytest.param((2, 1, 4, 3), (2, 1, 6, 5), 1, 1, id="kernel-as-large-as-padded-input"),
    pytest.param((1, 2, 4, 5), (2, 2, 3, 3), (1, 2), 2, id="padding-2"),
]

POOL_CASES = [
    # x shape, size, stride
    pytest.param((2, 2, 4, 4), 2, None, id="2x2"),
    pytest.param((1, 2, 5, 5), 3, 2, id="overlapping-3-s2"),
    pytest.param((2, 1, 5, 7), (2, 3), (1, 2), id="rectangular"),
    pytest.param((1, 1, 7, 5), 3, None, id="floor"),
    pytest.param((1, 1, 4, 6), (1, 2), (3, 1), id="stride-larger-than-size"),
]


def numerical_gradient(f, x, step=1e-6):
    """Central differences of the scalar f at x, one element at a time."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + step
        above = f(x)
        x[index] = saved - step
        below = f(x)
        x[index] = saved
        grad[index] = (above - below) / (2 * step)
    return grad


def naive_correlate2d(x, w, stride, padding):
    (sh, sw), (ph, pw) = stride, padding
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    kh, kw = w.shape[2:]
    ho, wo = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    y = np.zeros((x.shape[0], w.shape[0], ho, wo))
    for n, f, i, j in np.ndindex(y.shape):
        y[n, f, i, j] = np.sum(x[n, :, i * sh : i * sh + kh, j * sw : j * sw + kw] * w[f])
    return y


def naive_pool(x, size, stride, reduce):
    (kh, kw), (sh, sw) = size, stride
    ho, wo = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    y = np.zeros((*x.shape[:2], ho, wo))
    for n, c, i, j in np.ndindex(y.shape):
        y[n, c, i, j] = reduce(x[n, c, i * sh : i * sh + kh, j * sw : j * sw + kw])
    return y


def as_pair(value):
    return (value, value) if isinstance(value, int) else value


# Hand-computed cases


def test_correlate2d_by_hand():
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    w = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    # zero-padded to 5x5; windows start at rows/cols 0 and 2
    expected = np.array([[[[4.0, 18.0], [36.0, 77.0]]]])
    np.testing.assert_array_equal(reference.correlate2d(x, w, stride=2, padding=1), expected)
    np.testing.assert_array_equal(
        reference.correlate2d(x, w, np.array([10.0]), stride=2, padding=1), expected + 10
    )


def test_correlate2d_gradients_by_hand():
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    w = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    grad_y = np.ones((1, 1, 2, 2))
    np.testing.assert_array_equal(
        reference.correlate2d_backward_weight(x, grad_y, 2, stride=2, padding=1),
        [[[[5.0, 10.0], [10.0, 20.0]]]],
    )
    np.testing.assert_array_equal(
        reference.convolve2d_full(grad_y, w, (3, 3), stride=2, padding=1),
        [[[[4.0, 3.0, 4.0], [2.0, 1.0, 2.0], [4.0, 3.0, 4.0]]]],
    )


def test_convolve2d_full_leaves_untouched_pixels_at_zero():
    w = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    # 5x5 input, 2x2 kernel, stride 3: windows cover rows/cols 0-1 and 3-4, never 2
    grad_x = reference.convolve2d_full(np.ones((1, 1, 2, 2)), w, (5, 5), stride=3)
    tile = np.array([[1.0, 2.0], [3.0, 4.0]])
    expected = np.zeros((5, 5))
    for top in (0, 3):
        for left in (0, 3):
            expected[top : top + 2, left : left + 2] = tile
    np.testing.assert_array_equal(grad_x[0, 0], expected)


def test_maxpool2d_by_hand():
    x = np.array([[1, 3, 2, 0], [4, 0, 1, 5], [2, 2, 9, 1], [0, 7, 3, 3]], float)
    y, argmax = reference.maxpool2d(x[None, None])
    np.testing.assert_array_equal(y[0, 0], [[4.0, 5.0], [7.0, 9.0]])
    np.testing.assert_array_equal(argmax[0, 0], [[4, 7], [13, 10]])
    assert argmax.dtype == np.int64


def test_maxpool2d_ties_go_to_the_first_in_row_major_order():
    x = np.full((1, 1, 3, 3), 2.0)
    _, argmax = reference.maxpool2d(x, size=2, stride=1)
    np.testing.assert_array_equal(argmax[0, 0], [[0, 1], [3, 4]])
    x = np.full((1, 1, 2, 2), -np.inf)
    y, argmax = reference.maxpool2d(x)
    assert y[0, 0, 0, 0] == -np.inf and argmax[0, 0, 0, 0] == 0


def test_maxpool2d_nan_wins():
    x = np.array([[1.0, np.nan, 7.0], [np.nan, 5.0, 2.0]])[None, None]
    y, argmax = reference.maxpool2d(x, size=(2, 2), stride=1)
    assert np.isnan(y[0, 0, 0, 0]) and argmax[0, 0, 0, 0] == 1
    assert np.isnan(y[0, 0, 0, 1]) and argmax[0, 0, 0, 1] == 1


def test_maxpool2d_backward_accumulates_overlapping_windows():
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 1.0  # the maximum of all four overlapping 3x3 windows
    y, argmax = reference.maxpool2d(x, size=3, stride=2)
    np.testing.assert_array_equal(argmax, np.full((1, 1, 2, 2), 12))
    grad_x = reference.maxpool2d_backward(np.ones_like(y), argmax, (5, 5))
    expected = np.zeros((1, 1, 5, 5))
    expected[0, 0, 2, 2] = 4.0
    np.testing.assert_array_equal(grad_x, expected)


def test_avgpool2d_by_hand():
    x = np.arange(20.0).reshape(1, 1, 4, 5)
    # 2x2 windows; the last column does not fit and is dropped
    np.testing.assert_array_equal(reference.avgpool2d(x)[0, 0], [[3.0, 5.0], [13.0, 15.0]])
    grad_x = reference.avgpool2d_backward(np.array([[[[4.0]]]]), (3, 3), size=2)
    expected = [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    np.testing.assert_array_equal(grad_x[0, 0], expected)


@pytest.mark.parametrize("transpose_a", [False, True], ids=["a", "aT"])
@pytest.mark.parametrize("transpose_b", [False, True], ids=["b", "bT"])
def test_matmul_by_hand(transpose_a, transpose_b):
    a = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    b = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, -1.0]])
    expected = np.array([[7.0, -1.0], [16.0, -1.0]])
    stored_a = a.T.copy() if transpose_a else a
    stored_b = b.T.copy() if transpose_b else b
    c = reference.matmul(stored_a, stored_b, transpose_a, transpose_b)
    np.testing.assert_array_equal(c, expected)


# Plain loops


@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "padding"), CONV_CASES)
def test_correlate2d_matches_loops(rng, x_shape, w_shape, stride, padding):
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    expected = naive_correlate2d(x, w, as_pair(stride), as_pair(padding))
    y = reference.correlate2d(x, w, None, stride, padding)
    np.testing.assert_allclose(y, expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize(("x_shape", "size", "stride"), POOL_CASES)
def test_pooling_matches_loops(rng, x_shape, size, stride):
    x = rng.standard_normal(x_shape)
    pool_stride = as_pair(size) if stride is None else as_pair(stride)
    y, _ = reference.maxpool2d(x, size, stride)
    np.testing.assert_array_equal(y, naive_pool(x, as_pair(size), pool_stride, np.max))
    expected = naive_pool(x, as_pair(size), pool_stride, np.mean)
    y = reference.avgpool2d(x, size, stride)
    np.testing.assert_allclose(y, expected, rtol=1e-14, atol=1e-15)


# Finite differences: each backward is the gradient of sum(grad_y * forward(...))


@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "padding"), CONV_CASES)
def test_convolve2d_full_is_the_input_gradient(rng, x_shape, w_shape, stride, padding):
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    bias = rng.standard_normal(w_shape[0])
    grad_y = rng.standard_normal(reference.correlate2d(x, w, bias, stride, padding).shape)

    def objective(x):
        return np.sum(grad_y * reference.correlate2d(x, w, bias, stride, padding))

    grad_x = reference.convolve2d_full(grad_y, w, x_shape[2:], stride, padding)
    np.testing.assert_allclose(grad_x, numerical_gradient(objective, x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "padding"), CONV_CASES)
def test_correlate2d_backward_weight_is_the_weight_gradient(
    rng, x_shape, w_shape, stride, padding
):
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    bias = rng.standard_normal(w_shape[0])
    grad_y = rng.standard_normal(reference.correlate2d(x, w, bias, stride, padding).shape)

    def objective(w):
        return np.sum(grad_y * reference.correlate2d(x, w, bias, stride, padding))

    grad_w = reference.correlate2d_backward_weight(x, grad_y, w_shape[2:], stride, padding)
    np.testing.assert_allclose(grad_w, numerical_gradient(objective, w), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("x_shape", "size", "stride"), POOL_CASES)
def test_maxpool2d_backward_is_the_gradient(rng, x_shape, size, stride):
    # distinct values, far apart compared with the step, so no window changes its winner
    x = rng.permutation(np.prod(x_shape)).reshape(x_shape).astype(np.float64)
    y, argmax = reference.maxpool2d(x, size, stride)
    grad_y = rng.standard_normal(y.shape)

    def objective(x):
        return np.sum(grad_y * reference.maxpool2d(x, size, stride)[0])

    grad_x = reference.maxpool2d_backward(grad_y, argmax, x_shape[2:])
    np.testing.assert_allclose(grad_x, numerical_gradient(objective, x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("x_shape", "size", "stride"), POOL_CASES)
def test_avgpool2d_backward_is_the_gradient(rng, x_shape, size, stride):
    x = rng.standard_normal(x_shape)
    grad_y = rng.standard_normal(reference.avgpool2d(x, size, stride).shape)

    def objective(x):
        return np.sum(grad_y * reference.avgpool2d(x, size, stride))

    grad_x = reference.avgpool2d_backward(grad_y, x_shape[2:], size, stride)
    np.testing.assert_allclose(grad_x, numerical_gradient(objective, x), rtol=1e-6, atol=1e-7)


# Dtypes and empty batches


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outputs_keep_the_input_dtype(rng, dtype):
    x = rng.standard_normal((2, 3, 6, 6)).astype(dtype)
    w = rng.standard_normal((4, 3, 3, 3)).astype(dtype)
    bias = rng.standard_normal(4).astype(dtype)
    y = reference.correlate2d(x, w, bias, 1, 1)
    y_pool, argmax = reference.maxpool2d(x)
    outputs = [
        y,
        reference.correlate2d_backward_weight(x, y, 3, 1, 1),
        reference.convolve2d_full(y, w, (6, 6), 1, 1),
        y_pool,
        reference.maxpool2d_backward(y_pool, argmax, (6, 6)),
        reference.avgpool2d(x),
        reference.avgpool2d_backward(y_pool, (6, 6)),
        reference.matmul(x[0, 0], w[0, 0, :, :2].repeat(2, axis=0)),
    ]
    assert [output.dtype for output in outputs] == [np.dtype(dtype)] * len(outputs)
    assert argmax.dtype == np.int64


def test_empty_batch():
    x = np.zeros((0, 2, 6, 5))
    w = np.ones((3, 2, 3, 2))
    y = reference.correlate2d(x, w, np.ones(3), stride=2, padding=1)
    assert y.shape == (0, 3, 3, 3)
    grad_w = reference.correlate2d_backward_weight(x, y, (3, 2), stride=2, padding=1)
    np.testing.assert_array_equal(grad_w, np.zeros((3, 2, 3, 2)))
    assert reference.convolve2d_full(y, w, (6, 5), stride=2, padding=1).shape == (0, 2, 6, 5)
    y_pool, argmax = reference.maxpool2d(x, 3, 2)
    assert y_pool.shape == argmax.shape == (0, 2, 2, 2)
    assert reference.maxpool2d_backward(y_pool, argmax, (6, 5)).shape == (0, 2, 6, 5)
    assert reference.avgpool2d(x, 3, 2).shape == (0, 2, 2, 2)
    assert reference.avgpool2d_backward(y_pool, (6, 5), 3, 2).shape == (0, 2, 6, 5)


def test_softmax_cross_entropy_by_hand():
    # p = (1/4, 3/4): the loss of label 1 is -log(3/4), its gradient p - (0, 1)
    loss, grad, correct = reference.softmax_cross_entropy(np.array([[0.0, np.log(3.0)]]), [1])
    assert loss == pytest.approx(-np.log(0.75), rel=1e-12)
    np.testing.assert_allclose(grad, [[0.25, -0.25]], rtol=1e-12)
    assert correct == 1
    # two rows: the mean loss, the gradient divided by 2, one row classified wrong
    loss, grad, correct = reference.softmax_cross_entropy(np.zeros((2, 2)), [0, 1])
    assert loss == pytest.approx(np.log(2), rel=1e-12)
    np.testing.assert_allclose(grad, [[-0.25, 0.25], [0.25, -0.25]], rtol=1e-12)
    assert correct == 1  # ties go to the first class


def test_gradient_descent_update_by_hand():
    parameter = np.array([1.0, 2.0])
    assert reference.gradient_descent_update(parameter, np.array([10.0, -10.0]), 0.1)
    np.testing.assert_allclose(parameter, [0.0, 3.0])
