"""Benchmarks: fastcnn's kernels against NumPy, the write-ups' own code and PyTorch.

Every case runs in this one process through fastcnn (`fastcnn.kernels`), the plain
NumPy oracle (`fastcnn.reference`), the write-ups' own approaches where they apply
(write-up 002's scipy.signal loop over channel pairs, write-up 004's loop over every
window) and PyTorch when it is installed, at the same thread count. Each figure is the
median of repeated runs after warm-up; each case also checks that fastcnn's answer
matches the others', and a mismatch makes the run fail (exit status 1).

    python bench/run.py [--quick] [--out bench/results.md]

writes a Markdown report (and a PNG chart of the ratios beside it when matplotlib is
installed) and prints the report. bench/README.md explains every column.
"""

import argparse
import contextlib
import datetime
import importlib
import io
import multiprocessing
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

import fastcnn
from fastcnn import kernels, reference

__all__ = ["main"]

SEED = 20240611
EPOCH_IMAGES = 60_000  # one Fashion-MNIST training epoch
LEARNING_RATE = 0.005  # write-up 004's
SECTIONS = ("conv", "pool", "matmul", "end-to-end", "threads")
# Allowed error, relative to the largest magnitude of the expected array.
TOLERANCE = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """How long to measure, and which cases to run."""

    name: str
    warmup: int
    min_repeats: int
    max_repeats: int
    seconds_per_measurement: float  # repeat until this much time is spent
    loop_seconds: float  # a per-sample Python loop runs on as many samples as fit in this
    loop_repeats: int
    epoch_images: Optional[dict]  # {batch size: images trained}; None: the whole set
    writeup_epoch_images: int  # images the write-up-004 network trains on, then scaled
    test_images: int

    @property
    def quick(self):
        return self.name == "quick"


FULL = Settings(
    name="full",
    warmup=2,
    min_repeats=5,
    max_repeats=50,
    seconds_per_measurement=1.0,
    loop_seconds=0.5,
    loop_repeats=3,
    epoch_images=None,
    writeup_epoch_images=25,
    test_images=10_000,
)
QUICK = Settings(
    name="quick",
    warmup=1,
    min_repeats=1,
    max_repeats=3,
    seconds_per_measurement=0.05,
    loop_seconds=0.05,
    loop_repeats=1,
    epoch_images={1: 256, 64: 640},
    writeup_epoch_images=2,
    test_images=500,
)


class ConvCase(NamedTuple):
    source: str
    n: int
    c: int
    h: int
    w: int
    filters: int
    k: int
    stride: int
    padding: int

    @property
    def label(self):
        return ", ".join(str(value) for value in self[1:])

    @property
    def output_size(self):
        """Ho, Wo = (H + 2p - k) // s + 1."""
        return (
            (self.h + 2 * self.padding - self.k) // self.stride + 1,
            (self.w + 2 * self.padding - self.k) // self.stride + 1,
        )

    @property
    def forward_flops(self):
        ho, wo = self.output_size
        return 2 * self.n * self.filters * ho * wo * self.c * self.k * self.k


# (C, H, W, filters, k, stride, padding) of the write-ups' layers, each at N=1 and N=64.
WRITEUP_LAYERS = (
    ("002", (1, 28, 28, 6, 3, 1, 0)),
    ("001", (1, 28, 28, 5, 3, 2, 1)),
    ("004", (1, 28, 28, 6, 5, 1, 2)),
    ("004", (6, 28, 28, 6, 5, 1, 2)),
    ("003", (3, 32, 32, 10, 5, 1, 2)),
    ("003", (10, 16, 16, 20, 5, 1, 2)),
)
CONV_CASES = tuple(
    ConvCase(source, n, *layer) for n in (1, 64) for source, layer in WRITEUP_LAYERS
) + (ConvCase("larger layer", 32, 64, 32, 32, 64, 3, 1, 1),)
# 002 and 004's second layer at N=1, 001 (stride 2) at N=64.
QUICK_CONV_CASES = (CONV_CASES[0], CONV_CASES[3], CONV_CASES[7])
POOL_SHAPES = ((64, 6, 28, 28), (64, 10, 32, 32), (1000, 10, 32, 32))
QUICK_POOL_SHAPES = POOL_SHAPES[:1]
# (m, k, n): op(a) is m x k, b is k x n.
MATMUL_SHAPES = (
    (256, 256, 256),
    (512, 512, 512),
    (1024, 1024, 1024),
    (2048, 2048, 2048),
    (64, 784, 100),
    (64, 1176, 10),
    (1000, 1280, 100),
)
QUICK_MATMUL_SHAPES = (MATMUL_SHAPES[0], MATMUL_SHAPES[4])
EPOCH_BATCH_SIZES = (1, 64)


# --------------------------------------------------------------------------- results


@dataclass
class Timing:
    """Median seconds for the whole batch; scaled up when fewer samples were timed."""

    seconds: float
    samples: int = 1
    batch: int = 1

    @property
    def scaled(self):
        return self.samples < self.batch


@dataclass
class Check:
    name: str
    problems: list  # what differed; empty when the answers match


@dataclass
class Report:
    checks: list = field(default_factory=list)
    sections: list = field(default_factory=list)  # Markdown text, in order
    ratios: list = field(default_factory=list)  # (section, case, alternative, ratio)
    started: float = field(default_factory=time.perf_counter)

    def progress(self, message):
        """Say on stderr what runs now, and since when the run started."""
        elapsed = time.perf_counter() - self.started
        print(f"[{elapsed:6.1f} s] {message}", file=sys.stderr, flush=True)

    def compare(self, name, actual, expected):
        """Record whether each named array of ``actual`` matches ``expected``."""
        problems = []
        for array_name, value in actual.items():
            problem = _difference(value, expected[array_name])
            if problem:
                problems.append(f"{array_name}: {problem}")
        self.checks.append(Check(name, problems))

    @property
    def failed_checks(self):
        return [check for check in self.checks if check.problems]


