"""fastcnn: the from-scratch NumPy CNN interface, with its arithmetic in C++."""

import os as _os

try:
    from . import _core
except ImportError as error:  # pragma: no cover - only without a build
    raise ImportError(
        "fastcnn's compiled module fastcnn._core could not be imported "
        f"({error}). Build and install fastcnn from its source folder with "
        "`pip install .` (needs a C++17 compiler), and run Python from outside "
        "that folder so the installed package is the one imported."
    ) from error

from . import augmentation, datasets, kernels, reference
from . import activations, compat, losses, metrics, optimizers
from .layers import (
    Activation,
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Convolutional,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    MaxPool2D,
    Reshape,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from .gradcheck import gradient_check
from .network import History, Network
from .optimizers import SGD, Adam, GradientDescent


def set_num_threads(n):
    """Use ``n`` threads in every kernel call (results do not depend on it)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of threads must be a positive int, got {n!r}")
    _core.set_num_threads(n)


def get_num_threads():
    """The number of threads the kernels use."""
    return _core.get_num_threads()


def show_config():
    """Return (and print) which SIMD path and how many threads the kernels use.

    The SIMD path is the best this CPU supports unless the ``FASTCNN_ISA``
    environment variable (avx512, avx2 or generic) names another.
    """
    text = (
        f"fastcnn {__version__}: SIMD path {_core.simd_path()} "
        f"(this CPU supports: {', '.join(_core.supported_simd_paths())}), "
        f"{get_num_threads()} threads"
    )
    print(text)
    return text


def _simd_path_from_environment():
    setting = _os.environ.get("FASTCNN_ISA", "").strip()
    if setting:
        try:
            _core.set_simd_path(setting)
        except ValueError as error:
            raise ValueError(f"FASTCNN_ISA={setting!r}: {error}") from None


def _default_num_threads():
    setting = _os.environ.get("FASTCNN_NUM_THREADS", "").strip()
    if not setting:
        try:
            return len(_os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            return _os.cpu_count() or 1
    if not setting.isdigit() or int(setting) < 1:
        raise ValueError(
            f"FASTCNN_NUM_THREADS must be a positive integer, got {setting!r}"
        )
    return int(setting)


__version__ = "0.1.0"
set_num_threads(_default_num_threads())
_simd_path_from_environment()

__all__ = [
    "augmentation",
    "datasets",
    "kernels",
    "reference",
    "set_num_threads",
    "get_num_threads",
    "show_config",
    "activations",
    "compat",
    "losses",
    "metrics",
    "optimizers",
    "Layer",
    "Dense",
    "Convolutional",
    "MaxPool2D",
    "AvgPool2D",
    "Flatten",
    "Reshape",
    "Activation",
    "ReLU",
    "Tanh",
    "Sigmoid",
    "Softmax",
    "Dropout",
    "BatchNorm1D",
    "BatchNorm2D",
    "GlobalAvgPool2D",
    "Network",
    "History",
    "gradient_check",
    "GradientDescent",
    "SGD",
    "Adam",
]
