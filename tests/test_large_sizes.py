"""Sizes past 32 bits: 64-bit index arithmetic, and clear errors for what cannot fit.

The arrays here are broadcast views (zero strides) or tiny arrays with huge
paddings, strides and input sizes, so the tests need no real memory: an answer the
kernels can give without much memory must be right, and an array that could not
fit in memory must be refused with its shape and size named -- never a
wrap-around, a crash or a machine brought down by swapping.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastcnn import kernels

BIG = 2**31 - 1  # the largest size, stride or padding the kernels take
TOO_LARGE = r"of shape \(.*\) would take [\d.]+ [KMGTPEZY]iB, more than this machine's"
SANITIZED = "libasan" in os.environ.get("LD_PRELOAD", "")


def broadcast(shape, value=1.0, dtype=np.float64):
    """A read-only array of the given shape that takes one element of memory."""
    return np.broadcast_to(np.asarray(value, dtype), shape)


def test_matmul_sums_more_than_2_to_the_31_products():
    k = 2**31 + 5  # the inner dimension overflows int32; the operands are broadcast ones
    c = kernels.matmul(broadcast((1, k)), broadcast((k, 1)))
    assert c.shape == (1, 1) and c[0, 0] == k


def test_matmul_transposed_sums_more_than_2_to_the_31_products():
    k = 2**31 + 7
    c = kernels.matmul(broadcast((k, 1)), broadcast((1, k)), transpose_a=True, transpose_b=True)
    assert c.shape == (1, 1) and c[0, 0] == k


# Huge paddings with equally huge strides: a 3x3 output whose middle window alone
# reaches the input, at offsets past 2^31 in the padded input.

# Strides and paddings near 2^31: the kernels keep only the rows and stride
# phases that windows read, so such strides cost no scratch memory.


def one_hot_image():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 0, 0] = 3.0
    return x


@pytest.mark.parametrize("step", [2**30, BIG], ids=["2^30", "2^31-1"])
def test_correlate2d_far_into_the_padding(step):
    y = kernels.correlate2d(one_hot_image(), np.full((1, 1, 1, 1), 2.0), np.ones(1),
                            stride=step, padding=step)
    # Ho = (3 + 2*step - 1) // step + 1 = 3; window (1, 1) starts at input pixel (0, 0).
    expected = np.ones((1, 1, 3, 3))
    expected[0, 0, 1, 1] += 6.0
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("step", [2**30, BIG], ids=["2^30", "2^31-1"])
def test_correlate2d_backward_weight_far_into_the_padding(step):
    grad_y = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    grad_w = kernels.correlate2d_backward_weight(one_hot_image(), grad_y, 1, stride=step,
                                                 padding=step)
    np.testing.assert_array_equal(grad_w, [[[[3.0 * grad_y[0, 0, 1, 1]]]]])


@pytest.mark.parametrize("step", [2**30, BIG], ids=["2^30", "2^31-1"])
def test_convolve2d_full_far_into_the_padding(step):
    grad_y = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    grad_x = kernels.convolve2d_full(grad_y, np.full((1, 1, 1, 1), 2.0), (3, 3), stride=step,
                                     padding=step)
    expected = np.zeros((1, 1, 3, 3))
    expected[0, 0, 0, 0] = 2.0 * grad_y[0, 0, 1, 1]
    np.testing.assert_array_equal(grad_x, expected)


@pytest.mark.parametrize("stride", [2**30, BIG], ids=["2^30", "2^31-1"])
def test_pooling_with_a_stride_past_the_input(stride):
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    y, argmax = kernels.maxpool2d(x, size=2, stride=stride)
    np.testing.assert_array_equal(y, [[[[6.0]]]])
    np.testing.assert_array_equal(argmax, [[[[6]]]])
    np.testing.assert_array_equal(kernels.avgpool2d(x, size=2, stride=stride), [[[[3.0]]]])
    grad_x = kernels.avgpool2d_backward(np.full((1, 1, 1, 1), 4.0), (5, 5), size=2,
                                        stride=stride)
    expected = np.zeros((1, 1, 5, 5))
    expected[0, 0, :2, :2] = 1.0
    np.testing.assert_array_equal(grad_x, expected)


def test_a_large_stride_costs_no_scratch_memory():
    # Stride 2^21 on a 3x3 image: one window, one output per kernel. The peak
    # resident size (VmHWM: ru_maxrss would start at the forking parent's peak) is
    # measured in a fresh process around the calls.
    code = """
        import numpy as np
        from fastcnn import kernels

        def peak_mib():
            with open("/proc/self/status") as status:
                line = next(line for line in status if line.startswith("VmHWM:"))
            return int(line.split()[1]) // 1024

        x, w = np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2))
        kernels.correlate2d(x, w), kernels.maxpool2d(x)
        before = peak_mib()
        kernels.correlate2d(x, w, None, 2**21)
        kernels.correlate2d_backward_weight(x, np.ones((1, 1, 1, 1)), 2, 2**21)
        kernels.maxpool2d(x, 2, 2**21)
        print(peak_mib() - before)
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) < 16, f"the peak resident size grew by {result.stdout.strip()} MiB"


