"""The ReLU kernels against fastcnn.reference: correlate2d(relu=True), relu, relu_backward."""

import numpy as np
import pytest

import fastcnn
from fastcnn import kernels, reference

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]

# N, C, H, W, filters, kernel, stride, padding: one case per forward path
RELU_CONV_CASES = [
    pytest.param(4, 6, 28, 28, 6, 5, 1, 2, id="direct-writeup-004b"),
    pytest.param(3, 16, 14, 14, 32, 5, 1, 0, id="narrow-lenet-conv2"),
    pytest.param(2, 3, 9, 7, 4, (3, 2), (2, 1), 1, id="direct-rectangular-strided"),
    pytest.param(2, 256, 6, 5, 256, 4, 1, 1, id="gemm-path"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_bias", [False, True], ids=["no-bias", "bias"])
@pytest.mark.parametrize(("n", "c", "h", "w", "f", "kernel", "stride", "padding"),
                         RELU_CONV_CASES)
def test_correlate2d_relu_matches_the_reference(assert_close, rng, n, c, h, w, f, kernel,
                                                stride, padding, dtype, with_bias):
    kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weights = rng.standard_normal((f, c, *kernel)).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype) if with_bias else None
    y = kernels.correlate2d(x, weights, bias, stride, padding, relu=True)
    plain = kernels.correlate2d(x, weights, bias, stride, padding)
    assert y.dtype == x.dtype
    # The epilogue changes only the negative sums, and to exactly zero.
    np.testing.assert_array_equal(y, np.maximum(plain, 0), strict=True)
    expected = reference.correlate2d(x.astype(np.float64), weights.astype(np.float64),
                                     None if bias is None else bias.astype(np.float64),
                                     stride, padding, relu=True)
    magnitude = reference.correlate2d(np.abs(x.astype(np.float64)),
                                      np.abs(weights.astype(np.float64)),
                                      None if bias is None else np.abs(bias.astype(np.float64)),
                                      stride, padding)
    assert_close(y, expected, magnitude)
    assert np.any(y == 0) and np.all(y >= 0)


def test_correlate2d_relu_keeps_nan():
    x = np.ones((1, 1, 3, 3))
    w = np.ones((2, 1, 1, 1))
    x[0, 0, 1, 1] = np.nan
    y = kernels.correlate2d(x, w, np.array([0.0, -5.0]), relu=True)
    assert np.isnan(y[0, 0, 1, 1]) and np.isnan(y[0, 1, 1, 1])
    assert np.all(y[0, 1][~np.isnan(y[0, 1])] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(64, 16, 28, 28), (32, 100), (7,), (0, 3, 4, 4), ()],
                         ids=str)
def test_relu_matches_the_reference(rng, shape, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    y = kernels.relu(x)
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_array_equal(y, reference.relu(x), strict=True)


def test_relu_keeps_nan_and_infinities():
    x = np.array([np.nan, -np.inf, np.inf, -1.0, 0.0, 2.5], np.float32)
    np.testing.assert_array_equal(kernels.relu(x), [np.nan, 0, np.inf, 0, 0, 2.5])


def test_relu_reads_non_contiguous_input(rng):
    x = rng.standard_normal((9, 7))
    np.testing.assert_array_equal(kernels.relu(x.T[:, ::2]), reference.relu(x.T[:, ::2]))


@pytest.mark.parametrize(
    ("x", "error"),
    [
        pytest.param([1.0, -2.0], TypeError, id="a-list"),
        pytest.param(np.ones(3, np.int32), TypeError, id="integers"),
        pytest.param(np.ones(3, np.float16), TypeError, id="float16"),
    ],
)
def test_relu_refuses_bad_input(x, error):
    with pytest.raises(error, match="x"):
        kernels.relu(x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(64, 16, 28, 28), (32, 100), (7,), (0, 3, 4, 4)],
                         ids=str)
