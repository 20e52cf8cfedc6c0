"""Matmul: fastcnn's GEMM against NumPy's BLAS (OpenBLAS in NumPy's wheels) and PyTorch."""

import numpy as np

from fastcnn import kernels

from .machine import CLEAN_COMMAND, blas_libraries, openblas_warning
from .measure import SEED, Timing, interleaved
from .report import cell, format_rate, table

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


def matmul_section(settings, libraries, report):
    rng = np.random.default_rng(SEED)
    torch = libraries.torch
    # float64 runs at half float32's peak: the same FMAs on half as many lanes
    peaks = {np.float32: report.peak.gflops, np.float64: report.peak.gflops / 2}
    rows = []
    for dtype in (np.float32, np.float64):
        for m, k, n in QUICK_MATMUL_SHAPES if settings.quick else MATMUL_SHAPES:
            label = f"({m}×{k})·({k}×{n}) {np.dtype(dtype).name}"
            report.progress(f"matmul {label}")
            a = rng.standard_normal((m, k)).astype(dtype)
            b = rng.standard_normal((k, n)).astype(dtype)
            expected = {"c": kernels.matmul(a, b)}
            report.compare(f"matmul {label}: fastcnn vs NumPy", expected, {"c": a @ b})
            runs = {"fastcnn": lambda: kernels.matmul(a, b), "NumPy @": lambda: a @ b}
            if torch is not None:
                a_t, b_t = torch.from_numpy(a), torch.from_numpy(b)
                runs["PyTorch"] = lambda: torch.matmul(a_t, b_t)
                report.compare(
                    f"matmul {label}: fastcnn vs PyTorch",
                    expected,
                    {"c": runs["PyTorch"]().numpy()},
                )
            seconds = interleaved(runs, settings)
            flops = 2 * m * k * n
            fastcnn_timing = Timing(seconds["fastcnn"])
            row = [label]
            for name in ("fastcnn", "NumPy @", "PyTorch"):
                if name not in seconds:
                    row += ["PyTorch not installed", ""]
                    continue
                timing = Timing(seconds[name])
                row.append(cell(timing, None if name == "fastcnn" else fastcnn_timing))
                row.append(format_rate(flops, seconds[name], peaks[dtype]))
                if name != "fastcnn":
                    ratio = timing.seconds / fastcnn_timing.seconds
                    report.ratios.append(("Matmul", label, name, ratio))
                    report.shares[("Matmul", label, name)] = (
                        flops / timing.seconds / 1e9 / peaks[dtype])
            rows.append(row)
    notes = "\n".join(f"- BLAS, {line}" for line in blas_libraries(libraries.threadpoolctl))
    warning = openblas_warning()
    report.sections.append(
        "## Matmul\n\n"
        "`fastcnn.kernels.matmul(a, b)` against NumPy's `a @ b` (its BLAS, OpenBLAS in "
        "NumPy's wheels) and `torch.matmul`, each with GFLOP/s counting 2·m·k·n and "
        "(its share of the peak; float64's peak is half float32's).\n\n"
        + notes + "\n"
        f"- OpenBLAS picks its kernel for this CPU when it loads, unless OPENBLAS_CORETYPE "
        f"or OPENBLAS_L2_SIZE say otherwise: run the benchmark as `{CLEAN_COMMAND}`."
        + (f"\n\n{warning}" if warning else "")
        + "\n\n"
        + table(
            ["shape", "fastcnn", "GFLOP/s (% of peak)", "NumPy @", "GFLOP/s (% of peak)",
             "PyTorch", "GFLOP/s (% of peak)"],
            rows,
        )
    )
