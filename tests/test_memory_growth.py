"""Long runs do not grow memory: 10,000 kernel calls and layer steps, resident size flat.

Each test warms up first (caches, numpy's allocator, the worker threads), then
measures the resident set size (/proc/self/statm) around 10,000 more calls. The
outputs are a few KiB each, so leaking one per call would add tens of MiB, far over
the tolerance. Reference counts of the inputs are checked too: a call that kept a
reference to its arguments would leak whatever the caller passed.
"""

import gc
import resource
import sys

import numpy as np
import pytest

import fastcnn
from fastcnn import kernels

CALLS = 10_000
TOLERANCE_MIB = 2

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc/self/statm"
)


def resident_mib():
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def growth_mib(step, calls=CALLS, warm_up=500):
    """How much the resident size grows over `calls` calls of step(), after warming up."""
    for _ in range(warm_up):
        step()
    gc.collect()
    before = resident_mib()
    for _ in range(calls):
        step()
    gc.collect()
    return resident_mib() - before


def kernel_calls():
    """name: (kernel, arguments) on small shapes, with outputs of a few KiB."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 16, 16), np.float32)
    w = rng.standard_normal((4, 3, 3, 3), np.float32)
    bias = rng.standard_normal(4, np.float32)
    grad_y = rng.standard_normal((2, 4, 16, 16), np.float32)
    strided_x = np.asfortranarray(x)  # takes the copy path
    _, argmax = kernels.maxpool2d(x, 2)
    pool_grad_y = rng.standard_normal(argmax.shape, np.float32)
    a = rng.standard_normal((24, 40))
    b = rng.standard_normal((40, 24))
    return {
        "correlate2d": (kernels.correlate2d, (x, w, bias, 1, 1)),
        "correlate2d-strided-input": (kernels.correlate2d, (strided_x, w, bias, 1, 1)),
        "correlate2d_backward_weight": (kernels.correlate2d_backward_weight,
                                        (x, grad_y, 3, 1, 1)),
        "convolve2d_full": (kernels.convolve2d_full, (grad_y, w, (16, 16), 1, 1)),
        "maxpool2d": (kernels.maxpool2d, (x, 2)),
        "maxpool2d_backward": (kernels.maxpool2d_backward, (pool_grad_y, argmax, (16, 16))),
        "avgpool2d": (kernels.avgpool2d, (x, 2)),
        "avgpool2d_backward": (kernels.avgpool2d_backward, (pool_grad_y, (16, 16), 2)),
        "matmul": (kernels.matmul, (a, b)),
        "refused": (kernels.correlate2d, (x, w[:, :2], bias, 1, 1)),  # a ValueError each time
    }


def call_quietly(kernel, arguments):
    try:
        kernel(*arguments)
    except ValueError:
        pass


@pytest.mark.parametrize("name", list(kernel_calls()))
def test_repeated_kernel_calls_keep_memory_flat(name):
    kernel, arguments = kernel_calls()[name]
    arrays = [argument for argument in arguments if isinstance(argument, np.ndarray)]
    references = [sys.getrefcount(array) for array in arrays]
    grown = growth_mib(lambda: call_quietly(kernel, arguments))
    assert grown < TOLERANCE_MIB, f"{CALLS} calls grew the resident size by {grown:.1f} MiB"
    assert [sys.getrefcount(array) for array in arrays] == references


def small_network():
    """Every layer that calls the kernels, and one that does not."""
    return [
        fastcnn.Convolutional(4, 3, padding=1, seed=0),
        fastcnn.MaxPool2D(2),
        fastcnn.AvgPool2D(2),
        fastcnn.Flatten(),
        fastcnn.Dense(10, seed=2),
    ]


def test_repeated_layer_steps_keep_memory_flat():
    layers = small_network()
    rng = np.random.default_rng(4)
    images = rng.standard_normal((2, 1, 16, 16)).astype(np.float32)
    gradient = rng.standard_normal((2, 10)).astype(np.float32) * 1e-3

    def step():
        output = images
        for layer in layers:
            output = layer.forward(output)
        grad = gradient
        for layer in reversed(layers):
            grad = layer.backward(grad, 1e-4)

    grown = growth_mib(step)
    assert grown < TOLERANCE_MIB, f"{CALLS} steps grew the resident size by {grown:.1f} MiB"
