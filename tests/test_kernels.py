"""fastcnn.kernels against fastcnn.reference: values, layouts, empty batches, threads.

float32 results are compared with the reference computed in float64 from the same
inputs, so the tolerance measures the kernel's own rounding only.
"""

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastcnn
from fastcnn import kernels, reference

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]
TRANSPOSES = [
    pytest.param(False, False, id="a@b"),
    pytest.param(True, False, id="aT@b"),
    pytest.param(False, True, id="a@bT"),
    pytest.param(True, True, id="aT@bT"),
]
SHAPE_SEARCH = settings(max_examples=60, deadline=None)

# N, C, H, W, filters, kernel, stride, padding: the networks of the write-ups
WRITEUP_CONV_SHAPES = [
    (1, 28, 28, 6, 3, 1, 0),
    (1, 28, 28, 5, 3, 2, 1),
    (1, 28, 28, 6, 5, 1, 2),
    (6, 28, 28, 6, 5, 1, 2),
    (3, 32, 32, 10, 5, 1, 2),
    (10, 16, 16, 20, 5, 1, 2),
]
CONV_CASES = [
    pytest.param(n, *shape, id=f"writeup-n{n}-c{shape[0]}-{shape[1]}x{shape[2]}"
                 f"-f{shape[3]}-k{shape[4]}-s{shape[5]}-p{shape[6]}")
    for shape in WRITEUP_CONV_SHAPES
    for n in (1, 8)
] + [
    pytest.param(2, 3, 9, 7, 4, (3, 2), (2, 1), (1, 0), id="rectangular-k3x2-s2x1-p1x0"),
    pytest.param(3, 4, 5, 6, 5, 1, 1, 0, id="k1x1"),
    pytest.param(2, 2, 7, 7, 3, 1, 2, 0, id="k1x1-s2"),
    pytest.param(2, 2, 5, 4, 3, (7, 6), 1, 1, id="kernel-as-large-as-padded-input"),
    pytest.param(2, 3, 11, 10, 2, 2, (4, 3), 0, id="stride-larger-than-kernel"),
    pytest.param(2, 1, 3, 3, 2, 5, 1, 2, id="kernel-larger-than-unpadded-input"),
    # Outputs narrower than a vector with many filters: lanes over filters
    pytest.param(2, 16, 14, 14, 32, 5, 1, 0, id="narrow-lenet-conv2"),
    pytest.param(3, 5, 9, 7, 21, (3, 2), (2, 1), 1, id="narrow-k3x2-s2x1-f21"),
    pytest.param(2, 3, 1, 1, 4, 1, 1, 0, id="1x1-input"),
    pytest.param(1, 2, 1, 1, 3, 3, 1, 1, id="1x1-input-k3-p1"),
    pytest.param(2, 2, 6, 6, 3, 1, 1, 2, id="padding-wider-than-kernel"),
    pytest.param(0, 3, 8, 8, 4, 3, 1, 1, id="empty-batch"),
    # C*kh*kw >= 4096 (and F*kh*kw for the input gradient) takes the im2col + gemm path
    pytest.param(2, 256, 6, 5, 256, 4, 1, 1, id="gemm-path-c256-k4"),
    pytest.param(1, 260, 7, 6, 3, 4, (2, 1), (1, 0), id="gemm-path-c260-k4-s2x1"),
]

# N, C, H, W, size, stride
POOL_CASES = [
    pytest.param(n, 6, 24, 24, 2, None, id=f"writeup-n{n}-c6-24x24-size2") for n in (1, 8)
] + [
    pytest.param(4, 3, 28, 28, 3, 2, id="overlapping-size3-s2-28x28"),
    pytest.param(2, 2, 7, 9, 3, 2, id="overlapping-size3-s2-7x9"),
    pytest.param(2, 3, 5, 7, 2, None, id="floor-size2-5x7"),
    pytest.param(2, 2, 6, 8, (2, 3), (1, 2), id="rectangular-2x3-s1x2"),
    pytest.param(2, 2, 9, 9, 2, 3, id="stride-larger-than-size"),
    pytest.param(2, 2, 4, 5, 1, None, id="size1"),
    pytest.param(3, 2, 5, 4, (5, 4), None, id="window-as-large-as-input"),
    pytest.param(0, 3, 6, 6, 2, None, id="empty-batch"),
]

