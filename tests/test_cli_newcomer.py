"""The command line as a newcomer meets it: wrong inputs refused in one line before
any work, pictures read, model files of fastcnn 0.1 still understood."""

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastcnn import Network, cli, datasets
from test_cli import SAMPLE, assert_failed_in_one_line, run

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A model saved by fastcnn 0.1 (pixels recorded as text), copied to a folder."""
    folder = tmp_path_factory.mktemp("model")
    shutil.copy(DATA / "simplecnn-0.1.0.npz", folder / "model.npz")
    return folder


def test_a_model_saved_by_fastcnn_0_1_loads_and_predicts_as_it_did():
    network = Network.load(DATA / "simplecnn-0.1.0.npz")
    _, (images, _) = datasets.fashion_mnist(path=SAMPLE)
    expected = np.load(DATA / "simplecnn-0.1.0-logits.npy")
    # The parameters come back bit for bit; the kernels' summation order has changed
    # since 0.1, so the outputs agree to float32 rounding.
    with np.load(DATA / "simplecnn-0.1.0.npz") as archive:
        for index, layer in enumerate(network.layers):
            for name, parameter in layer.parameters.items():
                np.testing.assert_array_equal(parameter, archive[f"layers.{index}.{name}"])
    np.testing.assert_allclose(network.predict(cli._network_input(images[:20])), expected,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scale, match", [
    (1 / 255, "already scaled to [0, 1]"),
    (-1 / 255, "from -1 to 0"),
    (4.0, "0-255"),
])
def test_predict_refuses_images_outside_the_pixel_range(model, scale, match):
    _, (images, _) = datasets.fashion_mnist(path=SAMPLE)
    np.save(model / "scaled.npy", images[:5].astype(np.float32) * scale)
    assert_failed_in_one_line(run("predict", "model.npz", "scaled.npy", cwd=model), match)


def test_predict_reads_a_png_as_the_model_sees_it(model):
    pil = pytest.importorskip("PIL.Image")
    _, (images, _) = datasets.fashion_mnist(path=SAMPLE)
    pil.fromarray(images[3]).resize((56, 56)).save(model / "shirt.png")
    from_png = run("predict", "model.npz", "shirt.png", cwd=model)
    assert from_png.returncode == 0, from_png.stderr
    resized = np.asarray(pil.open(model / "shirt.png").convert("L").resize(
        (28, 28), pil.Resampling.LANCZOS))
    np.save(model / "same.npy", resized[None])
    from_npy = run("predict", "model.npz", "same.npy", cwd=model)
    assert from_png.stdout == from_npy.stdout


def test_predict_without_pillow_says_how_in_one_line(model):
    (model / "x.png").write_bytes(b"\x89PNG not really")
    code = ("import sys; sys.modules['PIL'] = None; from fastcnn.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    result = run("predict", "model.npz", "x.png", cwd=model, code=code)
    assert_failed_in_one_line(result, "needs Pillow")


@pytest.mark.parametrize("variable, value", [
    ("FASTCNN_NUM_THREADS", "99999999999"), ("FASTCNN_NUM_THREADS", "two"),
    ("FASTCNN_ISA", "sse9"), ("FASTCNN_RETAIN_FREED_MEMORY", "on"),
])
def test_a_bad_environment_variable_is_one_line_from_the_command(tmp_path, variable, value):
    for command in ([sys.executable, "-m", "fastcnn", "train"], [shutil.which("fastcnn")]):
        if command[0] is None:
            continue
        result = subprocess.run(command + ["--epochs", "1"], cwd=tmp_path, capture_output=True,
                                text=True, env={**os.environ, variable: value}, timeout=120)
        assert_failed_in_one_line(result, variable)


def test_a_picture_format_matplotlib_cannot_write_is_refused_before_training(tmp_path):
    result = run("train", "--data", SAMPLE, "--plot", "r.txt", cwd=tmp_path, timeout=60)
    assert_failed_in_one_line(result, "r.txt")
    assert "Training on" not in result.stdout and not (tmp_path / "model.npz").exists()


def test_data_naming_a_file_says_it_is_not_a_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    result = run("train", "--data", "notes.txt", cwd=tmp_path)
    assert_failed_in_one_line(result, "notes.txt is a file, not a folder")


def test_evaluate_needs_only_the_test_files(model, tmp_path):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(Path(SAMPLE) / name, tmp_path / name)
    result = run("evaluate", model / "model.npz", "--data", tmp_path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Accuracy" in result.stdout


def test_fastcnn_data_may_hold_the_files_themselves(tmp_path):
    for name in datasets.FILE_NAMES.values():
        shutil.copy(Path(SAMPLE) / name, tmp_path / name)
    code = ("import sys; from pathlib import Path; from fastcnn import datasets; "
            "datasets.DEBIAN_DIR = Path('/nonexistent'); "
            "print(datasets.fashion_mnist().source.kind)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "FASTCNN_DATA": str(tmp_path),
                                 "XDG_CACHE_HOME": str(tmp_path / "cache")}, timeout=60)
    assert result.stdout.strip() == "FASTCNN_DATA", result.stderr


def test_predict_into_a_pipe_closed_early_ends_quietly_and_successfully(model):
    _, (images, _) = datasets.fashion_mnist(path=SAMPLE)
    np.save(model / "many.npy", np.concatenate([images] * 2))  # 1,000 lines of output
    process = subprocess.Popen([sys.executable, "-m", "fastcnn", "predict", "model.npz",
                                "many.npy"], cwd=model, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.readline()
    process.stdout.close()
    _, error = process.communicate(timeout=120)
    assert process.returncode == 0 and b"Traceback" not in error


def test_train_and_evaluate_on_cifar10_files(tmp_path):
    from test_cifar10 import write_cifar

    data = tmp_path / "cifar"
    data.mkdir()
    write_cifar(data, counts=(8, 8, 8, 8, 8, 10))
    result = run("train", "--dataset", "cifar10", "--data", data, "--epochs", 1, "--quiet",
                 "--plot", "r.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "CIFAR-10" in result.stdout and "Test accuracy" in result.stdout
    network = Network.load(tmp_path / "model.npz")
    assert network.input_shape == (3, 32, 32) and network.metadata["dataset"] == "cifar10"
    evaluated = run("evaluate", "model.npz", "--data", data, cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "on 10 test images" in evaluated.stdout
