"""Shared test helpers: central finite differences and synthetic image data."""

import numpy as np

FD_STEP = 1e-6


def numerical_gradient(function, array, step=FD_STEP):
    """d function() / d array by central differences, perturbing ``array`` in place."""
    gradient = np.zeros(array.shape, dtype=np.float64)
    for index in np.ndindex(array.shape):
        original = array[index]
        array[index] = original + step
        plus = function()
        array[index] = original - step
        minus = function()
        array[index] = original
        gradient[index] = (plus - minus) / (2 * step)
    return gradient


def class_images(count, classes=10, size=28, channels=None, seed=0, noise=0.15):
    """uint8 images whose class sets the position and shape of a bright blob.

    Shaped (count, size, size), or (count, channels, size, size) when ``channels`` is
    given; labels are int64 in [0, classes), every class equally often.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % classes
    rng.shuffle(labels)
    rows, cols = np.mgrid[0:size, 0:size] / (size - 1)
    images = np.empty((count, size, size))
    for label in range(classes):
        angle = 2 * np.pi * label / classes
        centre_row = 0.5 + 0.3 * np.sin(angle)
        centre_col = 0.5 + 0.3 * np.cos(angle)
        width = 0.08 + 0.04 * (label % 3)
        template = np.exp(-((rows - centre_row) ** 2 + (cols - centre_col) ** 2) / (2 * width**2))
        chosen = labels == label
        images[chosen] = template
    images += noise * rng.standard_normal(images.shape)
    images = (np.clip(images, 0, 1) * 255).astype(np.uint8)
    if channels is not None:
        images = np.repeat(images[:, None], channels, axis=1)
    return images, labels.astype(np.int64)
