"""The benchmark (bench/, beside the package, not in it): quick mode passes every answer
check and writes the whole report; `fastcnn bench` finds it or says where it is.

Timings are never asserted: they depend on the machine and on what else runs on it.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastcnn
from fastcnn import cli
from fastcnn.models import PRESETS

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))  # bench/ is a folder of the checkout, not installed
from bench import conv, end_to_end, goals, networks, profile, report, run, writeups  # noqa: E402

HEADINGS = (
    "# fastcnn benchmark",
    "## Answer checks",
    "## Convolution layers (float32)",
    "### Forward\n",
    "### Forward + backward\n",
    "## Max-pool 2×2 with argmax, forward + backward (float32)",
    "## Matmul",
    "## Networks: one training step, and a SimpleCNN epoch (float32)",
    "### SimpleCNN epoch: 60,000 images",
    "## Profile: where a training step's time goes (float32)",
    "## Goals",
    "## End to end: one epoch of write-up 004's SimpleCNN",
    "## Thread scaling: convolution forward + backward, batch cases",
)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """(exit status, report text, report path) of one quick run with what is installed."""
    out = tmp_path_factory.mktemp("bench") / "results.md"
    status = run.main(["--quick", "--out", str(out)])
    return status, out.read_text(encoding="utf-8"), out


def test_quick_run_passes_every_answer_check(quick_run):
    status, text, _ = quick_run
    assert status == 0
    assert "answer checks passed" in text
    assert "MISMATCH" not in text
    assert "FAILED" not in text


def test_report_has_every_section_the_machine_and_the_peak(quick_run):
    _, text, _ = quick_run
    for heading in HEADINGS:
        assert heading in text
    for line in ("- Machine: ", "- fastcnn: fastcnn ", "- Versions: Python ", "- Run: quick, ",
                 "- Peak: "):
        assert line in text
    assert "(% of peak)" in text


def test_chart_is_drawn_when_matplotlib_is_installed(quick_run):
    pytest.importorskip("matplotlib")
    _, text, out = quick_run
    assert "![ratios](results.png)" in text
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")


def test_pytorch_is_compared_when_installed(quick_run):
    pytest.importorskip("torch")
    _, text, _ = quick_run
    for check in (
        "conv (64, 1, 28, 28, 5, 3, 2, 1): fastcnn vs PyTorch",
        "max-pool (64, 6, 28, 28): fastcnn vs PyTorch",
        "matmul (256×256)·(256×256) float32: fastcnn vs PyTorch",
        "VGG-style training step, batch 64: fastcnn vs PyTorch channels_last, float64 logits",
        "LeNet training step, batch 1: fastcnn vs PyTorch NCHW, float32 logits",
        "SimpleCNN epoch, batch 64: fastcnn vs PyTorch channels_last, float64 parameters",
    ):
        assert f"passed: {check}" in text
    assert "PyTorch not installed" not in text


def test_numpy_blas_is_named_when_threadpoolctl_is_installed(quick_run):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    _, text, _ = quick_run
    for pool in threadpoolctl.threadpool_info():
        if pool["user_api"] == "blas":
            assert f"{pool['internal_api']} {pool['version']}, kernel" in text


def test_runs_without_scipy_pytorch_matplotlib_and_threadpoolctl(tmp_path, monkeypatch):
    for name in ("scipy", "scipy.signal", "torch", "matplotlib", "threadpoolctl"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` fail
    out = tmp_path / "results.md"
    assert run.main(["--quick", "--out", str(out), "--only", "conv", "pool", "matmul",
                     "networks"]) == 0
    text = out.read_text(encoding="utf-8")
    assert "scipy not installed" in text
    assert "PyTorch not installed" in text
    assert "not drawn: matplotlib is not installed" in text
    assert "unknown (threadpoolctl is not installed)" in text
    assert not out.with_suffix(".png").exists()


def test_a_wrong_answer_fails_the_run_loudly(tmp_path, monkeypatch, capsys):
    correct_maxpool2d = fastcnn.kernels.maxpool2d

    def off_by_one(x, size=2, stride=None):
        y, argmax = correct_maxpool2d(x, size, stride)
        return y + 1, argmax

    monkeypatch.setattr(fastcnn.kernels, "maxpool2d", off_by_one)
    out = tmp_path / "results.md"
    assert run.main(["--quick", "--out", str(out), "--only", "pool"]) == 1
    assert "ANSWER MISMATCH" in out.read_text(encoding="utf-8")
    assert "ANSWER MISMATCH" in capsys.readouterr().err


def test_a_wrong_network_gradient_fails_the_run(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    correct_backward = fastcnn.Dense.backward

    def doubled_gradients(self, output_gradient, learning_rate):
        return correct_backward(self, 2 * output_gradient, learning_rate)

    monkeypatch.setattr(fastcnn.Dense, "backward", doubled_gradients)
    out = tmp_path / "results.md"
    assert run.main(["--quick", "--out", str(out), "--only", "networks"]) == 1
    assert "FAILED: SimpleCNN training step, batch 64: fastcnn vs PyTorch NCHW" in (
        out.read_text(encoding="utf-8")
    )


def test_an_openblas_override_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    out = tmp_path / "results.md"
    assert run.main(["--quick", "--out", str(out), "--only", "matmul"]) == 0
    text = out.read_text(encoding="utf-8")
    assert "**OPENBLAS_CORETYPE=Haswell was set**" in text
    assert "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/run.py" in text


def test_the_thread_count_is_restored(tmp_path):
    before = fastcnn.get_num_threads()
    out = tmp_path / "results.md"
    assert run.main(["--quick", "--out", str(out), "--threads", "1", "--only", "matmul"]) == 0
    assert "- Threads: fastcnn 1, " in out.read_text(encoding="utf-8")
    assert fastcnn.get_num_threads() == before


def test_the_script_writes_where_it_is_told(tmp_path):
    out = tmp_path / "report.md"
    completed = subprocess.run(
        [sys.executable, str(REPOSITORY / "bench" / "run.py"), "--quick", "--out", str(out),
         "--only", "matmul"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert "## Matmul" in out.read_text(encoding="utf-8")
    assert "## Matmul" in completed.stdout


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--threads", "0"], "--threads: 0 is not a positive whole number"),
        (["--only", "gpu"], "--only: invalid choice: 'gpu'"),
        (["--out", "."], "--out . is a folder"),
        (["--fast"], "unrecognized arguments: --fast"),
    ],
    ids=["threads-zero", "unknown-section", "out-folder", "unknown-option"],
)
def test_fastcnn_bench_refuses_bad_arguments_in_one_line(arguments, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", *arguments])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("fastcnn bench: error: ")
    assert message in error


def test_fastcnn_bench_outside_a_checkout_says_how_to_run_it(monkeypatch, capsys):
    monkeypatch.setattr(cli, "_bench_script", lambda: None)
    assert cli.main(["bench", "--quick"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "not part of the installed package" in error and "python bench/run.py" in error


def test_the_package_carries_no_benchmark():
    assert importlib.util.find_spec("fastcnn.bench") is None


def test_step_flops_count_three_products_per_conv_and_dense_layer():
    layers = networks.build(PRESETS["simplecnn"].layers(), (1, 28, 28))
    # conv 5x5 1->6 and 6->6 on 28x28 outputs, dense 6*14*14 -> 10; 2 FLOPs per
    # multiply-add, three products (forward and both gradients) each.
    multiply_adds = 28 * 28 * 6 * 1 * 25 + 28 * 28 * 6 * 6 * 25 + 6 * 14 * 14 * 10
    assert networks.step_flops(layers, 64) == 3 * 2 * 64 * multiply_adds


def test_conv_case_output_size_is_the_layers():
    case = conv.ConvCase("001", 64, 1, 28, 28, 5, 3, 2, 1)
    assert case.output_size == (14, 14)
    assert case.forward_flops == 2 * 64 * 5 * 14 * 14 * 1 * 3 * 3


def test_writeup_loops_agree_with_the_reference_on_a_strided_padded_layer():
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 9, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    bias = rng.standard_normal(4)
    grad_y = rng.standard_normal((2, 4, 5, 4))
    expected = conv.conv_forward_backward(fastcnn.reference, x, w, bias, grad_y, 2, 1)
    for answers in (
        writeups.writeup002_conv(x, w, bias, grad_y, 2, 1, signal),
        writeups.writeup004_conv(x, w, bias, grad_y, 2, 1),
    ):
        for name, value in answers.items():
            np.testing.assert_allclose(value, expected[name], rtol=1e-12, atol=1e-12)


def test_pytorch_epoch_trains():
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    try:
        result = end_to_end.torch_epoch(batch_size=64, image_count=128, test_count=50, threads=1)
    finally:
        torch.set_num_threads(threads)
    assert result.images == 128
    assert result.seconds > 0
    assert 0 <= result.test_accuracy <= 1


def test_goals_say_met_or_missed_and_the_share_of_peak_a_goal_needs():
    square, shape = goals.SQUARE[0], goals.NETWORK_SHAPES[1]
    result = report.Report()
    result.ratios = [("Matmul", square, "NumPy @", 0.9), ("Matmul", shape, "NumPy @", 1.5),
                     ("Matmul", square, "PyTorch", 0.1)]
    result.shares = {("Matmul", square, "NumPy @"): 0.8}
    result.peak_memory_mib = [350.0, 420.0]
    text = goals.goals_section(result)
    rows = {line.split(" | ")[1]: line for line in text.splitlines() if line.startswith("| ")}
    assert "0.90×" in rows[square] and "**missed**" in rows[square]
    assert "80% → 80%" in rows[square]  # OpenBLAS at 80 % of peak; the goal is 1.0×
    assert "1.50×" in rows[shape] and "| met |" in rows[shape]
    assert "420 MiB" in rows["end to end, fresh process"]
    assert "**missed**" in rows["end to end, fresh process"]
    assert "GEMM, square: " in text and "GEMM, network shapes: " not in text  # met
    assert goals.goals_section(report.Report()) is None


def test_every_goal_names_a_section_the_benchmark_reports():
    sections = {"Matmul", "Convolution, forward + backward", "Network training step",
                "Network epoch", "Max-pool 2×2, forward + backward"}
    assert {goal.section for goal in goals.GOALS} <= sections
    # the conv goals' cases are cases the conv section runs
    labels = {case.label for case in conv.CONV_CASES}
    for goal in goals.GOALS:
        if goal.section.startswith("Convolution"):
            assert set(goal.cases) <= labels, goal.name


def test_the_profile_counts_a_layers_forward_and_backward_flops():
    layers = networks.build(PRESETS["simplecnn"].layers(), (1, 28, 28))
    first = 2 * 64 * 28 * 28 * 6 * 1 * 25
    assert profile._layer_flops(layers[0], 64, True) == (first, first)
    dense = 2 * 64 * 6 * 14 * 14 * 10
    assert profile._layer_flops(layers[-1], 64, False) == (dense, 2 * dense)
    assert profile._layer_flops(layers[1], 64, False) is None
