"""The command line, run as a user runs it (``python -m fastcnn`` in a subprocess), on
the Fashion-MNIST sample shipped with fastcnn: each command works, and each failure
ends with one line on stderr, a non-zero status and no traceback."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fastcnn import Network, cli, datasets, schedules

SAMPLE = str(datasets.SAMPLE_DIR)
# Runs the command line with Debian's folder moved away (the first argument), as on a
# machine without the dataset-fashion-mnist package; datasets.DEBIAN_DIR is the only
# way to move it.
WITHOUT_DEBIAN = (
    "import sys; from pathlib import Path; from fastcnn import datasets; "
    "datasets.DEBIAN_DIR = Path(sys.argv.pop(1)); from fastcnn.cli import main; "
    "sys.exit(main(sys.argv[1:]))"
)
# "index  class  probability  next class  probability"
PREDICTION = re.compile(r"\s*(\d+)  (.+?)\s+([01]\.\d{4})  (.+?)\s+([01]\.\d{4})")
WITHOUT_MATPLOTLIB = (
    "import sys; sys.modules['matplotlib'] = None; from fastcnn.cli import main; "
    "sys.exit(main(sys.argv[1:]))"
)


def run(*args, cwd, code=None, env=None, timeout=300):
    """Run the command line in a subprocess; returns the CompletedProcess."""
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "fastcnn"]
    return subprocess.run(
        [*command, *map(str, args)],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_failed_in_one_line(result, match):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert match in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short training run on the sample: (its folder, its result)."""
    folder = tmp_path_factory.mktemp("train")
    result = run("train", "--data", SAMPLE, "--limit", 600, "--epochs", 2, "--seed", 1,
                 "--quiet", cwd=folder)
    return folder, result