MATMUL_SIZES = [
    pytest.param(m, k, n, id=f"m{m}-k{k}-n{n}")
    for m, k, n in [
        (1, 1, 1),
        (1, 7, 1),
        (7, 1, 33),
        (33, 100, 7),
        (100, 33, 257),
        (257, 100, 33),
        (65, 257, 100),
        (0, 5, 3),
        (4, 0, 6),
        (3, 5, 0),
        (0, 0, 0),
    ]
]


def as_pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def in_float64(array):
    return None if array is None else np.asarray(array, dtype=np.float64)


def magnitude_of(array):
    return None if array is None else np.abs(in_float64(array))


def conv_output_size(h, w, kernel, stride, padding):
    (kh, kw), (sh, sw), (ph, pw) = as_pair(kernel), as_pair(stride), as_pair(padding)
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def pool_output_size(h, w, size, stride):
    return conv_output_size(h, w, size, size if stride is None else stride, 0)


# One check per kernel, shared by the named cases and the Hypothesis searches


def check_correlate2d(assert_close, x, w, bias, stride, padding):
    y = kernels.correlate2d(x, w, bias, stride=stride, padding=padding)
    assert y.dtype == x.dtype
    expected = reference.correlate2d(
        in_float64(x), in_float64(w), in_float64(bias), stride, padding
    )
    magnitude = reference.correlate2d(
        magnitude_of(x), magnitude_of(w), magnitude_of(bias), stride, padding
    )
    assert_close(y, expected, magnitude)


def check_backward_weight(assert_close, x, grad_y, kernel_size, stride, padding):
    grad_w = kernels.correlate2d_backward_weight(
        x, grad_y, kernel_size, stride=stride, padding=padding
    )
    assert grad_w.dtype == x.dtype
    expected = reference.correlate2d_backward_weight(
        in_float64(x), in_float64(grad_y), kernel_size, stride, padding
    )
    magnitude = reference.correlate2d_backward_weight(
        magnitude_of(x), magnitude_of(grad_y), kernel_size, stride, padding
    )
    assert_close(grad_w, expected, magnitude)
    # The bias gradient rides along without changing grad_w.
    grad_w_too, grad_b = kernels.correlate2d_backward_weight(
        x, grad_y, kernel_size, stride=stride, padding=padding, bias_grad=True
    )
    np.testing.assert_array_equal(grad_w_too, grad_w, strict=True)
    assert grad_b.dtype == x.dtype and grad_b.shape == (grad_y.shape[1],)
    assert_close(grad_b, in_float64(grad_y).sum(axis=(0, 2, 3)),
                 magnitude_of(grad_y).sum(axis=(0, 2, 3)))


def check_convolve2d_full(assert_close, grad_y, w, input_size, stride, padding):
    grad_x = kernels.convolve2d_full(grad_y, w, input_size, stride=stride, padding=padding)
    assert grad_x.dtype == grad_y.dtype
    expected = reference.convolve2d_full(
        in_float64(grad_y), in_float64(w), input_size, stride, padding
    )
    magnitude = reference.convolve2d_full(
        magnitude_of(grad_y), magnitude_of(w), input_size, stride, padding
    )
    assert_close(grad_x, expected, magnitude)


def check_maxpool2d(x, size, stride):
    y, argmax = kernels.maxpool2d(x, size=size, stride=stride)
    expected_y, expected_argmax = reference.maxpool2d(x, size, stride)
    assert y.dtype == x.dtype and argmax.dtype == np.int64
    assert y.shape == argmax.shape == expected_y.shape
    np.testing.assert_array_equal(argmax, expected_argmax)
    np.testing.assert_array_equal(y, expected_y)
    return argmax


def check_maxpool2d_backward(assert_close, grad_y, argmax, input_size):
    grad_x = kernels.maxpool2d_backward(grad_y, argmax, input_size)
    assert grad_x.dtype == grad_y.dtype
    expected = reference.maxpool2d_backward(in_float64(grad_y), argmax, input_size)
    magnitude = reference.maxpool2d_backward(magnitude_of(grad_y), argmax, input_size)
    assert_close(grad_x, expected, magnitude)


