"""Fuzzing the kernels: any arguments give the reference's answer or a clean error.

Hypothesis draws arguments for every kernel of fastcnn.kernels: a valid problem,
then up to two of its arguments spoiled -- another rank, shape or dtype (ints,
float16, longdouble, complex, bool, object), a list or None for an array, strides,
paddings and sizes that are 0, negative, huge or not ints. Arrays come in any
memory layout (Fortran order, transposed, sliced with a step, reversed, broadcast
with zero strides, misaligned, byte-swapped, read-only) and hold NaN, infinities,
signed zeros and denormals. Each call must either

- return what fastcnn.reference returns for the same arguments: the same shape and
  dtype, NaN exactly where the reference has NaN, the same infinities, and the other
  values within rounding; and leave its inputs unchanged, or
- raise TypeError, ValueError or IndexError with a message that speaks Python.

Any other exception, a crash or a wrong answer fails.

The number of examples per test comes from a Hypothesis profile named by the
FASTCNN_FUZZ environment variable: "ci" (the default, 100 examples), "sanitize"
(40, for the slower sanitized build of .ci/sanitize) or "long" (10,000). The long run:

    FASTCNN_FUZZ=long pytest tests/test_fuzz.py
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from fastcnn import kernels, reference

settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "sanitize", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long", max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
PROFILE = os.environ.get("FASTCNN_FUZZ", "ci")
if PROFILE not in ("ci", "sanitize", "long"):
    raise ValueError(f"FASTCNN_FUZZ must be ci, sanitize or long, got {PROFILE!r}")
FUZZ = settings(settings.get_profile(PROFILE))

FLOAT_DTYPES = [np.dtype(np.float32), np.dtype(np.float64)]
OTHER_DTYPES = [
    np.dtype(t)
    for t in (np.float16, np.longdouble, np.int8, np.int32, np.int64, np.uint8, np.bool_,
              np.complex64, np.complex128, object)
]
LAYOUTS = ["fortran", "transposed", "stepped", "reversed", "broadcast", "misaligned",
           "byteswapped", "readonly"]
# Values for stride, padding, size, kernel_size and input_size besides the valid ones.
# Huge values are ones whose outputs are refused or astronomically large: a huge but
# allocatable output (gigabytes) would be a memory test, not a fuzz example.
ODD_PARAMETERS = [
    0, -1, -7, 2**31 - 1, 2**31, 2**32 + 1, 2**62, 2**63, 2**64, -(2**31), -(2**63),
    1.5, 2.0, True, None, "2", b"2", (1,), (1, 2, 3), (), (2, 1.0), (2, None),
    np.int64(2), np.uint8(3), np.float64(2.0), [2, 2], (np.int32(1), 2), np.array(2),
    np.array([2, 2]),
]
ERRORS = (TypeError, ValueError, IndexError)
# Words of C++ that a message meant for Python users should not show.
CXX_WORDS = ("std::", "max_size()", "bad_alloc", "basic_string", "vector")
TOLERANCE = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


# ---- arrays --------------------------------------------------------------------------


def values(rng, shape, dtype, special_rate):
    """Random values of dtype; a special_rate share of them NaN, ±inf, ±0 or denormal."""
    data = rng.standard_normal(shape)
    if dtype.kind == "f" and special_rate:
        tiny = float(np.finfo(dtype).smallest_subnormal)
        specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, tiny, -tiny, 3 * tiny])
        chosen = rng.random(shape) < special_rate
        data[chosen] = rng.choice(specials, int(chosen.sum()))
    if dtype.kind in "iub":
        return np.abs(data * 3).round().astype(dtype)
    if dtype.kind == "O":
        return data.astype(object)
    return data.astype(dtype)


def stored(array, layout, rng):
    """array's values (or, for "broadcast", a broadcast slice of them) in another layout."""
    if layout == "fortran":
        return np.asfortranarray(array)
    if layout == "transposed" and array.ndim >= 2:
        return np.ascontiguousarray(np.swapaxes(array, -1, -2)).swapaxes(-1, -2)
    if layout == "stepped":
        step = int(rng.integers(2, 4))
        spread = np.zeros([step * extent + 1 for extent in array.shape], array.dtype)
        view = spread[(slice(1, None, step),) * array.ndim]
        view[...] = array
        return view
    if layout == "reversed" and array.ndim:
        axes = tuple(axis for axis in range(array.ndim) if rng.random() < 0.7) or (0,)
        return np.flip(np.flip(array, axes).copy(), axes)
    if layout == "broadcast" and array.ndim:
        axis = int(rng.integers(array.ndim))
        return np.broadcast_to(array.take([0], axis=axis) if array.shape[axis] else array,
                               array.shape)
    if layout == "misaligned" and array.dtype.kind != "O":
        buffer = np.empty(array.nbytes + 1, np.uint8)[1:]
        view = buffer.view(array.dtype).reshape(array.shape)
        view[...] = array
        return view
    if layout == "byteswapped":
        return array.astype(array.dtype.newbyteorder())
    if layout == "readonly":
        array = array.copy()
        array.flags.writeable = False
        return array
    return array


