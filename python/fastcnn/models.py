"""The model presets, written once for the command line, the benchmark and the examples.

Each preset's ``layers()`` returns a fresh list of unbuilt layers (input shapes are
inferred on the first forward), so every call gives a new, independently initialised
network: ``Network(PRESETS["simplecnn"].layers())``.
"""

from dataclasses import dataclass
from typing import Callable, Optional

from .augmentation import RandomCrop, RandomHorizontalFlip
from .datasets import WRITE_UPS_SCALING
from .layers import (
    BatchNorm1D,
    BatchNorm2D,
    Convolutional,
    Dense,
    Dropout,
    Flatten,
    MaxPool2D,
    ReLU,
    Tanh,
)

__all__ = ["Preset", "PRESETS", "vgg_cifar"]


@dataclass(frozen=True)
class Preset:
    """A model of ``fastcnn train --model``, with the settings it trains well with.

    ``layers``: a function of no arguments returning a new list of layers for
    Fashion-MNIST's (1, 28, 28) images and 10 classes (logits; train with
    ``softmax_cross_entropy``). ``optimizer`` is the name of the ``fastcnn train
    --optimizer`` it trains with; ``learning_rate`` is the first epoch's.
    """

    description: str
    layers: Callable[[], list]
    epochs: int
    optimizer: str
    learning_rate: float
    batch_size: int = 32
    # () -> the training-batch augmentation for fit(augment=...), or None for none
    augment: Optional[Callable[[], object]] = None


def _simplecnn():
    return [
        Convolutional(6, 5, padding=2),
        ReLU(),
        Convolutional(6, 5, padding=2),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(10),
    ]


def _lenet():
    return [
        Convolutional(16, 5, padding=2),
        ReLU(),
        MaxPool2D(2),
        Convolutional(32, 5),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(120),
        ReLU(),
        Dense(84),
        ReLU(),
        Dense(10),
    ]


def _vgg():
    return [
        Convolutional(32, 3, padding=1),
        BatchNorm2D(),
        ReLU(),
        Convolutional(32, 3, padding=1),
        BatchNorm2D(),
        ReLU(),
        MaxPool2D(2),
        Convolutional(64, 3, padding=1),
        BatchNorm2D(),
        ReLU(),
        Convolutional(64, 3, padding=1),
        BatchNorm2D(),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(128),
        BatchNorm1D(),
        ReLU(),
        Dropout(0.3),
        Dense(10),
    ]


def _mlp():
    return [Flatten(), Dense(100), Tanh(), Dense(50), Tanh(), Dense(10)]


PRESETS = {
    "simplecnn": Preset(
        "write-up 004's SimpleCNN: conv 5x5x6 same -> ReLU -> conv 5x5x6 same -> ReLU "
        "-> max-pool 2 -> dense 10, softmax cross-entropy",
        _simplecnn,
        epochs=3,
        optimizer="adam",
        learning_rate=0.002,
    ),
    "lenet": Preset(
        "LeNet-5's layout, widened to 16 and 32 filters: conv 5x5x16 same -> ReLU -> "
        "max-pool 2 -> conv 5x5x32 -> ReLU -> max-pool 2 -> dense 120 -> ReLU -> dense 84 "
        "-> ReLU -> dense 10; random crops of the images padded by 2 pixels",
        _lenet,
        epochs=20,
        optimizer="adam",
        learning_rate=0.002,
        # black (pixel 0, scaled) around the shifted images, as in the data
        augment=lambda: RandomCrop(padding=2, fill=float(WRITE_UPS_SCALING(0))),
    ),
    "vgg": Preset(
        "a small VGG-style network with BatchNorm: (conv 3x3 same -> BatchNorm -> ReLU) x2 "
        "with 32 filters -> max-pool 2 -> the same with 64 -> max-pool 2 -> dense 128 -> "
        "BatchNorm -> ReLU -> dropout 0.3 -> dense 10; random horizontal flips",
        _vgg,
        epochs=7,
        optimizer="adam",
        learning_rate=0.003,
        batch_size=128,
        augment=lambda: RandomHorizontalFlip(),
    ),
    "mlp": Preset(
        "write-up 001's MLP: dense 100 -> tanh -> dense 50 -> tanh -> dense 10",
        _mlp,
        epochs=5,
        optimizer="adam",
        learning_rate=0.001,
    ),
}


def vgg_cifar():
    """A small VGG-style network for CIFAR-10's (3, 32, 32) images: a new list of layers.

    conv 3x3x32 pad 1 -> ReLU -> conv 3x3x32 pad 1 -> ReLU -> max-pool 2 -> conv 3x3x64
    pad 1 -> ReLU -> conv 3x3x64 pad 1 -> ReLU -> max-pool 2 -> flatten -> dense 10
    (logits), after Simonyan and Zisserman's VGG (ICLR 2015): stacked 3x3 convolutions,
    channels doubling after each pooling. Not a ``fastcnn train`` preset (that command
    trains on Fashion-MNIST); the benchmark times it.
    """
    return [
        Convolutional(32, 3, padding=1),
        ReLU(),
        Convolutional(32, 3, padding=1),
        ReLU(),
        MaxPool2D(2),
        Convolutional(64, 3, padding=1),
        ReLU(),
        Convolutional(64, 3, padding=1),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(10),
    ]