def check_avgpool2d(assert_close, x, size, stride):
    y = kernels.avgpool2d(x, size=size, stride=stride)
    assert y.dtype == x.dtype
    expected = reference.avgpool2d(in_float64(x), size, stride)
    assert_close(y, expected, reference.avgpool2d(magnitude_of(x), size, stride))


def check_avgpool2d_backward(assert_close, grad_y, input_size, size, stride):
    grad_x = kernels.avgpool2d_backward(grad_y, input_size, size=size, stride=stride)
    assert grad_x.dtype == grad_y.dtype
    expected = reference.avgpool2d_backward(in_float64(grad_y), input_size, size, stride)
    magnitude = reference.avgpool2d_backward(magnitude_of(grad_y), input_size, size, stride)
    assert_close(grad_x, expected, magnitude)


def check_matmul(assert_close, a, b, transpose_a, transpose_b):
    c = kernels.matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b)
    assert c.dtype == a.dtype
    expected = reference.matmul(in_float64(a), in_float64(b), transpose_a, transpose_b)
    magnitude = reference.matmul(magnitude_of(a), magnitude_of(b), transpose_a, transpose_b)
    assert_close(c, expected, magnitude)


def matmul_operands(rng, m, k, n, transpose_a, transpose_b, dtype):
    """a and b as stored: (k, m) when transpose_a is set, (n, k) when transpose_b is."""
    a = rng.standard_normal((k, m) if transpose_a else (m, k), dtype)
    b = rng.standard_normal((n, k) if transpose_b else (k, n), dtype)
    return a, b


# Named cases


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("n", "c", "h", "w", "f", "kernel", "stride", "padding"), CONV_CASES)
def test_correlate2d(assert_close, rng, n, c, h, w, f, kernel, stride, padding, dtype, with_bias):
    x = rng.standard_normal((n, c, h, w), dtype)
    weights = rng.standard_normal((f, c, *as_pair(kernel)), dtype)
    bias = rng.standard_normal(f, dtype) if with_bias else None
    check_correlate2d(assert_close, x, weights, bias, stride, padding)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("n", "c", "h", "w", "f", "kernel", "stride", "padding"), CONV_CASES)
def test_correlate2d_backward_weight(
    assert_close, rng, n, c, h, w, f, kernel, stride, padding, dtype
):
    x = rng.standard_normal((n, c, h, w), dtype)
    grad_y = rng.standard_normal((n, f, *conv_output_size(h, w, kernel, stride, padding)), dtype)
    check_backward_weight(assert_close, x, grad_y, kernel, stride, padding)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("n", "c", "h", "w", "f", "kernel", "stride", "padding"), CONV_CASES)
def test_convolve2d_full(assert_close, rng, n, c, h, w, f, kernel, stride, padding, dtype):
    weights = rng.standard_normal((f, c, *as_pair(kernel)), dtype)
    grad_y = rng.standard_normal((n, f, *conv_output_size(h, w, kernel, stride, padding)), dtype)
    check_convolve2d_full(assert_close, grad_y, weights, (h, w), stride, padding)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("n", "c", "h", "w", "size", "stride"), POOL_CASES)
def test_maxpool2d(rng, n, c, h, w, size, stride, dtype):
    check_maxpool2d(rng.standard_normal((n, c, h, w), dtype), size, stride)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("n", "c", "h", "w", "size", "stride"), POOL_CASES)
def test_maxpool2d_backward(assert_close, rng, n, c, h, w, size, stride, dtype):
    _, argmax = reference.maxpool2d(rng.standard_normal((n, c, h, w), dtype), size, stride)
    grad_y = rng.standard_normal(argmax.shape, dtype)
    check_maxpool2d_backward(assert_close, grad_y, argmax, (h, w))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("n", "c", "h", "w", "size", "stride"), POOL_CASES)
def test_avgpool2d(assert_close, rng, n, c, h, w, size, stride, dtype):
    check_avgpool2d(assert_close, rng.standard_normal((n, c, h, w), dtype), size, stride)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("n", "c", "h", "w", "size", "stride"), POOL_CASES)
