"""Thread scaling: fastcnn's convolution forward + backward at 1 and 2 threads."""

import numpy as np

import fastcnn
from fastcnn import kernels, reference

from .conv import CONV_CASES, QUICK_CONV_CASES, conv_arrays, conv_forward_backward
from .measure import SEED, interleaved
from .report import format_seconds, table


def threads_section(settings, report):
    cases = [case for case in (QUICK_CONV_CASES if settings.quick else CONV_CASES) if case.n > 1]
    rows = []
    original = fastcnn.get_num_threads()
    try:
        for case in cases:
            report.progress(f"threads: conv {case.label}")
            x, w, bias, grad_y = conv_arrays(case, np.random.default_rng(SEED))
            arguments = (x, w, bias, grad_y, case.stride, case.padding)
            expected = conv_forward_backward(reference, *arguments)
            seconds = {}
            for threads in (1, 2):
                fastcnn.set_num_threads(threads)
                report.compare(
                    f"conv ({case.label}) at {threads} thread(s): fastcnn vs reference",
                    conv_forward_backward(kernels, *arguments),
                    expected,
                )
                seconds[threads] = interleaved(
                    {"fastcnn": lambda: conv_forward_backward(kernels, *arguments)}, settings
                )["fastcnn"]
            rows.append(
                [
                    f"{case.source}: {case.label}",
                    format_seconds(seconds[1]),
                    format_seconds(seconds[2]),
                    f"{seconds[1] / seconds[2]:.2f}×",
                ]
            )
    finally:
        fastcnn.set_num_threads(original)
    report.sections.append(
        "## Thread scaling: convolution forward + backward, batch cases\n\n"
        "fastcnn alone, with `fastcnn.set_num_threads(1)` and `(2)`; speed-up is the "
        "1-thread time ÷ the 2-thread time.\n\n"
        + table(
            ["write-up: N, C, H, W, filters, k, stride, padding", "1 thread", "2 threads",
             "speed-up"],
            rows,
        )
    )
