"""The report picture: a valid PNG of a sensible size, for short and long runs."""

import struct
import sys

import numpy as np
import pytest

from fastcnn import datasets, report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    content = path.read_bytes()
    assert content[:8] == PNG_SIGNATURE
    assert content[12:16] == b"IHDR"
    assert content.endswith(b"IEND\xaeB`\x82")
    return struct.unpack(">II", content[16:24])


def run_inputs(rng, epochs, images=30):
    history = {
        "loss": list(np.linspace(1.0, 0.3, epochs)),
        "accuracy": list(np.linspace(0.6, 0.9, epochs)),
        "val_loss": list(np.linspace(0.9, 0.35, epochs)),
        "val_accuracy": list(np.linspace(0.65, 0.88, epochs)),
    }
    true = rng.integers(0, 10, images)
    predicted = np.where(rng.random(images) < 0.8, true, (true + 1) % 10)
    confusion = np.zeros((10, 10), np.int64)
    np.add.at(confusion, (true, predicted), 1)
    pictures = rng.integers(0, 256, (images, 28, 28), dtype=np.uint8)
    return history, confusion, pictures, true, predicted


@pytest.mark.parametrize("epochs, images", [(1, 30), (30, 5)], ids=str)
def test_the_report_is_a_png_of_sensible_size(tmp_path, rng, epochs, images):
    pytest.importorskip("matplotlib")
    path = tmp_path / "report.png"
    history, confusion, pictures, true, predicted = run_inputs(rng, epochs, images)
    report.write_report(path, history, confusion, pictures, true, predicted,
                        datasets.FASHION_MNIST_CLASSES, title="a title")
    width, height = png_size(path)
    assert (width, height) == (1600, 1000)
    assert 30_000 < path.stat().st_size < 2_000_000


def test_the_report_draws_without_validation_curves(tmp_path, rng):
    pytest.importorskip("matplotlib")
    history, confusion, pictures, true, predicted = run_inputs(rng, 2)
    history = {"loss": history["loss"], "accuracy": history["accuracy"]}
    path = tmp_path / "report.png"
    report.write_report(path, history, confusion, pictures, true, predicted,
                        datasets.FASHION_MNIST_CLASSES)
    assert png_size(path) == (1600, 1000)


def test_without_matplotlib_the_error_says_how_to_install_it(monkeypatch, tmp_path, rng):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'pip install "fastcnn\[plot\]"'):
        report.require_matplotlib()
    with pytest.raises(ImportError, match="the picture needs matplotlib"):
        report.write_report(tmp_path / "report.png", *run_inputs(rng, 1),
                            datasets.FASHION_MNIST_CLASSES)
    assert not (tmp_path / "report.png").exists()