def test_avgpool2d_backward(assert_close, rng, n, c, h, w, size, stride, dtype):
    grad_y = rng.standard_normal((n, c, *pool_output_size(h, w, size, stride)), dtype)
    check_avgpool2d_backward(assert_close, grad_y, (h, w), size, stride)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("transpose_a", "transpose_b"), TRANSPOSES)
@pytest.mark.parametrize(("m", "k", "n"), MATMUL_SIZES)
def test_matmul(assert_close, rng, m, k, n, transpose_a, transpose_b, dtype):
    a, b = matmul_operands(rng, m, k, n, transpose_a, transpose_b, dtype)
    check_matmul(assert_close, a, b, transpose_a, transpose_b)


# Sizes around every register tile's edges (MR = 6, 8 or 12 rows; NR = 4 to 32
# columns; the unpacked path's 1 to 4 vectors), on both matmul paths: the
# unpacked one (a side of at most 128, or little work) and the packed one.

EDGE_SIZES = list(range(1, 71))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("transpose_a", "transpose_b"), TRANSPOSES)
@pytest.mark.parametrize("side", ["m", "k", "n"])
def test_matmul_at_tile_edges(assert_close, rng, side, transpose_a, transpose_b, dtype):
    for size in EDGE_SIZES:
        m, k, n = (size if side == name else other for name, other in zip("mkn", (29, 37, 45)))
        a, b = matmul_operands(rng, m, k, n, transpose_a, transpose_b, dtype)
        check_matmul(assert_close, a, b, transpose_a, transpose_b)


PACKED_EDGE_SIZES = [
    pytest.param(m, k, n, id=f"m{m}-k{k}-n{n}")
    for m, k, n in [
        (129, 700, 129),  # k in several steps
        (143, 131, 161),
        (144, 300, 160),
        (145, 130, 159),
        (131, 257, 250),
        (250, 513, 131),
    ]
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("transpose_a", "transpose_b"), TRANSPOSES)
@pytest.mark.parametrize(("m", "k", "n"), PACKED_EDGE_SIZES)
def test_matmul_packed_path_at_tile_edges(assert_close, rng, m, k, n, transpose_a, transpose_b, dtype):
    a, b = matmul_operands(rng, m, k, n, transpose_a, transpose_b, dtype)
    check_matmul(assert_close, a, b, transpose_a, transpose_b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("m", "k", "n"), [(150, 90, 70), (200, 300, 250)], ids=["unpacked", "packed"])
def test_matmul_of_strided_views_matches_the_reference(assert_close, rng, m, k, n, dtype):
    big_a = rng.standard_normal((2 * m, 3 * k), dtype)
    big_b = rng.standard_normal((3 * n, 2 * k), dtype)
    a = big_a[::2, ::3]  # rows and columns both strided
    b = big_b[::-3, ::2].T  # (k, n), reversed and transposed
    check_matmul(assert_close, a, b, False, False)
    check_matmul(assert_close, a.T, b.T, True, True)


# Max-pool ties, infinities and NaN: argmax and y must match exactly


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("size", "stride"), [(2, None), (3, 2), ((2, 3), 1)], ids=str)
def test_maxpool2d_ties_go_to_the_first(assert_close, rng, size, stride, dtype):
    x = rng.integers(0, 3, size=(3, 2, 9, 8)).astype(dtype)
    x[0, 0] = 1.0
    x[1, 1, :4] = -np.inf
    argmax = check_maxpool2d(x, size, stride)
    grad_y = rng.standard_normal(argmax.shape, dtype)
    check_maxpool2d_backward(assert_close, grad_y, argmax, (9, 8))


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxpool2d_nan_wins(rng, dtype):
    x = rng.standard_normal((2, 2, 6, 6), dtype)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = np.nan  # two in one window: the first wins
    x[1, 1, 3, 3] = np.nan  # shared by overlapping windows
    x[1, 0] = np.nan
    y, argmax = kernels.maxpool2d(x, size=3, stride=1)
    expected_y, expected_argmax = reference.maxpool2d(x, 3, 1)
    np.testing.assert_array_equal(argmax, expected_argmax)
    np.testing.assert_array_equal(y, expected_y)  # NaN equals NaN here