# Outputs that could not fit in memory: refused before anything is allocated


ONE = np.ones((1, 1, 1, 1))
OUTPUTS_TOO_LARGE = [
    pytest.param(lambda: kernels.convolve2d_full(ONE, ONE, (BIG, BIG), stride=BIG),
                 id="convolve2d_full-input_size-2^31-1"),
    pytest.param(lambda: kernels.maxpool2d_backward(ONE, np.zeros((1, 1, 1, 1), np.int64),
                                                    (BIG, BIG)),
                 id="maxpool2d_backward-input_size-2^31-1"),
    pytest.param(lambda: kernels.avgpool2d_backward(ONE, (2**25, 2**25), size=2**25),
                 id="avgpool2d_backward-input_size-2^25"),
    pytest.param(lambda: kernels.correlate2d(np.ones((1, 1, 3, 3)), ONE, padding=2**20),
                 id="correlate2d-padding-2^20"),
    pytest.param(lambda: kernels.correlate2d_backward_weight(
        broadcast((1, 2**20, 1, 1)), broadcast((1, 2**20, 1, 1)), 1),
                 id="correlate2d_backward_weight-2^40-weights"),
    pytest.param(lambda: kernels.matmul(broadcast((2**26, 1)), broadcast((1, 2**26))),
                 id="matmul-2^26-square"),
]


@pytest.mark.parametrize("call", OUTPUTS_TOO_LARGE)
def test_an_output_too_large_for_memory_is_refused_with_its_size(call):
    with pytest.raises(ValueError, match="output .*" + TOO_LARGE):
        call()


INPUT_COPIES_TOO_LARGE = [  # 2^46 elements: a contiguous copy would take 512 TiB
    pytest.param(lambda: kernels.correlate2d(broadcast((1, 1, 2**23, 2**23)),
                                             broadcast((1, 1, 2**23, 2**23))),
                 id="correlate2d-x"),
    pytest.param(lambda: kernels.correlate2d_backward_weight(
        broadcast((1, 1, 2**23, 2**23)), ONE, 2**23), id="correlate2d_backward_weight-x"),
    pytest.param(lambda: kernels.convolve2d_full(broadcast((1, 2**23, 1, 2**23)),
                                                 broadcast((2**23, 1, 1, 1)), (1, 2**23)),
                 id="convolve2d_full-grad_y"),
    pytest.param(lambda: kernels.maxpool2d(broadcast((1, 1, 2**23, 2**23)), size=2**23),
                 id="maxpool2d-x"),
    pytest.param(lambda: kernels.avgpool2d(broadcast((2**23, 2**23, 1, 1)), size=1),
                 id="avgpool2d-x-2^46-planes"),
    pytest.param(lambda: kernels.matmul(broadcast((1, 2**46), dtype=">f8"),
                                        broadcast((2**46, 1), dtype=">f8")),
                 id="matmul-byteswapped-a"),
]


@pytest.mark.parametrize("call", INPUT_COPIES_TOO_LARGE)
def test_an_input_whose_copy_could_not_fit_is_refused_with_its_size(call):
    with pytest.raises(ValueError, match="copy of .*" + TOO_LARGE):
        call()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda: kernels.convolve2d_full(ONE, ONE, (2**31, 2**31)),
                     r"input_size is out of range: 2147483648 \(the limit is 2147483647",
                     id="input_size-2^31"),
        pytest.param(lambda: kernels.correlate2d(ONE, ONE, stride=2**63),
                     r"stride is out of range", id="stride-2^63"),
        pytest.param(lambda: kernels.correlate2d(ONE, ONE, padding=BIG),
                     r"more than 2\^63 elements", id="output-elements-past-2^63"),
    ],
)
def test_sizes_past_the_limits_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.skipif(SANITIZED, reason="AddressSanitizer cannot run under an address-space limit")
def test_an_input_copy_numpy_cannot_allocate_raises_memory_error():
    # Under an address-space limit the copy of a broadcast x (1 GiB) fails inside
    # numpy: that must reach the caller as numpy's MemoryError, not a crash.
    code = """
        import resource, numpy as np
        from fastcnn import kernels
        x = np.broadcast_to(np.ones(1), (1, 1, 2**14, 2**13))
        kernels.maxpool2d(np.ones((1, 1, 4, 4)))
        with open("/proc/self/statm") as statm:
            used = int(statm.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (used + 2**29, resource.RLIM_INFINITY))
        try:
            kernels.maxpool2d(x, size=(2**14, 2**13))  # a 1x1 output
        except MemoryError as error:
            print("MemoryError:", error)
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "MemoryError: Unable to allocate 1.00 GiB" in result.stdout
