"""fastcnn.kernels against PyTorch (float64), values and autograd gradients.

Skipped when PyTorch is not installed.
"""

import numpy as np
import pytest

from fastcnn import kernels

torch = pytest.importorskip("torch")
functional = torch.nn.functional

# C, H, W, filters, kernel, stride, padding: the networks of the write-ups
CONV_CASES = [
    pytest.param(n, *shape, id=f"n{n}-c{shape[0]}-{shape[1]}x{shape[2]}"
                 f"-f{shape[3]}-k{shape[4]}-s{shape[5]}-p{shape[6]}")
    for shape in [
        (1, 28, 28, 6, 3, 1, 0),
        (1, 28, 28, 5, 3, 2, 1),
        (1, 28, 28, 6, 5, 1, 2),
        (6, 28, 28, 6, 5, 1, 2),
        (3, 32, 32, 10, 5, 1, 2),
        (10, 16, 16, 20, 5, 1, 2),
    ]
    for n in (1, 8)
]

# N, C, H, W, size, stride
POOL_CASES = [
    pytest.param(n, c, h, h, 2, 2, id=f"n{n}-c{c}-{h}x{h}-size2")
    for n in (1, 8)
    for c, h in [(6, 28), (6, 24), (20, 16)]
] + [
    pytest.param(4, 3, 28, 28, 3, 2, id="overlapping-size3-s2"),
    pytest.param(2, 2, 7, 9, (2, 3), (1, 2), id="rectangular-2x3-s1x2"),
]

MATMUL_SIZES = [
    pytest.param(m, k, n, id=f"m{m}-k{k}-n{n}")
    for m, k, n in [(1, 7, 33), (33, 100, 1), (100, 257, 33), (257, 33, 100)]
]


def tensor(array, requires_grad=False):
    return torch.tensor(array, dtype=torch.float64, requires_grad=requires_grad)


def conv_with_gradients(x, w, bias, grad_y, stride, padding):
    """y, grad_x, grad_w and grad_b from torch autograd."""
    tx, tw = tensor(x, requires_grad=True), tensor(w, requires_grad=True)
    tb = tensor(bias, requires_grad=True)
    y = functional.conv2d(tx, tw, tb, stride=stride, padding=padding)
    y.backward(tensor(grad_y))
    return y.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()


@pytest.mark.parametrize(("n", "c", "h", "w", "f", "kernel", "stride", "padding"), CONV_CASES)
def test_convolution_matches_torch(assert_close, rng, n, c, h, w, f, kernel, stride, padding):
    x = rng.standard_normal((n, c, h, w))
    weights = rng.standard_normal((f, c, kernel, kernel))
    bias = rng.standard_normal(f)
    out_h = (h + 2 * padding - kernel) // stride + 1
    out_w = (w + 2 * padding - kernel) // stride + 1
    grad_y = rng.standard_normal((n, f, out_h, out_w))
    expected = conv_with_gradients(x, weights, bias, grad_y, stride, padding)
    # the same computation on magnitudes bounds the rounding of each sum
    magnitudes = conv_with_gradients(
        np.abs(x), np.abs(weights), np.abs(bias), np.abs(grad_y), stride, padding
    )
    y = kernels.correlate2d(x, weights, bias, stride=stride, padding=padding)
    grad_x = kernels.convolve2d_full(grad_y, weights, (h, w), stride=stride, padding=padding)
    grad_w, grad_b = kernels.correlate2d_backward_weight(
        x, grad_y, kernel, stride=stride, padding=padding, bias_grad=True
    )
    for actual, wanted, magnitude in zip((y, grad_x, grad_w, grad_b), expected, magnitudes):
        assert_close(actual, wanted, magnitude)


def input_gradient(pool, x, grad_y):
    """The gradient of sum(grad_y * pool(x)) with respect to x, by torch autograd."""
    tx = tensor(x, requires_grad=True)
    pool(tx).backward(tensor(grad_y))
    return tx.grad.numpy()


@pytest.mark.parametrize(("n", "c", "h", "w", "size", "stride"), POOL_CASES)
def test_maxpool2d_matches_torch(assert_close, rng, n, c, h, w, size, stride):
    x = rng.standard_normal((n, c, h, w))
    expected_y, expected_argmax = functional.max_pool2d(
        tensor(x), size, stride, return_indices=True
    )
    y, argmax = kernels.maxpool2d(x, size=size, stride=stride)
    np.testing.assert_array_equal(y, expected_y.numpy())
    np.testing.assert_array_equal(argmax, expected_argmax.numpy())

    def pool(tx):
        return functional.max_pool2d(tx, size, stride)

    grad_y = rng.standard_normal(y.shape)
    assert_close(
        kernels.maxpool2d_backward(grad_y, argmax, (h, w)),
        input_gradient(pool, x, grad_y),
        input_gradient(pool, x, np.abs(grad_y)),
    )


@pytest.mark.parametrize(("n", "c", "h", "w", "size", "stride"), POOL_CASES)
def test_avgpool2d_matches_torch(assert_close, rng, n, c, h, w, size, stride):
    def pool(tx):
        return functional.avg_pool2d(tx, size, stride)

    x = rng.standard_normal((n, c, h, w))
    y = kernels.avgpool2d(x, size=size, stride=stride)
    assert_close(y, pool(tensor(x)).numpy(), pool(tensor(np.abs(x))).numpy())
    grad_y = rng.standard_normal(y.shape)
    assert_close(
        kernels.avgpool2d_backward(grad_y, (h, w), size=size, stride=stride),
        input_gradient(pool, x, grad_y),
        input_gradient(pool, x, np.abs(grad_y)),
    )


@pytest.mark.parametrize("transpose_b", [False, True], ids=["b", "bT"])
@pytest.mark.parametrize("transpose_a", [False, True], ids=["a", "aT"])
@pytest.mark.parametrize(("m", "k", "n"), MATMUL_SIZES)
def test_matmul_matches_torch(assert_close, rng, m, k, n, transpose_a, transpose_b):
    a = rng.standard_normal((k, m) if transpose_a else (m, k))
    b = rng.standard_normal((n, k) if transpose_b else (k, n))
    ta, tb = tensor(a), tensor(b)
    if transpose_a:
        ta = ta.T
    if transpose_b:
        tb = tb.T
    c = kernels.matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b)
    assert_close(c, (ta @ tb).numpy(), (ta.abs() @ tb.abs()).numpy())
