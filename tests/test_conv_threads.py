"""The convolution kernels when one image is split over threads, and the input
gradient's stride phases, against fastcnn.reference.

With fewer images than threads, the forward pass and the input gradient split an
image's output rows, the weight gradient its window rows (c, i); every output is
still summed by one thread in one order, so the results must be bit-identical
for any thread count.
"""

import numpy as np
import pytest

import fastcnn
from fastcnn import kernels, reference

# C, H=W, filters, kernel, stride, padding: the layers of the write-ups
WRITEUP_LAYERS = {
    "002": (1, 28, 6, 3, 1, 0),
    "001": (1, 28, 5, 3, 2, 1),
    "004a": (1, 28, 6, 5, 1, 2),
    "004b": (6, 28, 6, 5, 1, 2),
    "003a": (3, 32, 10, 5, 1, 2),
    "003b": (10, 16, 20, 5, 1, 2),
    # large enough for a stride-2 input gradient to split over threads
    "stride2-wide": (8, 29, 12, 3, 2, 1),
}


@pytest.fixture
def restore_num_threads():
    previous = fastcnn.get_num_threads()
    yield
    fastcnn.set_num_threads(previous)


def conv_problem(rng, batch, layer):
    channels, size, filters, kernel, stride, padding = layer
    x = rng.standard_normal((batch, channels, size, size), np.float32)
    w = rng.standard_normal((filters, channels, kernel, kernel), np.float32)
    out = (size + 2 * padding - kernel) // stride + 1
    grad_y = rng.standard_normal((batch, filters, out, out), np.float32)
    return x, w, grad_y, kernel, stride, padding


def all_passes(x, w, grad_y, kernel, stride, padding):
    return (
        kernels.correlate2d(x, w, None, stride, padding),
        *kernels.correlate2d_backward_weight(x, grad_y, kernel, stride, padding, bias_grad=True),
        kernels.convolve2d_full(grad_y, w, x.shape[2:], stride, padding),
    )


@pytest.mark.usefixtures("restore_num_threads")
@pytest.mark.parametrize("batch", [1, 2], ids=["n1", "n2"])
@pytest.mark.parametrize("name", list(WRITEUP_LAYERS))
def test_one_image_gives_the_same_bits_on_1_2_and_3_threads(rng, name, batch):
    problem = conv_problem(rng, batch, WRITEUP_LAYERS[name])
    fastcnn.set_num_threads(1)
    single = all_passes(*problem)
    for threads in (2, 3):
        fastcnn.set_num_threads(threads)
        for result, expected in zip(all_passes(*problem), single):
            np.testing.assert_array_equal(result, expected, strict=True)


@pytest.mark.usefixtures("restore_num_threads")
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("name", list(WRITEUP_LAYERS))
def test_one_image_matches_the_reference(assert_close, rng, name, threads):
    fastcnn.set_num_threads(threads)
    x, w, grad_y, kernel, stride, padding = conv_problem(rng, 1, WRITEUP_LAYERS[name])
    y, grad_w, grad_b, grad_x = all_passes(x, w, grad_y, kernel, stride, padding)
    x64, w64, g64 = (a.astype(np.float64) for a in (x, w, grad_y))
    assert_close(y, reference.correlate2d(x64, w64, None, stride, padding),
                 reference.correlate2d(abs(x64), abs(w64), None, stride, padding))
    assert_close(grad_w, reference.correlate2d_backward_weight(x64, g64, kernel, stride, padding),
                 reference.correlate2d_backward_weight(abs(x64), abs(g64), kernel, stride, padding))
    assert_close(grad_b, g64.sum(axis=(0, 2, 3)), abs(g64).sum(axis=(0, 2, 3)))
    size = x.shape[2:]
    assert_close(grad_x, reference.convolve2d_full(g64, w64, size, stride, padding),
                 reference.convolve2d_full(abs(g64), abs(w64), size, stride, padding))


# Input gradients whose stride phases differ in their taps and padding: odd and
# even sizes, strides up to and beyond the kernel, padding up to kernel - 1.
PHASE_CASES = [
    pytest.param(h, w, kernel, stride, padding, id=f"{h}x{w}-k{kernel}-s{stride}-p{padding}")
    for h, w in ((9, 9), (10, 7))
    for kernel, stride in ((3, 2), (5, 2), (4, 3), (2, 3), (5, 4), (3, (2, 3)))
    for padding in (0, 1, 2)
    if padding < kernel
]


@pytest.mark.parametrize(("h", "w", "kernel", "stride", "padding"), PHASE_CASES)
def test_strided_input_gradient_matches_the_reference(assert_close, rng, h, w, kernel, stride,
                                                      padding):
    sh, sw = stride if isinstance(stride, tuple) else (stride, stride)
    weights = rng.standard_normal((5, 3, kernel, kernel))
    out = ((h + 2 * padding - kernel) // sh + 1, (w + 2 * padding - kernel) // sw + 1)
    grad_y = rng.standard_normal((2, 5, *out))
    grad_x = kernels.convolve2d_full(grad_y, weights, (h, w), stride, padding)
    assert_close(grad_x, reference.convolve2d_full(grad_y, weights, (h, w), stride, padding),
                 reference.convolve2d_full(abs(grad_y), abs(weights), (h, w), stride, padding))
