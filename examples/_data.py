"""Data for the examples: Fashion-MNIST from fastcnn.datasets, or, with --fast (or
FASTCNN_EXAMPLES_FAST=1), small synthetic images whose class sets where a blob is."""

import argparse
import os

import numpy as np

from fastcnn import datasets


def parse_args(description):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--fast",
        action="store_true",
        default=os.environ.get("FASTCNN_EXAMPLES_FAST", "") not in ("", "0"),
        help="a few seconds on small synthetic data (also FASTCNN_EXAMPLES_FAST=1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the whole run")
    return parser.parse_args()


def synthetic_images(count, seed, classes=10, size=28):
    """uint8 (count, size, size) images and int64 labels: each class is a blurred blob
    at its own place and of its own width, under noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, count)
    rows, cols = np.mgrid[0:size, 0:size] / (size - 1)
    angles = 2 * np.pi * labels / classes
    centre_rows = 0.5 + 0.3 * np.sin(angles)[:, None, None]
    centre_cols = 0.5 + 0.3 * np.cos(angles)[:, None, None]
    widths = (0.08 + 0.04 * (labels % 3))[:, None, None]
    images = np.exp(-((rows - centre_rows) ** 2 + (cols - centre_cols) ** 2) / (2 * widths**2))
    images += 0.3 * rng.standard_normal(images.shape)
    return (np.clip(images, 0, 1) * 255).astype(np.uint8), labels


def load_images(fast, train_count, test_count, seed=0):
    """((x_train, y_train), (x_test, y_test)): uint8 (N, 28, 28) images, int labels."""
    if fast:
        x, y = synthetic_images(train_count + test_count, seed)
        print(f"synthetic images ({train_count} train / {test_count} test)")
        return (x[:train_count], y[:train_count]), (x[train_count:], y[train_count:])
    data = datasets.fashion_mnist()
    print(data.source)
    (x_train, y_train), (x_test, y_test) = data
    train = x_train[:train_count], y_train[:train_count]
    return train, (x_test[:test_count], y_test[:test_count])