def test_relu_backward_matches_the_reference(rng, shape, dtype):
    y = np.maximum(rng.standard_normal(shape), 0).astype(dtype)
    grad_y = rng.standard_normal(shape).astype(dtype)
    grad_x = kernels.relu_backward(grad_y, y)
    assert grad_x.dtype == dtype and grad_x.shape == shape
    np.testing.assert_array_equal(grad_x, reference.relu_backward(grad_y, y), strict=True)


def test_relu_backward_is_the_derivative_of_relu(rng):
    """Finite differences of sum(grad_y * relu(z)) in z, away from the kink at 0."""
    z = rng.standard_normal((3, 4, 5))
    z[np.abs(z) < 1e-3] = 0.5
    grad_y = rng.standard_normal(z.shape)
    step = 1e-6
    numeric = np.empty_like(z)
    for index in np.ndindex(z.shape):
        up, down = z.copy(), z.copy()
        up[index] += step
        down[index] -= step
        numeric[index] = (np.sum(grad_y * np.maximum(up, 0))
                          - np.sum(grad_y * np.maximum(down, 0))) / (2 * step)
    grad_x = kernels.relu_backward(grad_y, np.maximum(z, 0))
    np.testing.assert_allclose(grad_x, numeric, rtol=1e-6, atol=1e-8)


def test_relu_backward_gives_zero_where_y_is_nan():
    y = np.array([np.nan, 1.0, 0.0, -0.0])
    grad_x = kernels.relu_backward(np.full(4, 2.0), y)
    np.testing.assert_array_equal(grad_x, [0.0, 2.0, 0.0, 0.0])


def test_relu_backward_reads_non_contiguous_inputs(rng):
    y = np.maximum(rng.standard_normal((8, 6)), 0)
    grad_y = rng.standard_normal((6, 8))
    np.testing.assert_array_equal(kernels.relu_backward(grad_y.T, y[:, ::-1]),
                                  reference.relu_backward(grad_y.T, y[:, ::-1]))


@pytest.fixture
def restore_num_threads():
    previous = fastcnn.get_num_threads()
    try:
        yield
    finally:
        fastcnn.set_num_threads(previous)


@pytest.mark.usefixtures("restore_num_threads")
def test_results_do_not_depend_on_the_thread_count(rng):
    x = rng.standard_normal((16, 16, 14, 14)).astype(np.float32)
    w = rng.standard_normal((32, 16, 5, 5)).astype(np.float32)
    grad_y = rng.standard_normal((16, 32, 10, 10)).astype(np.float32)
    fastcnn.set_num_threads(1)
    y = kernels.correlate2d(x, w, relu=True)
    grad_x = kernels.relu_backward(grad_y, y)
    activation = kernels.relu(grad_y)
    for threads in (2, 3):
        fastcnn.set_num_threads(threads)
        np.testing.assert_array_equal(kernels.relu(grad_y), activation, strict=True)
        np.testing.assert_array_equal(kernels.correlate2d(x, w, relu=True), y, strict=True)
        np.testing.assert_array_equal(kernels.relu_backward(grad_y, y), grad_x, strict=True)


@pytest.mark.parametrize(
    ("grad_y", "y", "error", "words"),
    [
        pytest.param(np.ones((2, 3)), np.ones((3, 2)), ValueError, r"grad_y.*shape.*\(3, 2\)",
                     id="shapes-differ"),
        pytest.param(np.ones(3, np.float32), np.ones(3), TypeError, "grad_y", id="dtypes-differ"),
        pytest.param([1.0, 2.0], np.ones(2), TypeError, "grad_y", id="grad_y-not-an-array"),
        pytest.param(np.ones(2), [1.0, 2.0], TypeError, r"\by\b", id="y-not-an-array"),
        pytest.param(np.ones(2, np.int64), np.ones(2, np.int64), TypeError, "float",
                     id="integers"),
    ],
)
def test_relu_backward_refuses_bad_input(grad_y, y, error, words):
    with pytest.raises(error, match=words):
        kernels.relu_backward(grad_y, y)
