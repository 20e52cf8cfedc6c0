"""The host's peak float32 rate, against which every GFLOP/s is given as a share."""

from typing import NamedTuple

import numpy as np

import fastcnn
from fastcnn import kernels

from .measure import interleaved


class Peak(NamedTuple):
    gflops: float  # float32 GFLOP/s at the benchmark's thread count
    source: str  # how it was found, for the report


def host_peak(threads, settings, torch=None):
    """The float32 peak at ``threads`` threads: fastcnn.runtime.fma_peak (a loop of
    register-only FMAs, the CPU's true peak), the best of several short windows so a
    busy moment does not lower it; the fallback below if that is unavailable."""
    fma_peak = getattr(fastcnn.runtime, "fma_peak", None)
    if fma_peak is None:
        return _gemm_peak(threads, settings, torch, "fastcnn.runtime.fma_peak is missing")
    windows = 5 if settings.quick else 40
    gflops = max(fma_peak("float32", threads, 0.005) for _ in range(windows))
    return Peak(
        gflops,
        f"`fastcnn.runtime.fma_peak`: register-only float32 FMAs on {threads} thread(s), "
        f"the best of {windows} windows of 5 ms",
    )


def _gemm_peak(threads, settings, torch, reason):
    """The fastest float32 square matrix product of fastcnn, NumPy's BLAS and PyTorch
    at ``threads`` threads: a lower bound of the FMA peak (a GEMM reaches 80-95% of it),
    so shares of it overstate the share of the true peak a little."""
    size = 1024 if settings.quick else 2048
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    runs = {"fastcnn": lambda: kernels.matmul(a, b), "NumPy @": lambda: a @ b}
    if torch is not None:
        a_t, b_t = torch.from_numpy(a), torch.from_numpy(b)
        runs["PyTorch"] = lambda: torch.matmul(a_t, b_t)
    seconds = interleaved(runs, settings, statistic=min)  # a peak: the fastest single run
    fastest = min(seconds, key=seconds.get)
    gflops = 2 * size**3 / seconds[fastest] / 1e9
    return Peak(
        gflops,
        f"measured, as {reason}: the fastest single float32 {size}×{size} matrix product at "
        f"{threads} thread(s) ({fastest}'s, of {', '.join(runs)}), a lower bound of the "
        "FMA peak, so the shares overstate a little",
    )
