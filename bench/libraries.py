"""The optional libraries the benchmark compares with or reports through."""

import importlib
from typing import NamedTuple


def optional(module_name):
    """The module, or None when it is not installed."""
    try:
        return importlib.import_module(module_name)
    except ImportError:
        return None


class Libraries(NamedTuple):
    signal: object  # scipy.signal (write-up 002's code) or None
    torch: object  # or None
    matplotlib: object  # the chart, or None
    threadpoolctl: object  # which BLAS NumPy uses and its kernel, or None


def find_libraries():
    return Libraries(
        signal=optional("scipy.signal"),
        torch=optional("torch"),
        matplotlib=optional("matplotlib"),
        threadpoolctl=optional("threadpoolctl"),
    )


def version(module_name):
    module = optional(module_name)
    return "not installed" if module is None else getattr(module, "__version__", "unknown")