# Empty sizes


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_batch_gives_empty_outputs(dtype):
    x = np.zeros((0, 3, 8, 7), dtype)
    w = np.ones((4, 3, 3, 2), dtype)
    y = kernels.correlate2d(x, w, np.ones(4, dtype), stride=2, padding=1)
    assert y.shape == (0, 4, 4, 4) and y.dtype == dtype
    grad_w = kernels.correlate2d_backward_weight(x, y, (3, 2), stride=2, padding=1)
    assert grad_w.dtype == dtype
    np.testing.assert_array_equal(grad_w, np.zeros((4, 3, 3, 2)))
    grad_x = kernels.convolve2d_full(y, w, (8, 7), stride=2, padding=1)
    assert grad_x.shape == (0, 3, 8, 7) and grad_x.dtype == dtype
    pooled, argmax = kernels.maxpool2d(x, size=3, stride=2)
    assert pooled.shape == argmax.shape == (0, 3, 3, 3)
    assert kernels.maxpool2d_backward(pooled, argmax, (8, 7)).shape == (0, 3, 8, 7)
    assert kernels.avgpool2d(x, size=3, stride=2).shape == (0, 3, 3, 3)
    assert kernels.avgpool2d_backward(pooled, (8, 7), size=3, stride=2).shape == (0, 3, 8, 7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("transpose_a", "transpose_b"), TRANSPOSES)
def test_matmul_with_empty_inner_dimension_gives_zeros(transpose_a, transpose_b, dtype):
    a = np.ones((0, 5) if transpose_a else (5, 0), dtype)
    b = np.ones((6, 0) if transpose_b else (0, 6), dtype)
    c = kernels.matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b)
    assert c.dtype == dtype
    np.testing.assert_array_equal(c, np.zeros((5, 6)))


# Hypothesis: shapes, strides and paddings searched


def int_or_pair(low, high):
    one = st.integers(low, high)
    return st.one_of(one, st.tuples(one, one))


@st.composite
def conv_problems(draw):
    """(x, w, bias, grad_y, stride, padding) for a valid correlation."""
    n, c, f = draw(st.integers(0, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 5))
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    padding = draw(int_or_pair(0, 2))
    ph, pw = as_pair(padding)
    kernel = (draw(st.integers(1, h + 2 * ph)), draw(st.integers(1, w + 2 * pw)))
    stride = draw(int_or_pair(1, 5))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, c, h, w), dtype)
    weights = rng.standard_normal((f, c, *kernel), dtype)
    bias = rng.standard_normal(f, dtype) if draw(st.booleans()) else None
    grad_y = rng.standard_normal((n, f, *conv_output_size(h, w, kernel, stride, padding)), dtype)
    return x, weights, bias, grad_y, stride, padding


@st.composite
def pool_problems(draw):
    """(x, size, stride, grad_y) for a valid pooling."""
    n, c = draw(st.integers(0, 4)), draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    size = draw(
        st.one_of(st.integers(1, min(h, w)), st.tuples(st.integers(1, h), st.integers(1, w)))
    )
    stride = draw(st.one_of(st.none(), int_or_pair(1, 4)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, c, h, w), dtype)
    grad_y = rng.standard_normal((n, c, *pool_output_size(h, w, size, stride)), dtype)
    return x, size, stride, grad_y


@SHAPE_SEARCH
@given(problem=conv_problems())
def test_correlate2d_search(assert_close, problem):
    x, w, bias, _, stride, padding = problem
    check_correlate2d(assert_close, x, w, bias, stride, padding)


@SHAPE_SEARCH
@given(problem=conv_problems())
def test_correlate2d_backward_weight_search(assert_close, problem):
    x, w, _, grad_y, stride, padding = problem
    check_backward_weight(assert_close, x, grad_y, w.shape[2:], stride, padding)


@SHAPE_SEARCH
@given(problem=conv_problems())
def test_convolve2d_full_search(assert_close, problem):
    x, w, _, grad_y, stride, padding = problem
    check_convolve2d_full(assert_close, grad_y, w, x.shape[2:], stride, padding)