# Half the arrays as they are made (C order), half in one of the other layouts.
LAYOUT = st.one_of(st.just("c"), st.sampled_from(LAYOUTS))


# ---- valid problems ------------------------------------------------------------------

def int_or_pair_of(low, high):
    one = st.integers(low, high)
    return st.one_of(one, st.tuples(one, one))


def pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def output_size(extent, window, step, pad):
    return (extent + 2 * pad - window) // step + 1


@st.composite
def conv_shapes(draw):
    """n, c, f, (h, w), (kh, kw), stride, padding of a valid correlation."""
    n = draw(st.integers(0, 3))
    c, f = draw(st.sampled_from([(1, 1), (1, 3), (2, 2), (3, 4), (256, 2), (3, 64)]))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    padding = draw(int_or_pair_of(0, 2))
    (ph, pw) = pair(padding)
    most = 4 if c >= 256 else h + 2 * ph  # 256 channels x 4x4 takes the im2col + gemm path
    kernel = (draw(st.integers(1, min(most, h + 2 * ph))),
              draw(st.integers(1, min(most, w + 2 * pw))))
    stride = draw(int_or_pair_of(1, 5))
    return n, c, f, (h, w), kernel, stride, padding


@st.composite
def arrays_for(draw, shapes, dtype=None):
    """Float arrays of the given shapes (one dtype for all), each in a drawn layout."""
    dtype = dtype or draw(st.sampled_from(FLOAT_DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    special_rate = draw(st.sampled_from([0.0, 0.0, 0.02, 0.2, 1.0]))
    made = []
    for shape in shapes:
        array = values(rng, shape, dtype, special_rate)
        made.append(stored(array, draw(LAYOUT), rng))
    return made


@st.composite
def correlate2d_arguments(draw):
    n, c, f, (h, w), kernel, stride, padding = draw(conv_shapes())
    x, weights, bias = draw(arrays_for([(n, c, h, w), (f, c, *kernel), (f,)]))
    bias = draw(st.sampled_from([bias, None]))
    return dict(x=x, w=weights, bias=bias, stride=stride, padding=padding)


@st.composite
def backward_weight_arguments(draw):
    n, c, f, (h, w), kernel, stride, padding = draw(conv_shapes())
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    out = (output_size(h, kernel[0], sh, ph), output_size(w, kernel[1], sw, pw))
    x, grad_y = draw(arrays_for([(n, c, h, w), (n, f, *out)]))
    kernel_size = kernel[0] if kernel[0] == kernel[1] and draw(st.booleans()) else kernel
    return dict(x=x, grad_y=grad_y, kernel_size=kernel_size, stride=stride, padding=padding)


@st.composite
def convolve2d_full_arguments(draw):
    n, c, f, (h, w), kernel, stride, padding = draw(conv_shapes())
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    out = (output_size(h, kernel[0], sh, ph), output_size(w, kernel[1], sw, pw))
    grad_y, weights = draw(arrays_for([(n, f, *out), (f, c, *kernel)]))
    input_size = h if h == w and draw(st.booleans()) else (h, w)
    return dict(grad_y=grad_y, w=weights, input_size=input_size, stride=stride,
                padding=padding)


@st.composite
def pool_shapes(draw):
    """n, c, (h, w), size, stride of a valid pooling (stride None means size)."""
    n, c = draw(st.integers(0, 3)), draw(st.sampled_from([1, 2, 3, 17]))
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    size = draw(st.one_of(st.integers(1, min(h, w)),
                          st.tuples(st.integers(1, h), st.integers(1, w))))
    stride = draw(st.one_of(st.none(), int_or_pair_of(1, 5)))
    return n, c, (h, w), size, stride


def pool_output(h, w, size, stride):
    (kh, kw) = pair(size)
    (sh, sw) = (kh, kw) if stride is None else pair(stride)
    return output_size(h, kh, sh, 0), output_size(w, kw, sw, 0)


@st.composite
def pool_arguments(draw):
    n, c, (h, w), size, stride = draw(pool_shapes())
    (x,) = draw(arrays_for([(n, c, h, w)]))
    return dict(x=x, size=size, stride=stride)


@st.composite
def maxpool2d_backward_arguments(draw):
    n, c, (h, w), size, stride = draw(pool_shapes())
    out = pool_output(h, w, size, stride)
    (grad_y,) = draw(arrays_for([(n, c, *out)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):  # what maxpool2d gives (overlapping windows share winners)
        _, argmax = reference.maxpool2d(rng.standard_normal((n, c, h, w)), size, stride)
    else:  # any index inside the plane is valid
        argmax = rng.integers(0, h * w, (n, c, *out))
    argmax = stored(argmax.astype(np.int64), draw(LAYOUT), rng)
    return dict(grad_y=grad_y, argmax=argmax, input_size=(h, w))


@st.composite
def avgpool2d_backward_arguments(draw):
    n, c, (h, w), size, stride = draw(pool_shapes())
    (grad_y,) = draw(arrays_for([(n, c, *pool_output(h, w, size, stride))]))
    return dict(grad_y=grad_y, input_size=(h, w), size=size, stride=stride)


@st.composite
def matmul_arguments(draw):
    m, k, n = (draw(st.sampled_from([0, 1, 2, 3, 7, 8, 17, 33, 70])) for _ in range(3))
    transpose_a, transpose_b = draw(st.booleans()), draw(st.booleans())
    a, b = draw(arrays_for([(k, m) if transpose_a else (m, k),
                            (n, k) if transpose_b else (k, n)]))
    return dict(a=a, b=b, transpose_a=transpose_a, transpose_b=transpose_b)


# ---- spoiling a valid problem --------------------------------------------------------


@st.composite
def spoiled_array(draw, array):
    """array with another dtype, rank or shape, or something that is not an array."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    how = draw(st.sampled_from(["dtype", "other float", "rank", "extent", "not an array",
                                "index"]))
    if how == "index" and array.dtype == np.int64 and array.size:  # argmax out of its plane
        spoilt = array.copy()
        spoilt.flat[draw(st.integers(0, array.size - 1))] = draw(
            st.sampled_from([-1, -(2**63), 10**6, 2**62]))
        return spoilt
    if how in ("not an array", "index"):
        return draw(st.sampled_from([None, 1.0, "x", array.tolist()]))
    if how == "rank":
        if array.ndim == 0 or draw(st.booleans()):
            return array[None]
        return array[0] if array.shape[0] else np.zeros(array.shape[1:], array.dtype)
    dtype = array.dtype
    if how == "dtype":
        dtype = draw(st.sampled_from(OTHER_DTYPES))
    elif how == "other float":
        dtype = FLOAT_DTYPES[dtype == FLOAT_DTYPES[0]]
    shape = list(array.shape)
    if how == "extent" and shape:
        axis = draw(st.integers(0, len(shape) - 1))
        shape[axis] = draw(st.sampled_from([0, 1, shape[axis] + 1, max(shape[axis] - 1, 0)]))
    special_rate = draw(st.sampled_from([0.0, 0.2]))
    return stored(values(rng, tuple(shape), np.dtype(dtype), special_rate), draw(LAYOUT), rng)


ARRAY_ARGUMENTS = {"x", "w", "bias", "grad_y", "argmax", "a", "b"}


@st.composite
def spoiled(draw, arguments):
    """arguments with up to two of them replaced by something odd."""
    arguments = dict(arguments)
    names = sorted(arguments)
    for _ in range(draw(st.sampled_from([0, 1, 1, 2]))):
        name = draw(st.sampled_from(names))
        value = arguments[name]
        if name in ARRAY_ARGUMENTS and isinstance(value, np.ndarray):
            arguments[name] = draw(spoiled_array(value))
        elif name.startswith("transpose"):
            arguments[name] = draw(st.sampled_from([0, 1, None, np.bool_(True), "yes", 2.5]))
        else:
            arguments[name] = draw(st.one_of(st.sampled_from(ODD_PARAMETERS),
                                             int_or_pair_of(-2, 12)))
    return arguments


# ---- judging one call ----------------------------------------------------------------


def snapshot(arguments):
    return {name: value.copy() for name, value in arguments.items()
            if isinstance(value, np.ndarray)}


def in_float64(arguments, absolute=False):
    """The arguments with their float arrays as float64 (absolute values if asked)."""
    converted = {}
    for name, value in arguments.items():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            value = np.array(value, dtype=np.float64)
            if absolute:
                value = np.abs(value)
        converted[name] = value
    return converted


def assert_clean_error(error):
    message = str(error)
    assert message, f"{type(error).__name__} without a message"
    assert not any(word in message for word in CXX_WORDS), (
        f"{type(error).__name__} speaks C++: {message}"
    )


def where_zero_meets_nonfinite(name, arguments):
    """How many terms of each output multiply a zero by an infinity or NaN.

    IEEE arithmetic makes such a term NaN, but BLAS skips terms whose factor is zero,
    and so the reference (tensordot, @) gives NaN there or not depending on which
    operand the zero is in. Both answers are defensible, so any value is accepted
    there. The zero padding of the forward pass and of the weight gradient counts as
    zeros; convolve2d_full's definition has no padding terms (they are cropped away).
    The counts come from the reference run on 0/1 indicator arrays, where skipping
    zero terms changes nothing.
    """
    def zero(a):
        return (np.asarray(a) == 0).astype(np.float64)

    def nonfinite(a):
        return (~np.isfinite(a)).astype(np.float64)

    if name == "correlate2d":
        x, w = arguments["x"], arguments["w"]
        stride, padding = arguments["stride"], arguments["padding"]

        def terms(a, b):
            return reference.correlate2d(a, b, None, stride, padding)

        padded = (nonfinite(w).sum(axis=(1, 2, 3))[None, :, None, None]
                  - terms(np.ones(x.shape), nonfinite(w)))
        return terms(zero(x), nonfinite(w)) + terms(nonfinite(x), zero(w)) + padded
    if name == "correlate2d_backward_weight":
        x, grad_y = arguments["x"], arguments["grad_y"]
        shape = (arguments["kernel_size"], arguments["stride"], arguments["padding"])

        def terms(a, b):
            return reference.correlate2d_backward_weight(a, b, *shape)

        padded = (nonfinite(grad_y).sum(axis=(0, 2, 3))[:, None, None, None]
                  - terms(np.ones(x.shape), nonfinite(grad_y)))
        return (terms(zero(x), nonfinite(grad_y)) + terms(nonfinite(x), zero(grad_y))
                + padded)
    if name == "convolve2d_full":
        grad_y, w = arguments["grad_y"], arguments["w"]
        shape = (arguments["input_size"], arguments["stride"], arguments["padding"])

        def terms(a, b):
            return reference.convolve2d_full(a, b, *shape)

        return terms(zero(grad_y), nonfinite(w)) + terms(nonfinite(grad_y), zero(w))
    if name == "matmul":
        a, b = arguments["a"], arguments["b"]
        flags = (arguments["transpose_a"], arguments["transpose_b"])
        return (reference.matmul(zero(a), nonfinite(b), *flags)
                + reference.matmul(nonfinite(a), zero(b), *flags))
    return 0  # pooling multiplies nothing


def assert_matches(got, expected, magnitude, dtype, undetermined):
    """got (kernel, dtype) against expected (reference in float64).

    Where undetermined > 0 anything goes (see where_zero_meets_nonfinite).
    """
    assert isinstance(got, np.ndarray), f"got {type(got).__name__}"
    assert got.dtype == dtype, f"dtype {got.dtype}, expected {dtype}"
    assert got.shape == expected.shape, f"shape {got.shape}, expected {expected.shape}"
    judged = np.broadcast_to(np.asarray(undetermined) == 0, expected.shape)
    got64, expected = got.astype(np.float64)[judged], expected[judged]
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(got64), nan, err_msg="NaN where the reference "
                                  "has none, or a number where it has NaN")
    infinite = np.isinf(expected)
    np.testing.assert_array_equal(got64[infinite], expected[infinite],
                                  err_msg="infinities differ")
    finite = ~(nan | infinite)
    assert np.isfinite(got64[finite]).all(), "an infinity where the reference is finite"
    tolerance = TOLERANCE[dtype]
    terms = np.finfo(dtype).tiny * 1e3
    error = np.abs(got64[finite] - expected[finite])
    allowed = tolerance * (np.abs(expected[finite]) + magnitude[judged][finite]) + terms
    assert (error <= allowed).all(), (
        f"max error {error.max():.3g} (allowed there {allowed[np.argmax(error - allowed)]:.3g})"
    )


def check(name, arguments):
    """Call kernel name on arguments; hold the result to the reference's, or the error."""
    kernel, oracle = getattr(kernels, name), getattr(reference, name)
    before = snapshot(arguments)
    note(f"{name}({', '.join(f'{k}={describe(v)}' for k, v in arguments.items())})")
    try:
        got = kernel(**arguments)
    except ERRORS as error:
        event(f"refused with {type(error).__name__}")
        note(f"refused: {type(error).__name__}: {error}")
        assert_clean_error(error)
        return
    except MemoryError as error:
        # numpy's own message names the size and the shape; anything else is a bug.
        assert str(error).startswith("Unable to allocate"), f"MemoryError: {error}"
        event("MemoryError from numpy")
        return
    for argument, original in before.items():
        np.testing.assert_array_equal(arguments[argument], original,
                                      err_msg=f"{argument} was changed")
    event("answered")
    dtype = next(v.dtype.newbyteorder("=") for v in arguments.values()
                 if isinstance(v, np.ndarray) and v.dtype.kind == "f")
    with np.errstate(all="ignore"):
        try:
            expected = oracle(**in_float64(arguments))
        except MemoryError:
            # Huge paddings with huge strides: the reference pads the whole input, the
            # kernel need not (test_large_sizes checks such answers).
            event("reference out of memory")
            return
        except Exception as error:  # noqa: BLE001 - any refusal is a disagreement
            pytest.fail(f"the kernel answered, but the reference raised "
                        f"{type(error).__name__}: {error}")
        magnitude = oracle(**in_float64(arguments, absolute=True))
        undetermined = where_zero_meets_nonfinite(name, in_float64(arguments))
    if name == "maxpool2d":
        (y, argmax), (expected_y, expected_argmax) = got, expected
        assert argmax.dtype == np.int64
        np.testing.assert_array_equal(argmax, expected_argmax, strict=True)
        assert_matches(y, expected_y, np.abs(expected_y), dtype, 0)
    else:
        assert_matches(got, expected, magnitude, dtype, undetermined)


def describe(value):
    if isinstance(value, np.ndarray):
        flags = "".join(letter for letter, flag in (("C", "C_CONTIGUOUS"), ("A", "ALIGNED"),
                                                    ("W", "WRITEABLE")) if value.flags[flag])
        return f"array(shape={value.shape}, dtype={value.dtype}, strides={value.strides}, {flags})"
    if isinstance(value, list):
        return f"list(len={len(value)})"
    return repr(value)


# ---- one test per kernel -------------------------------------------------------------


@FUZZ
@given(arguments=correlate2d_arguments().flatmap(spoiled))
def test_correlate2d(arguments):
    check("correlate2d", arguments)


@FUZZ
@given(arguments=backward_weight_arguments().flatmap(spoiled))
def test_correlate2d_backward_weight(arguments):
    check("correlate2d_backward_weight", arguments)


@FUZZ
@given(arguments=convolve2d_full_arguments().flatmap(spoiled))
def test_convolve2d_full(arguments):
    check("convolve2d_full", arguments)


@FUZZ
@given(arguments=pool_arguments().flatmap(spoiled))
def test_maxpool2d(arguments):
    check("maxpool2d", arguments)


@FUZZ
@given(arguments=maxpool2d_backward_arguments().flatmap(spoiled))
def test_maxpool2d_backward(arguments):
    check("maxpool2d_backward", arguments)


@FUZZ
@given(arguments=pool_arguments().flatmap(spoiled))
def test_avgpool2d(arguments):
    check("avgpool2d", arguments)


@FUZZ
@given(arguments=avgpool2d_backward_arguments().flatmap(spoiled))
def test_avgpool2d_backward(arguments):
    check("avgpool2d_backward", arguments)


@FUZZ
@given(arguments=matmul_arguments().flatmap(spoiled))
def test_matmul(arguments):
    check("matmul", arguments)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_convolve2d_full_keeps_nonfinite_weights_to_their_windows(dtype):
    # Stride 2 on a 3x3 input: windows start at pixels (0, 0), (0, 2), (2, 0), (2, 2)
    # only, so the other five pixels get no term at all and must stay 0.
    grad_y = np.ones((1, 1, 2, 2), dtype)
    grad_x = kernels.convolve2d_full(grad_y, np.full((1, 1, 1, 1), np.nan, dtype), (3, 3),
                                     stride=2)
    expected = reference.convolve2d_full(grad_y, np.full((1, 1, 1, 1), np.nan), (3, 3), stride=2)
    np.testing.assert_array_equal(grad_x, expected)  # NaN at the four corners, 0 elsewhere
    # Padding 1 on a 3x3 kernel: pixel (0, 0) takes no term from the infinite w[2, 2].
    w = np.ones((1, 1, 3, 3), dtype)
    w[0, 0, 2, 2] = np.inf
    grad_x = kernels.convolve2d_full(np.ones((1, 1, 3, 3), dtype), w, (3, 3), padding=1)
    assert grad_x[0, 0, 0, 0] == 4.0
