"""Convolution layers: fastcnn's kernels against NumPy, the write-ups' loops and PyTorch."""

from typing import NamedTuple

import numpy as np

from fastcnn import Convolutional, kernels, reference

from .measure import SEED, Timing, interleaved, loop_timing
from .report import cell, first_samples, table
from .torch_baselines import LAYOUTS, faster_layout, torch_conv
from .writeups import writeup002_conv, writeup004_conv

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
        """(Ho, Wo), as fastcnn's Convolutional layer computes it."""
        layer = Convolutional(self.filters, self.k, self.stride, self.padding,
                              input_shape=(self.c, self.h, self.w))
        return layer.output_shape[1:]

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
CONV_ALTERNATIVES = ("reference", "write-up 002", "write-up 004", "PyTorch")

def conv_forward_backward(module, x, w, bias, grad_y, stride, padding):
    """The four arrays of one conv layer's forward and backward through ``module``
    (fastcnn.kernels or fastcnn.reference)."""
    return {
        "y": module.correlate2d(x, w, bias, stride, padding),
        "grad_w": module.correlate2d_backward_weight(x, grad_y, w.shape[2:], stride, padding),
        "grad_x": module.convolve2d_full(grad_y, w, x.shape[2:], stride, padding),
        "grad_b": grad_y.sum(axis=(0, 2, 3)),
    }

def conv_arrays(case, rng):
    """Random float32 x, w, bias and grad_y of a case."""
    ho, wo = case.output_size
    x = rng.standard_normal((case.n, case.c, case.h, case.w), dtype=np.float32)
    w = rng.standard_normal((case.filters, case.c, case.k, case.k), dtype=np.float32)
    bias = rng.standard_normal(case.filters, dtype=np.float32)
    grad_y = rng.standard_normal((case.n, case.filters, ho, wo), dtype=np.float32)
    return x, w, bias, grad_y

def _run_case(case, settings, libraries, report):
    """{alternative: (forward, forward + backward)} timings of one case; checks answers."""
    x, w, bias, grad_y = conv_arrays(case, np.random.default_rng(SEED))
    s, p = case.stride, case.padding
    name = f"conv ({case.label})"
    expected = conv_forward_backward(kernels, x, w, bias, grad_y, s, p)
    report.compare(
        f"{name}: fastcnn vs reference",
        expected,
        conv_forward_backward(reference, x, w, bias, grad_y, s, p),
    )
    forwards = {}
    both = {}
    for label, module in (("fastcnn", kernels), ("reference", reference)):
        forwards[label] = lambda module=module: module.correlate2d(x, w, bias, s, p)
        both[label] = lambda module=module: conv_forward_backward(module, x, w, bias, grad_y, s, p)
    timings = {}
    if libraries.torch is not None:
        for layout in LAYOUTS:
            forwards[f"PyTorch {layout}"], both[f"PyTorch {layout}"] = torch_conv(
                libraries.torch, x, w, bias, grad_y, s, p, layout
            )
            report.compare(f"{name}: fastcnn vs PyTorch {layout}", expected,
                           both[f"PyTorch {layout}"]())
    else:
        timings["PyTorch"] = ("PyTorch not installed",) * 2
    forward_seconds = faster_layout(interleaved(forwards, settings))
    both_seconds = faster_layout(interleaved(both, settings))
    for label in forward_seconds:
        timings[label] = (Timing(forward_seconds[label]), Timing(both_seconds[label]))

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
        forward_timing, _ = loop_timing(lambda count: loop(count, False), case.n, settings)
        both_timing, samples = loop_timing(lambda count: loop(count, True), case.n, settings)
        timings[loop_name] = (forward_timing, both_timing)
        report.compare(
            f"{name}: fastcnn vs {loop_name}{first_samples(samples, case.n)}",
            conv_forward_backward(kernels, x[:samples], w, bias, grad_y[:samples], s, p),
            loop(samples, True),
        )
    return timings

def conv_section(settings, libraries, report):
    cases = QUICK_CONV_CASES if settings.quick else CONV_CASES
    results = []
    for case in cases:
        report.progress(f"conv {case.label}")
        results.append((case, _run_case(case, settings, libraries, report)))

    tables = []
    for title, index, passes in (("Forward", 0, 1), ("Forward + backward", 1, 3)):
        rows = []
        for case, timings in results:
            fastcnn_timing = timings["fastcnn"][index]
            gflops = passes * case.forward_flops / fastcnn_timing.seconds / 1e9
            row = [f"{case.source}: {case.label}", cell(fastcnn_timing),
                   f"{gflops:.1f} ({gflops / report.peak.gflops:.0%})"]
            for alternative in CONV_ALTERNATIVES:
                timing = timings[alternative][index]
                row.append(cell(timing, fastcnn_timing))
                if index == 1 and isinstance(timing, Timing):
                    key = ("Convolution, forward + backward", case.label, alternative)
                    report.ratios.append((*key, timing.seconds / fastcnn_timing.seconds))
                    report.shares[key] = (passes * case.forward_flops / timing.seconds / 1e9
                                          / report.peak.gflops)
            rows.append(row)
        header = ["write-up: N, C, H, W, filters, k, stride, padding", "fastcnn",
                  "GFLOP/s (% of peak)"]
        tables.append(f"### {title}\n\n" + table(header + list(CONV_ALTERNATIVES), rows))
    report.sections.append(
        "## Convolution layers (float32)\n\n"
        "Forward: `correlate2d` with bias. Forward + backward adds "
        "`correlate2d_backward_weight`, `convolve2d_full` and the bias gradient. "
        "PyTorch: `conv2d` under `no_grad`; then `conv2d` and autograd `backward`; each "
        "timed with the tensors in NCHW and in channels_last memory, the faster shown. "
        "GFLOP/s is fastcnn's, counting 2·N·F·Ho·Wo·C·k² per pass "
        "(three passes for forward + backward), and its share of the peak.\n\n"
        + "\n\n".join(tables)
    )
