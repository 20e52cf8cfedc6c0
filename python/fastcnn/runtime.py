"""Threads and SIMD path of the kernels, and the environment variables that set them.

``FASTCNN_NUM_THREADS`` (a positive int, at most ``MAX_THREADS``) sets the number of
threads at import, the CPUs this process may run on otherwise; ``FASTCNN_ISA``
(avx512, avx2 or generic) forces a SIMD path, the best this CPU supports otherwise.
Results never depend on either: sums run in a fixed order.

``FASTCNN_RETAIN_FREED_MEMORY`` (1, the default, or 0): with 1, importing fastcnn asks
glibc's allocator to keep freed arrays of up to 32 MiB for reuse instead of returning
them to the system (``mallopt`` M_MMAP_THRESHOLD 32 MiB, M_TRIM_THRESHOLD 256 MiB, see
mallopt(3)). A training step frees its activations and allocates the same sizes again;
returned memory comes back as fresh pages, one page fault each (a LeNet step at batch
64 spent 3 ms of 9 in 1,200 of them). The cost: up to 256 MiB of freed memory may stay
with the process. 0 leaves the allocator as it was; other C libraries are left alone.
"""

import os
import sys
from importlib import metadata

from . import _checks, _core
from ._checks import MAX_THREADS

__all__ = [
    "set_num_threads", "get_num_threads", "show_config", "version", "fma_peak", "MAX_THREADS",
]


def version():
    """fastcnn's version, from the installed package's metadata."""
    try:
        return metadata.version("fastcnn")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def set_num_threads(n):
    """Use ``n`` threads (1 to MAX_THREADS) in every kernel call; results do not depend
    on it. Raises ValueError for anything else (NumPy ints are accepted)."""
    _core.set_num_threads(_checks.positive_int("the number of threads", n, MAX_THREADS))


def get_num_threads():
    """The number of threads the kernels use."""
    return _core.get_num_threads()


def fma_peak(dtype="float32", threads=None, seconds=0.2):
    """This host's measured peak in GFLOP/s: ``threads`` threads (default: the kernels'
    count) each running independent fused multiply-adds on registers for about
    ``seconds`` on the active SIMD path, in ``dtype`` (float32 or float64). The figure
    every benchmark share is given against. Raises TypeError for another dtype,
    ValueError for a bad count or duration."""
    threads = get_num_threads() if threads is None else _checks.positive_int(
        "threads", threads, MAX_THREADS)
    seconds = _checks.number("seconds", seconds, minimum=0)
    return _core.fma_peak(dtype, threads, seconds)


def show_config():
    """Return (and print) which SIMD path and how many threads the kernels use.

    The SIMD path is the best this CPU supports unless the ``FASTCNN_ISA``
    environment variable (avx512, avx2 or generic) names another.
    """
    text = (
        f"fastcnn {version()}: SIMD path {_core.simd_path()} "
        f"(this CPU supports: {', '.join(_core.supported_simd_paths())}), "
        f"{get_num_threads()} threads"
    )
    print(text)
    return text


def simd_path_from_environment():
    """Apply ``FASTCNN_ISA`` if it is set; a ValueError naming it if it is not a path."""
    setting = os.environ.get("FASTCNN_ISA", "").strip()
    if setting:
        try:
            _core.set_simd_path(setting)
        except ValueError as error:
            raise ValueError(f"FASTCNN_ISA={setting!r}: {error}") from None


def num_threads_from_environment():
    """``FASTCNN_NUM_THREADS`` as an int, or the CPUs this process may use if unset;
    a ValueError naming the variable and the limit if it is not 1 to MAX_THREADS."""
    setting = os.environ.get("FASTCNN_NUM_THREADS", "").strip()
    if not setting:
        try:
            return min(len(os.sched_getaffinity(0)), MAX_THREADS)
        except AttributeError:  # not Linux
            return min(os.cpu_count() or 1, MAX_THREADS)
    if not setting.isdigit() or not 1 <= int(setting) <= MAX_THREADS:
        raise ValueError(
            f"FASTCNN_NUM_THREADS must be a positive integer no larger than {MAX_THREADS}, "
            f"got {setting!r}"
        )
    return int(setting)


def retain_freed_memory_from_environment():
    """Apply ``FASTCNN_RETAIN_FREED_MEMORY`` (default 1); a ValueError naming it if it
    is not 0 or 1. Returns whether the allocator now retains freed memory."""
    setting = os.environ.get("FASTCNN_RETAIN_FREED_MEMORY", "").strip() or "1"
    if setting not in ("0", "1"):
        raise ValueError(f"FASTCNN_RETAIN_FREED_MEMORY must be 0 or 1, got {setting!r}")
    return setting == "1" and _core.retain_freed_memory()


def apply_environment():
    """Set the threads, SIMD path and allocator from the environment; returns the
    ValueError of a bad setting (after applying the defaults) instead of raising it."""
    try:
        set_num_threads(num_threads_from_environment())
        simd_path_from_environment()
        retain_freed_memory_from_environment()
    except ValueError as error:
        _core.set_num_threads(1)
        return error
    return None


def launched_as_command():
    """Whether this process is the ``fastcnn`` command (or ``python -m fastcnn``)."""
    arguments = getattr(sys, "orig_argv", sys.argv)
    if "-m" in arguments[:-1]:
        return arguments[arguments.index("-m") + 1] in ("fastcnn", "fastcnn.cli")
    return bool(sys.argv) and os.path.basename(sys.argv[0]) == "fastcnn"
