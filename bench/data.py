"""Fashion-MNIST for the training sections, scaled the write-ups' way."""

import numpy as np

from fastcnn import datasets


def load_images(image_count, test_count):
    """uint8 (n, 28, 28) images and int64 labels, train and test, and where they came from.

    ``fastcnn.datasets.fashion_mnist()``: the full set when it is installed, else the
    sample shipped with fastcnn. ``image_count`` None means the whole training set.
    """
    data = datasets.fashion_mnist()
    (train_images, train_labels), (test_images, test_labels) = data
    return (
        train_images[:image_count],
        train_labels[:image_count].astype(np.int64),
        test_images[:test_count],
        test_labels[:test_count].astype(np.int64),
        str(data.source),
    )


def normalise(images):
    """uint8 (n, 28, 28) -> float32 (n, 1, 28, 28) in [-0.5, 0.5], without a float64 copy."""
    x = images[:, np.newaxis].astype(np.float32)
    x /= 255
    x -= 0.5
    return x