@SHAPE_SEARCH
@given(problem=pool_problems())
def test_maxpool2d_search(assert_close, problem):
    x, size, stride, grad_y = problem
    argmax = check_maxpool2d(x, size, stride)
    check_maxpool2d_backward(assert_close, grad_y, argmax, x.shape[2:])


@SHAPE_SEARCH
@given(problem=pool_problems())
def test_avgpool2d_search(assert_close, problem):
    x, size, stride, grad_y = problem
    check_avgpool2d(assert_close, x, size, stride)
    check_avgpool2d_backward(assert_close, grad_y, x.shape[2:], size, stride)


@SHAPE_SEARCH
@given(
    sizes=st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(0, 40)),
    transposes=st.tuples(st.booleans(), st.booleans()),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
)
def test_matmul_search(assert_close, sizes, transposes, dtype, seed):
    a, b = matmul_operands(np.random.default_rng(seed), *sizes, *transposes, dtype)
    check_matmul(assert_close, a, b, *transposes)


# Memory layout: a strided or byte-swapped array gives the same bits as a plain copy

LAYOUTS = ["fortran", "transposed", "stepped", "reversed", "byteswapped"]


def relayout(array, layout):
    """The same values as array, stored in another memory layout."""
    if layout == "fortran":
        return np.asfortranarray(array)
    if layout == "transposed":  # the last two axes swapped in memory
        if array.ndim < 2:
            return array
        return np.ascontiguousarray(np.swapaxes(array, -1, -2)).swapaxes(-1, -2)
    if layout == "stepped":  # every other element of a larger array
        fill = -1 if array.dtype.kind == "i" else np.nan
        spread = np.full([2 * extent for extent in array.shape], fill, array.dtype)
        view = spread[(slice(None, None, 2),) * array.ndim]
        view[...] = array
        return view
    if layout == "byteswapped":  # the other byte order
        return array.astype(array.dtype.newbyteorder())
    assert layout == "reversed"  # negative strides on every axis
    return np.flip(np.flip(array).copy())


KERNEL_NAMES = [
    "correlate2d",
    "correlate2d_backward_weight",
    "convolve2d_full",
    "maxpool2d",
    "maxpool2d_backward",
    "avgpool2d",
    "avgpool2d_backward",
    "matmul",
    "matmul-aT",
    "matmul-bT",
    "matmul-aT-bT",
]


def matmul_calls(rng, m, k, n, dtype):
    """matmul under each transpose combination, as name: (function, (a, b))."""
    calls = {}
    for transpose_a, transpose_b in [(False, False), (True, False), (False, True), (True, True)]:
        name = "matmul" + "-aT" * transpose_a + "-bT" * transpose_b
        function = functools.partial(
            kernels.matmul, transpose_a=transpose_a, transpose_b=transpose_b
        )
        calls[name] = (function, matmul_operands(rng, m, k, n, transpose_a, transpose_b, dtype))
    return calls


def kernel_calls(rng, dtype):
    """Each kernel as name: (function, array arguments), on small non-trivial shapes."""
    x = rng.standard_normal((3, 4, 9, 8), dtype)
    w = rng.standard_normal((5, 4, 3, 2), dtype)
    bias = rng.standard_normal(5, dtype)
    grad_y = rng.standard_normal((3, 5, 5, 5), dtype)  # y of x, w with stride 2, padding 1
    _, argmax = reference.maxpool2d(x, 3, 2)
    pool_grad_y = rng.standard_normal(argmax.shape, dtype)
    return {
        "correlate2d": (
            lambda x, w, bias: kernels.correlate2d(x, w, bias, stride=2, padding=1),
            (x, w, bias),
        ),
        "correlate2d_backward_weight": (
            lambda x, grad_y: kernels.correlate2d_backward_weight(
                x, grad_y, (3, 2), stride=2, padding=1
            ),
            (x, grad_y),
        ),
        "convolve2d_full": (
            lambda grad_y, w: kernels.convolve2d_full(grad_y, w, (9, 8), stride=2, padding=1),
            (grad_y, w),
        ),
        "maxpool2d": (lambda x: kernels.maxpool2d(x, size=3, stride=2), (x,)),
        "maxpool2d_backward": (
            lambda grad_y, argmax: kernels.maxpool2d_backward(grad_y, argmax, (9, 8)),
            (pool_grad_y, argmax),
        ),
        "avgpool2d": (lambda x: kernels.avgpool2d(x, size=3, stride=2), (x,)),
        "avgpool2d_backward": (
            lambda grad_y: kernels.avgpool2d_backward(grad_y, (9, 8), size=3, stride=2),
            (pool_grad_y,),
        ),
        **matmul_calls(rng, 37, 19, 23, dtype),
    }


