"""fastcnn: the from-scratch NumPy CNN interface, with its arithmetic in C++."""

try:
    from . import _core
except ImportError as error:  # pragma: no cover - only without a build
    raise ImportError(
        "fastcnn's compiled module fastcnn._core could not be imported "
        f"({error}). Build and install fastcnn from its source folder with "
        "`pip install .` (needs a C++17 compiler), and run Python from outside "
        "that folder so the installed package is the one imported."
    ) from error

from . import augmentation, datasets, kernels, reference, runtime
from . import activations, callbacks, compat, export, losses, metrics, models, optimizers
from . import schedules
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
from .runtime import get_num_threads, set_num_threads, show_config


# A bad FASTCNN_NUM_THREADS or FASTCNN_ISA is a ValueError at import; under the command
# line it waits for cli.main, which reports it in one line like every other failure.
environment_error = runtime.apply_environment()
if environment_error is not None and not runtime.launched_as_command():
    raise environment_error

__version__ = runtime.version()

__all__ = [
    "augmentation",
    "datasets",
    "kernels",
    "reference",
    "runtime",
    "set_num_threads",
    "get_num_threads",
    "show_config",
    "activations",
    "callbacks",
    "export",
    "models",
    "schedules",
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
