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
    """The peak at ``threads`` threads: fastcnn._core.fma_peak(threads) when fastcnn has
    it (a loop of register-only FMAs, the CPU's true float32 peak), else the fallback
    below."""
    fma_peak = getattr(fastcnn._core, "fma_peak", None)
    if fma_peak is None:
        return _gemm_peak(threads, settings, torch, "fastcnn._core.fma_peak is not built")
    try:
        gflops = float(fma_peak(threads))
    except (TypeError, ValueError) as error:  # another signature than this module expects
        return _gemm_peak(threads, settings, torch, f"fastcnn._core.fma_peak failed: {error}")
    return Peak(
        gflops,
        f"`fastcnn._core.fma_peak({threads})`: register-only float32 FMAs, {threads} "
        "thread(s)",
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