def assert_identical(first, second):
    if isinstance(first, tuple):
        assert isinstance(second, tuple) and len(first) == len(second)
        for one, other in zip(first, second):
            assert_identical(one, other)
        return
    assert first.dtype == second.dtype
    np.testing.assert_array_equal(first, second, strict=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_strided_inputs_give_the_same_results(rng, name, layout, dtype):
    function, arrays = kernel_calls(rng, dtype)[name]
    strided = [relayout(array, layout) for array in arrays]
    assert any(not (array.flags.c_contiguous and array.dtype.isnative) for array in strided)
    originals = [array.copy() for array in arrays]
    assert_identical(function(*strided), function(*arrays))
    for array, view, original in zip(arrays, strided, originals):  # inputs are left alone
        np.testing.assert_array_equal(array, original)
        np.testing.assert_array_equal(view, original)


# Threads: results do not depend on how many threads compute them


@pytest.fixture
def restore_num_threads():
    previous = fastcnn.get_num_threads()
    try:
        yield
    finally:
        fastcnn.set_num_threads(previous)


def large_kernel_calls(rng, dtype):
    """Each kernel as name: (function, array arguments), on sizes worth splitting."""
    x = rng.standard_normal((16, 64, 20, 20), dtype)
    w = rng.standard_normal((32, 64, 3, 3), dtype)
    bias = rng.standard_normal(32, dtype)
    grad_y = rng.standard_normal((16, 32, 20, 20), dtype)  # y of x, w with padding 1
    pool_x = rng.standard_normal((16, 64, 31, 31), dtype)
    _, argmax = reference.maxpool2d(pool_x, 3, 2)
    pool_grad_y = rng.standard_normal(argmax.shape, dtype)
    big_x = rng.standard_normal((3, 256, 12, 12), dtype)  # C*kh*kw = 4096: the gemm path
    big_w = rng.standard_normal((256, 256, 4, 4), dtype)
    big_grad_y = rng.standard_normal((3, 256, 11, 11), dtype)
    # Few filters (lanes over output columns) and a stride above the kernel
    # (im2col + gemm) take the other two weight-gradient paths.
    few_x = rng.standard_normal((16, 6, 28, 28), dtype)
    few_grad_y = rng.standard_normal((16, 6, 28, 28), dtype)
    strided_grad_y = rng.standard_normal((16, 32, 7, 7), dtype)
    narrow_x = rng.standard_normal((16, 16, 14, 14), dtype)  # LeNet's conv2
    narrow_w = rng.standard_normal((32, 16, 5, 5), dtype)
    narrow_grad_y = rng.standard_normal((16, 32, 10, 10), dtype)
    return {
        "correlate2d": (lambda: kernels.correlate2d(x, w, bias, padding=1), ()),
        "correlate2d_backward_weight": (
            lambda: kernels.correlate2d_backward_weight(x, grad_y, 3, padding=1),
            (),
        ),
        "convolve2d_full": (lambda: kernels.convolve2d_full(grad_y, w, (20, 20), padding=1), ()),
        "maxpool2d": (lambda: kernels.maxpool2d(pool_x, size=3, stride=2), ()),
        "maxpool2d_backward": (
            lambda: kernels.maxpool2d_backward(pool_grad_y, argmax, (31, 31)),
            (),
        ),
        "avgpool2d": (lambda: kernels.avgpool2d(pool_x, size=3, stride=2), ()),
        "avgpool2d_backward": (
            lambda: kernels.avgpool2d_backward(pool_grad_y, (31, 31), size=3, stride=2),
            (),
        ),
        **matmul_calls(rng, 300, 300, 300, dtype),
        **{f"{name}-dense": call for name, call in matmul_calls(rng, 64, 784, 100, dtype).items()},
        **{f"{name}-narrow": call for name, call in matmul_calls(rng, 1000, 1280, 10, dtype).items()},
        "correlate2d_backward_weight-bias": (
            lambda: kernels.correlate2d_backward_weight(x, grad_y, 3, padding=1, bias_grad=True),
            (),
        ),
        "correlate2d_backward_weight-few-filters": (
            lambda: kernels.correlate2d_backward_weight(few_x, few_grad_y, 5, padding=2,
                                                        bias_grad=True),
            (),
        ),
        "correlate2d_backward_weight-stride-above-kernel": (
            lambda: kernels.correlate2d_backward_weight(x, strided_grad_y, 2, stride=3,
                                                        bias_grad=True),
            (),
        ),
        "correlate2d-narrow": (lambda: kernels.correlate2d(narrow_x, narrow_w, bias), ()),
        "correlate2d-narrow-batch1": (lambda: kernels.correlate2d(narrow_x[:1], narrow_w), ()),
        "convolve2d_full-narrow": (
            lambda: kernels.convolve2d_full(narrow_grad_y, narrow_w, (14, 14)),
            (),
        ),
        **conv_calls("batch1", x[:1], w, grad_y[:1], 1),
        **conv_calls("gemm", big_x, big_w, big_grad_y, 1),
    }


def conv_calls(suffix, x, w, grad_y, padding):
    """The three convolution kernels on x, w, grad_y, named with the suffix."""
    kernel, size = w.shape[2:], x.shape[2:]
    return {
        f"correlate2d-{suffix}": (lambda: kernels.correlate2d(x, w, None, 1, padding), ()),
        f"correlate2d_backward_weight-{suffix}": (
            lambda: kernels.correlate2d_backward_weight(x, grad_y, kernel, 1, padding),
            (),
        ),
        f"convolve2d_full-{suffix}": (
            lambda: kernels.convolve2d_full(grad_y, w, size, 1, padding),
            (),
        ),
    }


# Besides every kernel: one image (threads split its rows or channels), the
# im2col + gemm path of the convolutions, the weight gradient's special paths, the
# narrow convolution, and matmul's unpacked path on a dense layer's shapes (a batch
# of 64; 10 outputs).
THREADED_NAMES = (
    KERNEL_NAMES
    + [
        f"{kernel}-{case}"
        for case in ("batch1", "gemm")
        for kernel in ("correlate2d", "correlate2d_backward_weight", "convolve2d_full")
    ]
    + [f"correlate2d_backward_weight-{case}"
       for case in ("bias", "few-filters", "stride-above-kernel")]
    + ["correlate2d-narrow", "correlate2d-narrow-batch1", "convolve2d_full-narrow"]
    + [f"{name}-{case}" for case in ("dense", "narrow") for name in KERNEL_NAMES if "matmul" in name]
)


@pytest.mark.usefixtures("restore_num_threads")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", THREADED_NAMES)
def test_results_do_not_depend_on_the_thread_count(rng, name, dtype):
    function, arrays = large_kernel_calls(rng, dtype)[name]
    fastcnn.set_num_threads(1)
    single = function(*arrays)
    for threads in (2, 3):
        fastcnn.set_num_threads(threads)
        assert_identical(function(*arrays), single)


@pytest.mark.usefixtures("restore_num_threads")
def test_set_num_threads_round_trip():
    for threads in (1, 3, 2):
        fastcnn.set_num_threads(threads)
        assert fastcnn.get_num_threads() == threads


@pytest.mark.usefixtures("restore_num_threads")
@pytest.mark.parametrize("threads", [0, -1])
def test_set_num_threads_refuses_non_positive(threads):
    before = fastcnn.get_num_threads()
    with pytest.raises(ValueError, match="threads"):
        fastcnn.set_num_threads(threads)
    assert fastcnn.get_num_threads() == before
