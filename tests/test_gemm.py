"""kernels.matmul's special paths against fastcnn.reference: a batch of one (one row,
k split over accumulators), a few rows against a transposed B (dot products along k),
a last vector of columns narrower than a register (256-bit under AVX-512); the same
bits whatever the thread count; every SIMD path; the transpose flags checked in C++."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastcnn
from fastcnn import _core, kernels, reference

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]
TRANSPOSES = [(False, False), (True, False), (False, True), (True, True)]
TRANSPOSE_IDS = ["a@b", "aT@b", "a@bT", "aT@bT"]


def operands(rng, m, k, n, transpose_a, transpose_b, dtype):
    """a and b as stored: (k, m) when transpose_a is set, (n, k) when transpose_b is."""
    a = rng.standard_normal((k, m) if transpose_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if transpose_b else (k, n)).astype(dtype)
    return a, b


def check(assert_close, a, b, transpose_a, transpose_b):
    c = kernels.matmul(a, b, transpose_a, transpose_b)
    assert c.dtype == a.dtype
    wide = [np.asarray(x, np.float64) for x in (a, b)]
    expected = reference.matmul(*wide, transpose_a, transpose_b)
    magnitude = reference.matmul(*(np.abs(x) for x in wide), transpose_a, transpose_b)
    assert_close(c, expected, magnitude)
    return c


# A dense layer at batch 1 (LeNet's 800 -> 120 -> 84 -> 10 and the write-ups'
# 1176 -> 10): forward, weight gradient (aT@b), input gradient (a@bT).
DENSE = [(800, 120), (120, 84), (84, 10), (1176, 10)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("inputs", "outputs"), DENSE, ids=[f"{i}to{o}" for i, o in DENSE])
def test_dense_layer_products_at_batch_one(assert_close, rng, inputs, outputs, dtype):
    x = rng.standard_normal((1, inputs)).astype(dtype)
    w = rng.standard_normal((inputs, outputs)).astype(dtype)
    g = rng.standard_normal((1, outputs)).astype(dtype)
    check(assert_close, x, w, False, False)
    check(assert_close, x, g, True, False)
    check(assert_close, g, w, False, True)


# One row: k around the 4 accumulators (k mod 4, k < 4), columns around every
# vector count and half-vector tail.
ONE_ROW = [(k, n) for k in (1, 2, 3, 4, 5, 7, 8, 9, 63, 130) for n in (1, 3, 4, 5, 9, 10, 17, 37, 64, 70)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("transpose_a", "transpose_b"), TRANSPOSES, ids=TRANSPOSE_IDS)
@pytest.mark.parametrize(("k", "n"), ONE_ROW, ids=[f"k{k}-n{n}" for k, n in ONE_ROW])
def test_one_row(assert_close, rng, k, n, transpose_a, transpose_b, dtype):
    check(assert_close, *operands(rng, 1, k, n, transpose_a, transpose_b, dtype),
          transpose_a, transpose_b)


# A few rows against Bᵀ: k below, at and past a vector (8 or 16 lanes), with a
# partial last vector; n around the 16 (or 8) columns of a dot tile.
DOT = [(m, k, n) for m, k in ((1, 3), (1, 8), (1, 16), (1, 17), (1, 40), (2, 37), (3, 120), (5, 300))
       for n in (1, 7, 8, 15, 16, 17, 33, 100)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("transpose_a", [False, True], ids=["a", "aT"])
@pytest.mark.parametrize(("m", "k", "n"), DOT, ids=[f"m{m}-k{k}-n{n}" for m, k, n in DOT])
def test_few_rows_against_transposed_b(assert_close, rng, m, k, n, transpose_a, dtype):
    check(assert_close, *operands(rng, m, k, n, transpose_a, True, dtype), transpose_a, True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_transposed_b_read_through_strides(assert_close, rng, dtype):
    # Bᵀ's rows contiguous, its row stride not k (a slice of a wider array); A reversed.
    a = rng.standard_normal((2, 90)).astype(dtype)[:, ::-1]
    b = rng.standard_normal((50, 130)).astype(dtype)[:, 5:95]
    check(assert_close, a, b, False, True)


# Columns whose last vector fits in half a register, for several row counts.
NARROW = [(m, n) for m in (1, 2, 7, 8, 9, 64) for n in (2, 3, 4, 8, 10, 12, 20, 24, 36, 68, 100)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("transpose_a", "transpose_b"), TRANSPOSES, ids=TRANSPOSE_IDS)
@pytest.mark.parametrize(("m", "n"), NARROW, ids=[f"m{m}-n{n}" for m, n in NARROW])
def test_narrow_last_vector(assert_close, rng, m, n, transpose_a, transpose_b, dtype):
    check(assert_close, *operands(rng, m, 77, n, transpose_a, transpose_b, dtype),
          transpose_a, transpose_b)


@pytest.fixture
def restore_num_threads():
    previous = fastcnn.get_num_threads()
    yield
    fastcnn.set_num_threads(previous)


# Products big enough for a team of threads on each special path, and on the
# packed path (several k-steps; rows in blocks of unequal tile counts).
THREADED = [(1, 4096, 300, False, False), (1, 4096, 300, False, True), (2, 3000, 500, False, True),
            (64, 1176, 10, False, False), (64, 784, 10, True, False), (64, 2000, 12, False, False),
            (301, 900, 203, False, False), (203, 900, 301, True, True)]


@pytest.mark.usefixtures("restore_num_threads")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("m", "k", "n", "transpose_a", "transpose_b"), THREADED,
                         ids=[f"m{m}-k{k}-n{n}-{'aT' if ta else 'a'}@{'bT' if tb else 'b'}"
                              for m, k, n, ta, tb in THREADED])
def test_same_bits_whatever_the_thread_count(assert_close, rng, m, k, n, transpose_a,
                                             transpose_b, dtype):
    a, b = operands(rng, m, k, n, transpose_a, transpose_b, dtype)
    fastcnn.set_num_threads(1)
    one = check(assert_close, a, b, transpose_a, transpose_b)
    for threads in (2, 3):
        fastcnn.set_num_threads(threads)
        np.testing.assert_array_equal(kernels.matmul(a, b, transpose_a, transpose_b), one)


SUPPORTED = subprocess.run(
    [sys.executable, "-c", "from fastcnn import _core; print(' '.join(_core.supported_simd_paths()))"],
    capture_output=True, text=True, timeout=120,
).stdout.split()


@pytest.mark.parametrize("path", SUPPORTED)
def test_every_simd_path_on_the_special_paths(path):
    code = """
        import numpy as np, fastcnn
        from fastcnn import kernels, reference
        rng = np.random.default_rng(3)
        for dtype, tol in ((np.float32, 1e-5), (np.float64, 1e-12)):
            for m, k, n in ((1, 1176, 10), (1, 10, 1176), (1, 7, 3), (1, 130, 37), (3, 120, 33),
                            (2, 37, 17), (9, 77, 10), (64, 77, 12), (8, 77, 36), (64, 1176, 10)):
                for ta in (False, True):
                    for tb in (False, True):
                        a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
                        b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
                        expected = reference.matmul(a.astype(np.float64), b.astype(np.float64), ta, tb)
                        magnitude = reference.matmul(np.abs(a).astype(np.float64),
                                                     np.abs(b).astype(np.float64), ta, tb)
                        error = np.abs(kernels.matmul(a, b, ta, tb) - expected)
                        assert np.all(error <= tol * (np.abs(expected) + magnitude)), (m, k, n, ta, tb)
        print(fastcnn.show_config())
    """
    environment = {key: value for key, value in os.environ.items() if not key.startswith("FASTCNN_")}
    environment["FASTCNN_ISA"] = path
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=environment,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"SIMD path {path}" in result.stdout


@pytest.mark.parametrize("flag", [1, 0, None, "yes", 1.0], ids=repr)
@pytest.mark.parametrize("name", ["transpose_a", "transpose_b"])
def test_transpose_flags_must_be_bools(flag, name):
    a = np.ones((3, 3), np.float32)
    with pytest.raises(TypeError, match=rf"{name} must be True or False, got {flag!r}"):
        kernels.matmul(a, a, **{name: flag})
    with pytest.raises(TypeError, match=rf"{name} must be True or False"):
        _core.matmul(a, a, **{name: flag})


def test_numpy_bools_and_the_other_byte_order_are_accepted(rng):
    a = rng.standard_normal((4, 6))
    b = rng.standard_normal((6, 5))
    expected = reference.matmul(a, b)
    swapped = a.astype(a.dtype.newbyteorder())
    c = kernels.matmul(swapped, b, np.bool_(False), np.False_)
    np.testing.assert_allclose(c, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(kernels.matmul(a.T.copy(), b, np.True_), expected,
                               rtol=1e-12, atol=1e-12)