def test_train_reports_each_epoch_the_test_set_and_where_it_saved(trained):
    folder, result = trained
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"Data: Fashion-MNIST from {SAMPLE} (2,000 train / 500 test)" in out
    assert "Model: simplecnn, write-up 004's SimpleCNN" in out
    assert "Training on 550 images, validating on 50 held-out training images" in out
    epochs = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 2
    for line, rate in zip(epochs, ("0.002", "0.001")):
        assert "loss" in line and "val_accuracy" in line and "images/s" in line
        assert f"(learning rate {rate}, " in line
    assert "Test accuracy" in out and "macro-F1" in out and "on 500 test images" in out
    assert "Time per epoch:" in out
    assert "Model saved to model.npz" in out
    assert "\r" not in out  # no progress bar when stdout is not a terminal
    network = Network.load(folder / "model.npz")
    assert network.metadata["preprocessing"] == {"scale": 1 / 255, "offset": -0.5,
                                                 "input_range": [0, 255]}
    assert network.metadata["classes"] == list(datasets.FASHION_MNIST_CLASSES)
    if "Picture saved to report.png" in out:
        assert (folder / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "needs matplotlib" in result.stderr


def test_training_learns_something(trained):
    folder, result = trained
    accuracy = float(result.stdout.split("Test accuracy ")[1].split(",")[0])
    assert accuracy > 0.5  # ten classes: chance is 0.1


def test_without_any_data_set_it_trains_on_the_shipped_sample_and_says_so(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {"FASTCNN_DATA": str(empty), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "FASTCNN_DATA_URL": "http://127.0.0.1:9/"}
    result = run(tmp_path / "no-debian", "train", "--limit", 100, "--epochs", 1,
                 "--out", "sample.npz", "--plot", "sample.png",
                 code=WITHOUT_DEBIAN, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "the 2,000-image Fashion-MNIST sample shipped with fastcnn" in result.stdout
    assert "not the full Fashion-MNIST" in result.stdout
    assert (tmp_path / "sample.npz").exists()


@pytest.mark.parametrize(
    "model, optimizer", [("lenet", "sgd"), ("mlp", "momentum"), ("simplecnn", "adam")]
)
def test_each_model_and_optimizer_trains(tmp_path, model, optimizer):
    result = run("train", "--data", SAMPLE, "--model", model, "--optimizer", optimizer,
                 "--limit", 60, "--epochs", 1, "--batch-size", 16, "--learning-rate", 0.01,
                 "--threads", 1, "--out", "m.npz", cwd=tmp_path, code=WITHOUT_MATPLOTLIB)
    assert result.returncode == 0, result.stderr
    assert f"Model: {model}, " in result.stdout
    assert (f"batch 16, {optimizer}, learning rate 0.01 with cosine decay, seed 0, 1 thread(s)"
            in result.stdout)
    assert "fastcnn train: no picture: the picture needs matplotlib" in result.stderr
    assert Network.load(tmp_path / "m.npz").metadata["model"] == model


@pytest.mark.parametrize(
    "args, expected",
    [([], "adam, learning rate 0.002 "), (["--optimizer", "sgd"], "sgd, learning rate 0.05 "),
     (["--optimizer", "momentum", "--learning-rate", "0.003"], "momentum, learning rate 0.003 ")],
    ids=["preset", "another optimizer", "given"],
)
def test_the_learning_rate_fits_the_optimizer(tmp_path, args, expected):
    result = run("train", "--data", SAMPLE, "--limit", 20, "--epochs", 1, "--out", "m.npz",
                 *args, cwd=tmp_path, code=WITHOUT_MATPLOTLIB)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout


def test_the_learning_rate_decays_along_a_half_cosine():
    def learning_rates(initial, epochs):
        return [schedules.cosine(initial, epochs)(epoch) for epoch in range(epochs)]

    assert learning_rates(0.002, 3) == pytest.approx([0.002, 0.0015, 0.0005])
    assert learning_rates(0.1, 1) == [0.1]
    rates = learning_rates(1.0, 10)
    assert rates[0] == 1.0 and all(a > b > 0 for a, b in zip(rates, rates[1:]))


def test_an_explicit_plot_without_matplotlib_still_saves_the_model_but_fails(tmp_path):
    result = run("train", "--data", SAMPLE, "--limit", 30, "--epochs", 1, "--plot", "r.png",
                 cwd=tmp_path, code=WITHOUT_MATPLOTLIB)
    assert result.returncode == 1
    assert "Model saved to model.npz" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == (
        'fastcnn train: error: no picture drawn: the picture needs matplotlib: pip install '
        '"fastcnn[plot]" (or pip install matplotlib)'
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r.png").exists()


def test_the_progress_bar_shows_on_a_terminal(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cli.main(["train", "--data", SAMPLE, "--limit", "100", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "\r" in out and "img/s" in out and "epoch 1/1" in out and "accuracy" in out


def test_quiet_turns_the_bar_off(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cli.main(["train", "--data", SAMPLE, "--limit", "100", "--epochs", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "\r" not in out and "img/s" not in out and "epoch 1/1" in out


def test_evaluate_prints_accuracy_per_class_table_and_confusion_matrix(trained):
    folder, _ = trained
    result = run("evaluate", "model.npz", "--data", SAMPLE, cwd=folder)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Accuracy " in out and "macro-F1" in out and "on 500 test images" in out
    for index, name in enumerate(datasets.FASHION_MNIST_CLASSES):
        assert f"{index} {name}" in out
    assert "Confusion matrix (rows: true class, columns: predicted class)" in out
    matrix = out.split("columns: predicted class)\n")[1].splitlines()[1:]
    assert sum(int(count) for row in matrix for count in row.split()[1:]) == 500


@pytest.fixture(scope="module")
def test_images():
    _, (images, labels) = datasets.fashion_mnist(path=SAMPLE)
    return images[:5], labels[:5]


@pytest.mark.parametrize("kind", ["npy", "idx", "idx.gz", "one image", "channel axis"])
def test_predict_prints_classes_and_probabilities(trained, test_images, tmp_path, kind):
    folder, _ = trained
    images, _ = test_images
    if kind == "npy":
        path, count = tmp_path / "images.npy", 5
        np.save(path, images)
    elif kind.startswith("idx"):
        path, count = tmp_path / f"images.{kind}", 5
        datasets.write_idx(path, images)
    elif kind == "one image":
        path, count = tmp_path / "one.npy", 1
        np.save(path, images[0])
    else:
        path, count = tmp_path / "channels.npy", 5
        np.save(path, images[:, None])
    result = run("predict", folder / "model.npz", path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == count + 1
    assert lines[0].split()[:3] == ["image", "class", "probability"]
    for index, line in enumerate(lines[1:]):
        image, first, probability, second, next_probability = PREDICTION.fullmatch(line).groups()
        assert int(image) == index
        assert {first, second} <= set(datasets.FASHION_MNIST_CLASSES)
        assert 1 >= float(probability) >= float(next_probability) >= 0


def test_predict_gives_the_networks_classes(trained, test_images, tmp_path):
    folder, _ = trained
    images, _ = test_images
    np.save(tmp_path / "images.npy", images)
    result = run("predict", folder / "model.npz", tmp_path / "images.npy", cwd=tmp_path)
    network = Network.load(folder / "model.npz")
    expected = network.predict(images[:, None] / np.float32(255) - np.float32(0.5)).argmax(1)
    names = datasets.FASHION_MNIST_CLASSES
    lines = result.stdout.splitlines()[1:]
    assert [PREDICTION.fullmatch(line).group(2) for line in lines] == [names[i] for i in expected]


def test_bench_forwards_to_the_benchmark():
    # In the checkout, where `fastcnn bench` finds bench/run.py whatever the install.
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = run("bench", "--help", cwd=checkout)
    assert result.returncode == 0, result.stderr
    assert "usage: fastcnn bench" in result.stdout and "--quick" in result.stdout


def test_help_and_version(tmp_path):
    result = run("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("train", "evaluate", "predict", "bench"):
        assert command in result.stdout
    result = run("train", "--help", cwd=tmp_path)
    assert "--learning-rate" in result.stdout and "5,000 of 60,000" in result.stdout
    assert run("--version", cwd=tmp_path).stdout.startswith("fastcnn ")


def test_the_console_script_is_installed(tmp_path):
    script = shutil.which("fastcnn")
    if script is None:
        pytest.skip("the fastcnn console script is not on PATH (install with pip install .)")
    result = subprocess.run([script, "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("fastcnn ")


# --------------------------------------------------------------------------- failures


@pytest.fixture
def files(tmp_path, trained):
    """Bad inputs beside a good model."""
    folder, _ = trained
    shutil.copy(folder / "model.npz", tmp_path / "model.npz")
    (tmp_path / "garbage.npz").write_bytes(b"not a model at all")
    content = (tmp_path / "model.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(content[: len(content) // 2])
    np.save(tmp_path / "wrong-shape.npy", np.zeros((3, 32, 32), np.uint8))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    np.save(tmp_path / "text.npy", np.array(["a", "b"]))
    (tmp_path / "not-idx.gz").write_bytes(b"\x00\x00\x08\x03 too short")
    return tmp_path


FAILURES = {
    "missing data folder": (["train", "--data", "no-such-folder"], "no-such-folder"),
    "data folder without the files": (["train", "--data", "."], "lacks Fashion-MNIST file(s)"),
    "evaluate a missing model": (["evaluate", "missing.npz", "--data", SAMPLE], "no model file"),
    "evaluate garbage": (["evaluate", "garbage.npz", "--data", SAMPLE], "cannot load the model"),
    "evaluate a truncated model": (["evaluate", "truncated.npz"], "damaged or truncated"),
    "evaluate on a missing folder": (["evaluate", "model.npz", "--data", "nowhere"], "nowhere"),
    "predict garbage": (["predict", "garbage.npz", "wrong-shape.npy"], "cannot load the model"),
    "predict a missing file": (["predict", "model.npz", "missing.npy"], "no file missing.npy"),
    "predict a wrong shape": (
        ["predict", "model.npz", "wrong-shape.npy"],
        "wrong-shape.npy holds an array of shape (3, 32, 32), but the model takes images of "
        "shape (1, 28, 28)",
    ),
    "predict pickled objects": (["predict", "model.npz", "objects.npy"], "cannot be read"),
    "predict text": (["predict", "model.npz", "text.npy"], "not images"),
    "predict a bad IDX file": (["predict", "model.npz", "not-idx.gz"], "not-idx.gz"),
    "save into a missing folder": (
        ["train", "--data", SAMPLE, "--out", "nowhere/model.npz"], "cannot save the model"
    ),
    "save over a folder": (["train", "--out", "."], "cannot save the model to .: it is a folder"),
    "draw into a missing folder": (
        ["train", "--plot", "nowhere/r.png"], "cannot save the picture to nowhere/r.png"
    ),
    "limit below 2": (["train", "--data", SAMPLE, "--limit", "1"], "--limit must be at least 2"),
    "no command": ([], "required: COMMAND"),
    "unknown command": (["fly"], "invalid choice: 'fly'"),
    "unknown model": (["train", "--model", "resnet"], "invalid choice: 'resnet'"),
    "zero epochs": (["train", "--epochs", "0"], "0 is not a positive whole number"),
    "epochs not a number": (["train", "--epochs", "many"], "'many' is not a whole number"),
    "negative learning rate": (["train", "--learning-rate", "-1"], "-1 is not a positive number"),
    "unknown option": (["train", "--colour"], "unrecognized arguments: --colour"),
    "predict without a file": (["predict", "model.npz"], "required: FILE"),
}


@pytest.mark.parametrize("case", FAILURES)
def test_failures_end_in_one_line_and_a_non_zero_status(files, case):
    args, match = FAILURES[case]
    line = assert_failed_in_one_line(run(*args, cwd=files), match)
    assert line.startswith("fastcnn")


def test_the_failing_commands_leave_no_files(files):
    before = sorted(os.listdir(files))
    run("train", "--data", "no-such-folder", cwd=files)
    assert sorted(os.listdir(files)) == before


def test_ctrl_c_ends_cleanly(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "fastcnn", "train", "--data", SAMPLE, "--epochs", "100",
         "--model", "lenet"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in process.stdout:
            if line.startswith("Training "):
                break
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    assert err.strip() == "fastcnn train: interrupted"
    assert not (tmp_path / "model.npz").exists()