def _difference(actual, expected):
    """None when actual matches expected, else a sentence saying how it differs."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        return f"shape {actual.shape} instead of {expected.shape}"
    if expected.dtype.kind in "iu":
        differing = np.count_nonzero(actual != expected)
        return f"{differing} of {expected.size} indices differ" if differing else None
    if expected.size == 0:
        return None
    tolerance = max(TOLERANCE[actual.dtype], TOLERANCE[expected.dtype])
    error = np.max(np.abs(actual.astype(np.float64) - expected.astype(np.float64)))
    largest = np.max(np.abs(expected.astype(np.float64)))
    if error <= tolerance * largest:  # False for NaN
        return None
    return (
        f"max error {error:.3g} is more than {tolerance:g} of the largest value "
        f"{largest:.3g}"
    )


# --------------------------------------------------------------------------- timing


def _median_seconds(run, settings):
    """Median wall time of run() after the warm-up runs."""
    for _ in range(settings.warmup):
        run()
    times = []
    started = time.perf_counter()
    while len(times) < settings.max_repeats and (
        len(times) < settings.min_repeats
        or time.perf_counter() - started < settings.seconds_per_measurement
    ):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _loop_timing(run_on, batch, settings):
    """Time run_on(samples), a loop over samples in Python, for the whole batch.

    One sample is timed first. If the whole batch fits in settings.loop_seconds it is
    timed like everything else; otherwise the loop runs on as many samples as fit, and
    the median is multiplied by batch / samples. Returns the Timing and the samples.
    """
    start = time.perf_counter()
    run_on(1)
    one_sample = time.perf_counter() - start
    if one_sample * batch <= settings.loop_seconds:
        return Timing(_median_seconds(lambda: run_on(batch), settings)), batch
    samples = int(max(1, settings.loop_seconds // one_sample))
    times = []
    for _ in range(settings.loop_repeats):
        start = time.perf_counter()
        run_on(samples)
        times.append(time.perf_counter() - start)
    return Timing(statistics.median(times) * batch / samples, samples, batch), samples


# --------------------------------------------------------------------------- write-up 002


def writeup002_conv(x, w, bias, grad_y, stride, padding, signal, backward=True):
    """Write-up 002's scipy.signal loop over (filter, channel) pairs, one sample at a time.

    x (N, C, H, W), w (F, C, k, k), bias (F,), grad_y (N, F, Ho, Wo). Stride and padding,
    which the write-up does not have, are added the way its reader would: pad the input,
    correlate at every position and keep every stride-th; dilate grad_y to match. The
    input gradient uses signal.convolve2d where the write-up calls correlate2d, which
    skips the kernel flip; both cost the same. Returns the forward output, or with
    ``backward`` the dict of y, grad_w (summed over the batch), grad_x and grad_b.
    """
    n, channels, height, width = x.shape
    filters = w.shape[0]
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    valid_height = padded.shape[2] - w.shape[2] + 1
    valid_width = padded.shape[3] - w.shape[3] + 1
    y = np.empty((n,) + grad_y.shape[1:], x.dtype)
    grad_w = np.zeros_like(w)
    grad_x = np.zeros_like(x)
    for sample in range(n):
        output = np.empty((filters, valid_height, valid_width), x.dtype)
        output[:] = bias[:, None, None]
        for i in range(filters):
            for j in range(channels):
                output[i] += signal.correlate2d(padded[sample, j], w[i, j], "valid")
        y[sample] = output[:, ::stride, ::stride]
        if not backward:
            continue
        output_gradient = np.zeros_like(output)
        output_gradient[:, ::stride, ::stride] = grad_y[sample]
        input_gradient = np.zeros_like(padded[sample])
        for i in range(filters):
            for j in range(channels):
                grad_w[i, j] += signal.correlate2d(
                    padded[sample, j], output_gradient[i], "valid"
                )
                input_gradient[j] += signal.convolve2d(output_gradient[i], w[i, j], "full")
        grad_x[sample] = input_gradient[:, padding : padding + height, padding : padding + width]
    if not backward:
        return y
    return {"y": y, "grad_w": grad_w, "grad_x": grad_x, "grad_b": grad_y.sum(axis=(0, 2, 3))}


# --------------------------------------------------------------------------- write-up 004


def writeup004_conv_forward(image, w, bias, stride, padding):
    """Write-up 004's ConvLayer.forward: one image (C, H, W), one window at a time.

    Returns the padded image (kept for backward, as the write-up does) and (F, Ho, Wo).
    """
    k = w.shape[2]
    padded = np.pad(image, ((0, 0), (padding, padding), (padding, padding)))
    out_height = (padded.shape[1] - k) // stride + 1
    out_width = (padded.shape[2] - k) // stride + 1
    output = np.empty((w.shape[0], out_height, out_width), image.dtype)
    output[:] = bias[:, None, None]
    for i in range(out_height):
        for j in range(out_width):
            region = padded[:, i * stride : i * stride + k, j * stride : j * stride + k]
            output[:, i, j] += np.sum(region * w, axis=(1, 2, 3))
    return padded, output


def writeup004_conv_backward(padded, output_gradient, w, stride, padding):
    """Write-up 004's ConvLayer.backprop (without the update): grad_w and grad_input.

    The weight gradient adds grad * region per window and filter; the input gradient
    gathers, per input pixel and channel, the window of the (stride-dilated, padded)
    output gradient against the flipped kernels, as the write-up does for stride 1.
    """
    filters, channels, k, _ = w.shape
    out_height, out_width = output_gradient.shape[1:]
    grad_w = np.zeros_like(w)
    for i in range(out_height):
        for j in range(out_width):
            region = padded[:, i * stride : i * stride + k, j * stride : j * stride + k]
            for f in range(filters):
                grad_w[f] += output_gradient[f, i, j] * region
    # Gradient at padded row r = sum over a of dilated_grad[r - a] * w[a]; putting the
    # dilated gradient k - 1 rows down makes that a window starting at row r.
    height = padded.shape[1] - 2 * padding
    width = padded.shape[2] - 2 * padding
    spread = np.zeros((filters, padded.shape[1] + k - 1, padded.shape[2] + k - 1), padded.dtype)
    spread[
        :,
        k - 1 : k - 1 + (out_height - 1) * stride + 1 : stride,
        k - 1 : k - 1 + (out_width - 1) * stride + 1 : stride,
    ] = output_gradient
    flipped = np.rot90(np.moveaxis(w, 0, 1), 2, axes=(2, 3))
    grad_input = np.zeros((channels, height, width), padded.dtype)
    for i in range(height):
        for j in range(width):
            region = spread[:, i + padding : i + padding + k, j + padding : j + padding + k]
            for d in range(channels):
                grad_input[d, i, j] += np.sum(region * flipped[d])
    return grad_w, grad_input


def writeup004_conv(x, w, bias, grad_y, stride, padding, backward=True):
    """writeup004_conv_forward (and _backward) over a batch, like writeup002_conv."""
    y = np.empty((x.shape[0],) + grad_y.shape[1:], x.dtype)
    grad_w = np.zeros_like(w)
    grad_x = np.empty_like(x)
    for sample in range(x.shape[0]):
        padded, y[sample] = writeup004_conv_forward(x[sample], w, bias, stride, padding)
        if backward:
            sample_grad_w, grad_x[sample] = writeup004_conv_backward(
                padded, grad_y[sample], w, stride, padding
            )
            grad_w += sample_grad_w
    if not backward:
        return y
    return {"y": y, "grad_w": grad_w, "grad_x": grad_x, "grad_b": grad_y.sum(axis=(0, 2, 3))}


def writeup004_maxpool_forward(image, size=2):
    """Write-up 004's MaxPool.forward: the max of each window of one image (C, H, W)."""
    channels, height, width = image.shape
    output = np.zeros((channels, height // size, width // size), image.dtype)
    for i in range(height // size):
        for j in range(width // size):
            region = image[:, i * size : i * size + size, j * size : j * size + size]
            output[:, i, j] = np.amax(region, axis=(1, 2))
    return output


def writeup004_maxpool_backward(image, output_gradient, size=2):
    """Write-up 004's MaxPool.backprop: find each window's max again, pixel by pixel."""
    grad_input = np.zeros_like(image)
    for i in range(image.shape[1] // size):
        for j in range(image.shape[2] // size):
            region = image[:, i * size : i * size + size, j * size : j * size + size]
            largest = np.amax(region, axis=(1, 2))
            for i2 in range(size):
                for j2 in range(size):
                    for f2 in range(image.shape[0]):
                        if region[f2, i2, j2] == largest[f2]:
                            gradient = output_gradient[f2, i, j]
                            grad_input[f2, i * size + i2, j * size + j2] = gradient
    return grad_input


def writeup004_maxpool(x, grad_y):
    """writeup004_maxpool_forward and _backward over a batch: {"y", "grad_x"}."""
    y = np.empty_like(grad_y)
    grad_x = np.empty_like(x)
    for sample in range(x.shape[0]):
        y[sample] = writeup004_maxpool_forward(x[sample])
        grad_x[sample] = writeup004_maxpool_backward(x[sample], grad_y[sample])
    return {"y": y, "grad_x": grad_x}


class WriteUp004SimpleCNN:
    """Write-up 004's SimpleCNN, trained one image at a time with its own loops.

    conv 5x5x6 same -> ReLU -> conv 5x5x6 same -> ReLU -> maxpool 2 -> dense 10 +
    softmax; float64 and the write-up's initialisation (its untied biases are tied here,
    as in every other implementation in this benchmark).
    """

    def __init__(self, rng):
        self.kernels1 = rng.standard_normal((6, 1, 5, 5)) / 25
        self.kernels2 = rng.standard_normal((6, 6, 5, 5)) / 25
        self.bias1 = rng.standard_normal(6) / (32 * 32)
        self.bias2 = rng.standard_normal(6) / (32 * 32)
        self.weights = rng.standard_normal((6 * 14 * 14, 10)) / (6 * 14 * 14)
        self.bias = np.zeros(10)

    def train_step(self, image, label, learn_rate=LEARNING_RATE):
        """Forward, softmax cross-entropy, backward and update for one uint8 image (28, 28)."""
        x = image[np.newaxis] / 255 - 0.5
        padded1, out1 = writeup004_conv_forward(x, self.kernels1, self.bias1, 1, 2)
        relu1 = np.maximum(0, out1)
        padded2, out2 = writeup004_conv_forward(relu1, self.kernels2, self.bias2, 1, 2)
        relu2 = np.maximum(0, out2)
        pooled = writeup004_maxpool_forward(relu2)
        flat = pooled.flatten()
        exp = np.exp(flat @ self.weights + self.bias)
        probabilities = exp / np.sum(exp)
        # The write-up's softmax Jacobian row times -1 / p[label] is p - one_hot(label).
        grad_totals = probabilities.copy()
        grad_totals[label] -= 1
        grad_flat = self.weights @ grad_totals
        self.weights -= learn_rate * np.outer(flat, grad_totals)
        self.bias -= learn_rate * grad_totals
        grad_relu2 = writeup004_maxpool_backward(relu2, grad_flat.reshape(pooled.shape))
        grad_out2 = grad_relu2 * (relu2 > 0)
        grad_w2, grad_relu1 = writeup004_conv_backward(padded2, grad_out2, self.kernels2, 1, 2)
        grad_out1 = grad_relu1 * (relu1 > 0)
        grad_w1, _ = writeup004_conv_backward(padded1, grad_out1, self.kernels1, 1, 2)
        self.kernels2 -= learn_rate * grad_w2
        self.bias2 -= learn_rate * grad_out2.sum(axis=(1, 2))
        self.kernels1 -= learn_rate * grad_w1
        self.bias1 -= learn_rate * grad_out1.sum(axis=(1, 2))


# --------------------------------------------------------------------------- formatting


def _format_seconds(seconds):
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    if seconds < 600:
        return f"{seconds:.3g} s"
    return f"{seconds / 60:.3g} min"


def _format_ratio(ratio):
    if ratio < 10:
        return f"{ratio:.2f}×"
    if ratio < 100:
        return f"{ratio:.1f}×"
    return f"{ratio:,.0f}×"


def _cell(timing, fastcnn_timing=None):
    """'12.3 ms (4.10×) [2/64]': time, ratio to fastcnn, samples timed when scaled."""
    if isinstance(timing, str):
        return timing
    text = _format_seconds(timing.seconds)
    if fastcnn_timing is not None:
        text += f" ({_format_ratio(timing.seconds / fastcnn_timing.seconds)})"
    if timing.scaled:
        text += f" [{timing.samples:,}/{timing.batch:,}]"
    return text


def _first_samples(samples, batch):
    """' (first 2 of 64 samples)' when a check saw only part of the batch."""
    return "" if samples == batch else f" (first {samples} of {batch} samples)"


def _table(header, rows):
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- optional libraries


def _optional(module_name):
    """The module, or None when it is not installed."""
    try:
        return importlib.import_module(module_name)
    except ImportError:
        return None


class Libraries(NamedTuple):
    signal: object  # scipy.signal or None
    torch: object  # or None
    matplotlib: object  # or None


def _find_libraries():
    return Libraries(
        signal=_optional("scipy.signal"),
        torch=_optional("torch"),
        matplotlib=_optional("matplotlib"),
    )


# --------------------------------------------------------------------------- convolution


def _conv_forward_backward(module, x, w, bias, grad_y, stride, padding):
    """The four arrays of one conv layer's forward and backward through ``module``."""
    return {
        "y": module.correlate2d(x, w, bias, stride, padding),
        "grad_w": module.correlate2d_backward_weight(x, grad_y, w.shape[2:], stride, padding),
        "grad_x": module.convolve2d_full(grad_y, w, x.shape[2:], stride, padding),
        "grad_b": grad_y.sum(axis=(0, 2, 3)),
    }


def _torch_conv(torch, x, w, bias, grad_y, stride, padding):
    """(forward, forward_backward) closures over PyTorch tensors sharing the arrays."""
    functional = torch.nn.functional
    x_t, w_t, bias_t = (torch.from_numpy(a).requires_grad_() for a in (x, w, bias))
    grad_y_t = torch.from_numpy(grad_y)

    def forward():
        with torch.no_grad():
            return functional.conv2d(x_t, w_t, bias_t, stride=stride, padding=padding)

    def forward_backward():
        for tensor in (x_t, w_t, bias_t):
            tensor.grad = None
        y = functional.conv2d(x_t, w_t, bias_t, stride=stride, padding=padding)
        y.backward(grad_y_t)
        return {
            "y": y.detach().numpy(),
            "grad_w": w_t.grad.numpy(),
            "grad_x": x_t.grad.numpy(),
            "grad_b": bias_t.grad.numpy(),
        }

    return forward, forward_backward


def _conv_arrays(case, rng):
    ho, wo = case.output_size
    x = rng.standard_normal((case.n, case.c, case.h, case.w), dtype=np.float32)
    w = rng.standard_normal((case.filters, case.c, case.k, case.k), dtype=np.float32)
    bias = rng.standard_normal(case.filters, dtype=np.float32)
    grad_y = rng.standard_normal((case.n, case.filters, ho, wo), dtype=np.float32)
    return x, w, bias, grad_y


def _run_conv_case(case, settings, libraries, report):
    """{alternative: (forward, forward + backward)} timings of one case; checks answers."""
    x, w, bias, grad_y = _conv_arrays(case, np.random.default_rng(SEED))
    s, p = case.stride, case.padding
    name = f"conv ({case.label})"
    expected = _conv_forward_backward(kernels, x, w, bias, grad_y, s, p)

    def time_module(module):
        return (
            Timing(_median_seconds(lambda: module.correlate2d(x, w, bias, s, p), settings)),
            Timing(
                _median_seconds(
                    lambda: _conv_forward_backward(module, x, w, bias, grad_y, s, p), settings
                )
            ),
        )

    timings = {"fastcnn": time_module(kernels)}
    report.compare(
        f"{name}: fastcnn vs reference",
        expected,
        _conv_forward_backward(reference, x, w, bias, grad_y, s, p),
    )
    timings["reference"] = time_module(reference)

    loops = {}
    if libraries.signal is not None:
        loops["write-up 002"] = lambda count, backward: writeup002_conv(
            x[:count], w, bias, grad_y[:count], s, p, libraries.signal, backward
        )
    else:
        timings["write-up 002"] = ("scipy not installed",) * 2
    loops["write-up 004"] = lambda count, backward: writeup004_conv(
        x[:count], w, bias, grad_y[:count], s, p, backward
    )
    for loop_name, loop in loops.items():
        forward_timing, _ = _loop_timing(lambda count: loop(count, False), case.n, settings)
        both_timing, samples = _loop_timing(lambda count: loop(count, True), case.n, settings)
        timings[loop_name] = (forward_timing, both_timing)
        report.compare(
            f"{name}: fastcnn vs {loop_name}{_first_samples(samples, case.n)}",
            _conv_forward_backward(kernels, x[:samples], w, bias, grad_y[:samples], s, p),
            loop(samples, True),
        )

    if libraries.torch is not None:
        forward, forward_backward = _torch_conv(libraries.torch, x, w, bias, grad_y, s, p)
        report.compare(f"{name}: fastcnn vs PyTorch", expected, forward_backward())
        timings["PyTorch"] = (
            Timing(_median_seconds(forward, settings)),
            Timing(_median_seconds(forward_backward, settings)),
        )
    else:
        timings["PyTorch"] = ("PyTorch not installed",) * 2
    return timings


CONV_ALTERNATIVES = ("reference", "write-up 002", "write-up 004", "PyTorch")


def _conv_section(settings, libraries, report):
    cases = QUICK_CONV_CASES if settings.quick else CONV_CASES
    results = []
    for case in cases:
        report.progress(f"conv {case.label}")
        results.append((case, _run_conv_case(case, settings, libraries, report)))

    tables = []
    for title, index, passes in (("Forward", 0, 1), ("Forward + backward", 1, 3)):
        rows = []
        for case, timings in results:
            fastcnn_timing = timings["fastcnn"][index]
            gflops = passes * case.forward_flops / fastcnn_timing.seconds / 1e9
            row = [f"{case.source}: {case.label}", _cell(fastcnn_timing), f"{gflops:.1f}"]
            for alternative in CONV_ALTERNATIVES:
                timing = timings[alternative][index]
                row.append(_cell(timing, fastcnn_timing))
                if index == 1 and isinstance(timing, Timing):
                    report.ratios.append(
                        ("Convolution, forward + backward", case.label, alternative,
                         timing.seconds / fastcnn_timing.seconds)
                    )
            rows.append(row)
        header = ["write-up: N, C, H, W, filters, k, stride, padding", "fastcnn", "GFLOP/s"]
        tables.append(f"### {title}\n\n" + _table(header + list(CONV_ALTERNATIVES), rows))
    report.sections.append(
        "## Convolution layers (float32)\n\n"
        "Forward: `correlate2d` with bias. Forward + backward adds "
        "`correlate2d_backward_weight`, `convolve2d_full` and the bias gradient. "
        "PyTorch: `conv2d` under `no_grad`; then `conv2d` and autograd `backward`. "
        "GFLOP/s is fastcnn's, counting 2·N·F·Ho·Wo·C·k² per pass "
        "(three passes for forward + backward).\n\n"
        + "\n\n".join(tables)
    )


# --------------------------------------------------------------------------- max-pool


def _pool_forward_backward(module, x, grad_y):
    y, argmax = module.maxpool2d(x, 2)
    return {
        "y": y,
        "argmax": argmax,
        "grad_x": module.maxpool2d_backward(grad_y, argmax, x.shape[2:]),
    }


def _torch_pool(torch, x, grad_y):
    x_t = torch.from_numpy(x).requires_grad_()
    grad_y_t = torch.from_numpy(grad_y)

    def forward_backward():
        x_t.grad = None
        y, indices = torch.nn.functional.max_pool2d(x_t, 2, return_indices=True)
        y.backward(grad_y_t)
        return {"y": y.detach().numpy(), "argmax": indices.numpy(), "grad_x": x_t.grad.numpy()}

    return forward_backward


POOL_ALTERNATIVES = ("reference", "write-up 004", "PyTorch")


def _pool_section(settings, libraries, report):
    rng = np.random.default_rng(SEED)
    rows = []
    for shape in QUICK_POOL_SHAPES if settings.quick else POOL_SHAPES:
        label = ", ".join(str(size) for size in shape)
        report.progress(f"max-pool {label}")
        n, c, h, w = shape
        x = rng.standard_normal(shape, dtype=np.float32)
        grad_y = rng.standard_normal((n, c, h // 2, w // 2), dtype=np.float32)
        expected = _pool_forward_backward(kernels, x, grad_y)
        timings = {}
        fastcnn_timing = Timing(
            _median_seconds(lambda: _pool_forward_backward(kernels, x, grad_y), settings)
        )
        report.compare(
            f"max-pool ({label}): fastcnn vs reference",
            expected,
            _pool_forward_backward(reference, x, grad_y),
        )
        timings["reference"] = Timing(
            _median_seconds(lambda: _pool_forward_backward(reference, x, grad_y), settings)
        )
        timings["write-up 004"], samples = _loop_timing(
            lambda count: writeup004_maxpool(x[:count], grad_y[:count]), n, settings
        )
        subset = _pool_forward_backward(kernels, x[:samples], grad_y[:samples])
        report.compare(
            f"max-pool ({label}): fastcnn vs write-up 004{_first_samples(samples, n)}",
            {name: subset[name] for name in ("y", "grad_x")},
            writeup004_maxpool(x[:samples], grad_y[:samples]),
        )
        if libraries.torch is not None:
            forward_backward = _torch_pool(libraries.torch, x, grad_y)
            report.compare(
                f"max-pool ({label}): fastcnn vs PyTorch", expected, forward_backward()
            )
            timings["PyTorch"] = Timing(_median_seconds(forward_backward, settings))
        else:
            timings["PyTorch"] = "PyTorch not installed"
        row = [label, _cell(fastcnn_timing)]
        for alternative in POOL_ALTERNATIVES:
            timing = timings[alternative]
            row.append(_cell(timing, fastcnn_timing))
            if isinstance(timing, Timing):
                report.ratios.append(
                    ("Max-pool 2×2, forward + backward", label, alternative,
                     timing.seconds / fastcnn_timing.seconds)
                )
        rows.append(row)
    report.sections.append(
        "## Max-pool 2×2 with argmax, forward + backward (float32)\n\n"
        "`maxpool2d` (values and argmax) then `maxpool2d_backward`. PyTorch: "
        "`max_pool2d(return_indices=True)` and autograd `backward`. Write-up 004 "
        "finds each window's maximum again in its backward pass instead of keeping an "
        "argmax.\n\n"
        + _table(["N, C, H, W", "fastcnn"] + list(POOL_ALTERNATIVES), rows)
    )


# --------------------------------------------------------------------------- matmul


def _matmul_section(settings, libraries, report):
    rng = np.random.default_rng(SEED)
    rows = []
    for dtype in (np.float32, np.float64):
        for m, k, n in QUICK_MATMUL_SHAPES if settings.quick else MATMUL_SHAPES:
            label = f"({m}×{k})·({k}×{n}) {np.dtype(dtype).name}"
            report.progress(f"matmul {label}")
            a = rng.standard_normal((m, k)).astype(dtype)
            b = rng.standard_normal((k, n)).astype(dtype)
            report.compare(
                f"matmul {label}: fastcnn vs NumPy",
                {"c": kernels.matmul(a, b)},
                {"c": a @ b},
            )
            fastcnn_timing = Timing(_median_seconds(lambda: kernels.matmul(a, b), settings))
            numpy_timing = Timing(_median_seconds(lambda: a @ b, settings))
            flops = 2 * m * k * n
            row = [
                label,
                _cell(fastcnn_timing),
                f"{flops / fastcnn_timing.seconds / 1e9:.1f}",
                _cell(numpy_timing, fastcnn_timing),
                f"{flops / numpy_timing.seconds / 1e9:.1f}",
            ]
            report.ratios.append(
                ("Matmul", label, "NumPy @", numpy_timing.seconds / fastcnn_timing.seconds)
            )
            torch = libraries.torch
            if torch is not None:
                a_t, b_t = torch.from_numpy(a), torch.from_numpy(b)
                report.compare(
                    f"matmul {label}: fastcnn vs PyTorch",
                    {"c": kernels.matmul(a, b)},
                    {"c": torch.matmul(a_t, b_t).numpy()},
                )
                torch_timing = Timing(_median_seconds(lambda: torch.matmul(a_t, b_t), settings))
                row.append(_cell(torch_timing, fastcnn_timing))
                report.ratios.append(
                    ("Matmul", label, "PyTorch", torch_timing.seconds / fastcnn_timing.seconds)
                )
            else:
                row.append("PyTorch not installed")
            rows.append(row)
    report.sections.append(
        "## Matmul\n\n"
        "`fastcnn.kernels.matmul(a, b)` against NumPy's `a @ b` (its BLAS) and "
        "`torch.matmul`.\n\n"
        + _table(
            ["shape", "fastcnn", "fastcnn GFLOP/s", "NumPy @", "NumPy GFLOP/s", "PyTorch"],
            rows,
        )
    )


# --------------------------------------------------------------------------- end to end

NETWORK_NAMES = ("Network", "Convolutional", "ReLU", "MaxPool2D", "Flatten", "Dense")


@dataclass
class EpochResult:
    seconds: float  # for the images trained
    images: int
    peak_rss_mib: Optional[float]
    test_accuracy: float
    test_images: int

    def epoch_timing(self):
        """The time for a 60,000-image epoch, scaled when fewer images were trained."""
        images = min(self.images, EPOCH_IMAGES)
        return Timing(self.seconds * EPOCH_IMAGES / self.images, images, EPOCH_IMAGES)


def _load_images(image_count, test_count):
    """uint8 (n, 28, 28) images and int64 labels, train and test, and where they came from.

    Fashion-MNIST through fastcnn.datasets when that module exists, else random images.
    ``image_count`` None means the whole training set.
    """
    datasets = _optional("fastcnn.datasets")
    if datasets is not None and hasattr(datasets, "fashion_mnist"):
        data = datasets.fashion_mnist()
        (train_images, train_labels), (test_images, test_labels) = data
        source = str(getattr(data, "source", "Fashion-MNIST (fastcnn.datasets.fashion_mnist)"))
    else:
        rng = np.random.default_rng(SEED)
        train_count = EPOCH_IMAGES if image_count is None else image_count
        train_images = rng.integers(0, 256, (train_count, 28, 28), dtype=np.uint8)
        train_labels = rng.integers(0, 10, train_count, dtype=np.int64)
        test_images = rng.integers(0, 256, (test_count, 28, 28), dtype=np.uint8)
        test_labels = rng.integers(0, 10, test_count, dtype=np.int64)
        source = (
            "synthetic random 28×28 images and labels "
            "(fastcnn.datasets.fashion_mnist is not available)"
        )
    return (
        train_images[:image_count],
        train_labels[:image_count].astype(np.int64),
        test_images[:test_count],
        test_labels[:test_count].astype(np.int64),
        source,
    )


def _normalise(images):
    """uint8 (n, 28, 28) -> float32 (n, 1, 28, 28) in [-0.5, 0.5], without a float64 copy."""
    x = images[:, np.newaxis].astype(np.float32)
    x /= 255
    x -= 0.5
    return x


def _peak_rss_mib():
    """This process's peak resident set size so far, in MiB, or None where unknown.

    Linux: VmHWM from /proc/self/status. getrusage's ru_maxrss is not used there
    because Linux carries it over from the parent through fork and exec, so a fresh
    child started by a large benchmark process would report the parent's peak.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes, else KiB


def fastcnn_epoch(batch_size, image_count, test_count, threads):
    """Train the SimpleCNN with fastcnn.Network for one epoch; run in a fresh process."""
    fastcnn.set_num_threads(threads)
    train_images, train_labels, test_images, test_labels, _ = _load_images(image_count, test_count)
    x_train, x_test = _normalise(train_images), _normalise(test_images)
    network = fastcnn.Network(
        [
            fastcnn.Convolutional(6, 5, padding=2),
            fastcnn.ReLU(),
            fastcnn.Convolutional(6, 5, padding=2),
            fastcnn.ReLU(),
            fastcnn.MaxPool2D(2),
            fastcnn.Flatten(),
            fastcnn.Dense(10),
        ]
    ).use("softmax_cross_entropy")

    def train(x, y):
        network.fit(
            x, y, epochs=1, learning_rate=LEARNING_RATE, batch_size=batch_size, verbose=0
        )

    train(x_train[:batch_size], train_labels[:batch_size])  # warm-up step
    start = time.perf_counter()
    train(x_train, train_labels)
    seconds = time.perf_counter() - start
    predictions = np.argmax(network.predict(x_test), axis=-1)
    return EpochResult(
        seconds,
        len(x_train),
        _peak_rss_mib(),
        float(np.mean(predictions == test_labels)),
        len(x_test),
    )


def torch_epoch(batch_size, image_count, test_count, threads):
    """Train the same network with PyTorch (SGD, mean cross-entropy) in a fresh process."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(SEED)
    train_images, train_labels, test_images, test_labels, _ = _load_images(image_count, test_count)
    x_train, y_train = torch.from_numpy(_normalise(train_images)), torch.from_numpy(train_labels)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.Conv2d(6, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(6 * 14 * 14, 10),
    )
    loss_function = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)

    def train(order):
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad()
            loss_function(model(x_train[batch]), y_train[batch]).backward()
            optimizer.step()

    train(torch.arange(batch_size))  # warm-up step
    start = time.perf_counter()
    train(torch.randperm(len(x_train)))
    seconds = time.perf_counter() - start
    with torch.no_grad():
        predictions = model(torch.from_numpy(_normalise(test_images))).argmax(dim=1).numpy()
    return EpochResult(
        seconds,
        len(x_train),
        _peak_rss_mib(),
        float(np.mean(predictions == test_labels)),
        len(test_images),
    )


def _in_fresh_process(function, *arguments):
    """function(*arguments) in a new Python process, so its peak memory is its own."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *arguments).result()


def _writeup004_epoch(train_images, train_labels):
    """Write-up 004's own SimpleCNN trained on these images, scaled to an epoch."""
    network = WriteUp004SimpleCNN(np.random.default_rng(SEED))
    network.train_step(train_images[0], train_labels[0])  # warm-up step
    start = time.perf_counter()
    for image, label in zip(train_images, train_labels):
        network.train_step(image, label)
    seconds = time.perf_counter() - start
    return Timing(seconds * EPOCH_IMAGES / len(train_images), len(train_images), EPOCH_IMAGES)


def _epoch_cells(result, fastcnn_timing=None):
    """The epoch time, peak memory and test accuracy cells of one run, or its reason."""
    if isinstance(result, str):
        return [result, "", ""]
    peak = "unknown" if result.peak_rss_mib is None else f"{result.peak_rss_mib:.0f} MiB"
    return [
        _cell(result.epoch_timing(), fastcnn_timing),
        peak,
        f"{result.test_accuracy:.3f} ({result.test_images:,})",
    ]


def _end_to_end_section(settings, libraries, report, threads):
    writeup_images, writeup_labels, _, _, source = _load_images(settings.writeup_epoch_images, 0)
    functions = {}
    results = {}
    if all(hasattr(fastcnn, name) for name in NETWORK_NAMES):
        functions["fastcnn"] = fastcnn_epoch
    else:
        results["fastcnn"] = dict.fromkeys(
            EPOCH_BATCH_SIZES, "not available (needs fastcnn.Network and its layers)"
        )
    if libraries.torch is None:
        results["PyTorch"] = dict.fromkeys(EPOCH_BATCH_SIZES, "PyTorch not installed")
    elif settings.quick:  # importing torch in each fresh process takes seconds
        results["PyTorch"] = dict.fromkeys(EPOCH_BATCH_SIZES, "skipped in quick mode")
    else:
        functions["PyTorch"] = torch_epoch
    for name, function in functions.items():
        results[name] = {}
        for batch_size in EPOCH_BATCH_SIZES:
            report.progress(f"end-to-end {name}, batch {batch_size}")
            images = None if settings.epoch_images is None else settings.epoch_images[batch_size]
            try:
                results[name][batch_size] = _in_fresh_process(
                    function, batch_size, images, settings.test_images, threads
                )
            except Exception as error:  # reported as a failed check; the run goes on
                message = f"{type(error).__name__}: {error}"
                results[name][batch_size] = f"failed: {message}"
                report.checks.append(Check(f"end-to-end {name}, batch {batch_size}", [message]))
    report.progress("end-to-end write-up 004, batch 1")
    writeup_timing = _writeup004_epoch(writeup_images, writeup_labels)

    rows = []
    for batch_size in EPOCH_BATCH_SIZES:
        fastcnn_result = results["fastcnn"][batch_size]
        fastcnn_timing = None if isinstance(fastcnn_result, str) else fastcnn_result.epoch_timing()
        torch_result = results["PyTorch"][batch_size]
        row = [str(batch_size)] + _epoch_cells(fastcnn_result)
        row += _epoch_cells(torch_result, fastcnn_timing)
        alternatives = {}
        if not isinstance(torch_result, str):
            alternatives["PyTorch"] = torch_result.epoch_timing()
        if batch_size == 1:
            row.append(_cell(writeup_timing, fastcnn_timing))
            alternatives["write-up 004"] = writeup_timing
        else:
            row.append("— (trains one image at a time)")
        if fastcnn_timing is not None:
            for alternative, timing in alternatives.items():
                report.ratios.append(
                    ("SimpleCNN epoch", f"batch {batch_size}", alternative,
                     timing.seconds / fastcnn_timing.seconds)
                )
        rows.append(row)
    report.sections.append(
        "## End to end: one epoch of write-up 004's SimpleCNN\n\n"
        "conv 5×5×6 same → ReLU → conv 5×5×6 same → ReLU → max-pool 2 → dense 10, "
        f"softmax cross-entropy, SGD with learning rate {LEARNING_RATE}, "
        f"on {source}. Images are float32 (x / 255 − 0.5). "
        "fastcnn: `Network.fit(epochs=1, batch_size=...)`; PyTorch: the same layers, "
        "`CrossEntropyLoss` and `optim.SGD`, in a plain loop over shuffled batches. "
        "Each run is a fresh Python process that loads the data, takes one warm-up "
        "step, trains one timed epoch and classifies the test images. "
        "The epoch time is for 60,000 images ([n/60,000]: scaled from n images trained). "
        "Peak memory is that process's peak resident set size (VmHWM in "
        "/proc/self/status on Linux, else `resource.getrusage` ru_maxrss), which "
        "includes the interpreter, the libraries and the whole loaded data set. "
        "Test accuracy is after that one epoch (number of test images in brackets). "
        "Write-up 004's own code trains in this process, float64, one image at a "
        "time, as the write-up does.\n\n"
        + _table(
            [
                "batch",
                "fastcnn epoch",
                "fastcnn peak memory",
                "fastcnn test accuracy",
                "PyTorch epoch",
                "PyTorch peak memory",
                "PyTorch test accuracy",
                "write-up 004 epoch",
            ],
            rows,
        )
    )


# --------------------------------------------------------------------------- threads


def _threads_section(settings, report):
    cases = [case for case in (QUICK_CONV_CASES if settings.quick else CONV_CASES) if case.n > 1]
    rows = []
    original = fastcnn.get_num_threads()
    try:
        for case in cases:
            report.progress(f"threads: conv {case.label}")
            x, w, bias, grad_y = _conv_arrays(case, np.random.default_rng(SEED))
            arguments = (x, w, bias, grad_y, case.stride, case.padding)
            expected = _conv_forward_backward(reference, *arguments)
            seconds = {}
            for threads in (1, 2):
                fastcnn.set_num_threads(threads)
                report.compare(
                    f"conv ({case.label}) at {threads} thread(s): fastcnn vs reference",
                    _conv_forward_backward(kernels, *arguments),
                    expected,
                )
                seconds[threads] = _median_seconds(
                    lambda: _conv_forward_backward(kernels, *arguments), settings
                )
            rows.append(
                [
                    f"{case.source}: {case.label}",
                    _format_seconds(seconds[1]),
                    _format_seconds(seconds[2]),
                    f"{seconds[1] / seconds[2]:.2f}×",
                ]
            )
    finally:
        fastcnn.set_num_threads(original)
    report.sections.append(
        "## Thread scaling: convolution forward + backward, batch cases\n\n"
        "fastcnn alone, with `fastcnn.set_num_threads(1)` and `(2)`; speed-up is the "
        "1-thread time ÷ the 2-thread time.\n\n"
        + _table(
            ["write-up: N, C, H, W, filters, k, stride, padding", "1 thread", "2 threads",
             "speed-up"],
            rows,
        )
    )


# --------------------------------------------------------------------------- report


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count()


def _load_average():
    try:
        return ", ".join(f"{load:.2f}" for load in os.getloadavg())
    except (AttributeError, OSError):  # not Unix
        return "unknown"


def _version(module_name):
    module = _optional(module_name)
    return "not installed" if module is None else getattr(module, "__version__", "unknown")


def _header(settings, threads, config, load_at_start, seconds, chart_note):
    if settings.quick:
        timing = (
            f"median of {settings.min_repeats}–{settings.max_repeats} runs after "
            f"{settings.warmup} warm-up run: **quick mode, for checking answers; the "
            "figures are rough**"
        )
    else:
        timing = (
            f"median of {settings.min_repeats}–{settings.max_repeats} runs (repeated for "
            f"at least {settings.seconds_per_measurement:g} s) after {settings.warmup} "
            "warm-up runs"
        )
    lines = [
        "# fastcnn benchmark",
        "",
        f"- Run: {settings.name}, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"- Machine: {_cpu_model()}, {os.cpu_count()} logical CPUs "
        f"({_usable_cpus()} usable by this process), {platform.system()} {platform.machine()}",
        f"- Load average (1, 5, 15 min): {load_at_start} at the start, "
        f"{_load_average()} at the end; the run took {_format_seconds(seconds)}",
        f"- fastcnn: {config}",
        f"- Threads: fastcnn {threads}, PyTorch {threads} (`torch.set_num_threads`); "
        "NumPy's BLAS uses its own default (set OPENBLAS_NUM_THREADS or OMP_NUM_THREADS "
        "to change it)",
        f"- Versions: Python {platform.python_version()}, NumPy {np.__version__}, "
        f"SciPy {_version('scipy')}, PyTorch {_version('torch')}, "
        f"matplotlib {_version('matplotlib')}",
        f"- Timing: `time.perf_counter`, {timing}",
        "- Cells: time for the whole batch, then (that time ÷ fastcnn's): above 1 "
        "means fastcnn is faster. [n/N]: timed on n of the N samples and scaled by N/n.",
        f"- Chart: {chart_note}",
    ]
    return "\n".join(lines)


def _checks_section(report):
    failed = report.failed_checks
    if failed:
        summary = f"**ANSWER MISMATCH: {len(failed)} of {len(report.checks)} checks failed.**\n\n"
        summary += "\n".join(
            f"- {check.name}: {'; '.join(check.problems)}" for check in failed
        )
    elif not report.checks:
        summary = "No answer checks ran in the sections chosen."
    else:
        summary = (
            f"All {len(report.checks)} answer checks passed: every array matches to "
            "1e-4 (float32) or 1e-10 (float64) of its largest magnitude, and argmax "
            "indices exactly."
        )
    listing = "\n".join(
        f"- {'FAILED' if check.problems else 'passed'}: {check.name}" for check in report.checks
    )
    return (
        "## Answer checks\n\n"
        + summary
        + "\n\n<details><summary>Every check</summary>\n\n"
        + listing
        + "\n\n</details>"
    )


# One colour per alternative, the same in every panel.
CHART_COLOURS = {
    "reference": "tab:blue",
    "write-up 002": "tab:orange",
    "write-up 004": "tab:green",
    "PyTorch": "tab:red",
    "NumPy @": "tab:purple",
}


def _write_chart(path, ratios):
    """A bar chart of the ratios, one panel per section, drawn by Agg (no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    sections = list(dict.fromkeys(section for section, *_ in ratios))
    figure = Figure(figsize=(10, 1.2 * len(sections) + 0.2 * len(ratios)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(
        len(sections),
        1,
        sharex=True,
        squeeze=False,
        height_ratios=[2 + sum(s == section for s, *_ in ratios) for section in sections],
    )[:, 0]
    for axis, section in zip(axes, sections):
        cases = list(dict.fromkeys(case for s, case, _, _ in ratios if s == section))
        alternatives = list(dict.fromkeys(a for s, _, a, _ in ratios if s == section))
        height = 0.8 / len(alternatives)
        for index, alternative in enumerate(alternatives):
            entries = [(c, r) for s, c, a, r in ratios if s == section and a == alternative]
            bars = axis.barh(
                [cases.index(case) - 0.4 + height * (index + 0.5) for case, _ in entries],
                [ratio for _, ratio in entries],
                height,
                color=CHART_COLOURS[alternative],
            )
            axis.bar_label(
                bars, [_format_ratio(ratio) for _, ratio in entries], fontsize="x-small", padding=2
            )
        axis.set_xscale("log")
        axis.axvline(1, color="black", linewidth=0.8)
        axis.set_yticks(range(len(cases)), cases, fontsize="small")
        axis.invert_yaxis()
        axis.set_title(section, fontsize="medium")
    axes[-1].set_xlabel("time ÷ fastcnn's time (right of the black line: fastcnn is faster)")
    shown = [name for name in CHART_COLOURS if any(a == name for _, _, a, _ in ratios)]
    figure.legend(
        handles=[Patch(color=CHART_COLOURS[name], label=name) for name in shown],
        loc="outside upper center",
        ncols=len(shown),
    )
    figure.savefig(path, dpi=100)


# --------------------------------------------------------------------------- main


def main(argv=None):
    """Run the benchmark; returns 0, or 1 when an answer check failed."""
    parser = argparse.ArgumentParser(
        prog="fastcnn bench",
        description="Time fastcnn's kernels against NumPy, the write-ups' own code and "
        "PyTorch (when installed), check every answer, and write a Markdown report.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a subset of the cases with tiny repeat counts, to check answers in seconds",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench/results.md"),
        help="the Markdown report to write; the PNG chart goes beside it "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="threads for fastcnn and PyTorch (default: fastcnn.get_num_threads(), "
        f"now {fastcnn.get_num_threads()})",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        default=list(SECTIONS),
        help="run only these sections (default: all)",
    )
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")

    settings = QUICK if args.quick else FULL
    libraries = _find_libraries()
    load_at_start = _load_average()
    original_threads = fastcnn.get_num_threads()
    threads = args.threads or original_threads
    original_torch_threads = libraries.torch.get_num_threads() if libraries.torch else None
    report = Report()
    try:
        fastcnn.set_num_threads(threads)
        if libraries.torch is not None:
            libraries.torch.set_num_threads(threads)
        with contextlib.redirect_stdout(io.StringIO()):
            config = fastcnn.show_config()
        if "conv" in args.only:
            _conv_section(settings, libraries, report)
        if "pool" in args.only:
            _pool_section(settings, libraries, report)
        if "matmul" in args.only:
            _matmul_section(settings, libraries, report)
        if "end-to-end" in args.only:
            _end_to_end_section(settings, libraries, report, threads)
        if "threads" in args.only:
            _threads_section(settings, report)
    finally:
        fastcnn.set_num_threads(original_threads)
        if libraries.torch is not None:
            libraries.torch.set_num_threads(original_torch_threads)

    chart_path = args.out.with_suffix(".png")
    if libraries.matplotlib is None:
        chart_note = "not drawn: matplotlib is not installed"
    elif not report.ratios:
        chart_note = "not drawn: no ratios were measured"
    else:
        chart_note = f"`{chart_path.name}`, beside this file\n\n![ratios]({chart_path.name})"
    text = "\n\n".join(
        [
            _header(
                settings,
                threads,
                config,
                load_at_start,
                time.perf_counter() - report.started,
                chart_note,
            ),
            _checks_section(report),
        ]
        + report.sections
    ) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    if libraries.matplotlib is not None and report.ratios:
        _write_chart(chart_path, report.ratios)
    print(text)
    failed = report.failed_checks
    if failed:
        print(
            f"ANSWER MISMATCH: {len(failed)} of {len(report.checks)} checks failed "
            f"(details in {args.out})",
            file=sys.stderr,
        )
        for check in failed:
            print(f"  {check.name}: {'; '.join(check.problems)}", file=sys.stderr)
        return 1
    print(
        f"{len(report.checks)} answer checks, all passed; report written to {args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
