"""The benchmark's quick mode: every answer check passes and the report is complete.

Timings are never asserted: they depend on the machine and on what else runs on it.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastcnn
from fastcnn import bench

REPOSITORY = Path(__file__).resolve().parent.parent
HEADINGS = (
    "# fastcnn benchmark",
    "## Answer checks",
    "## Convolution layers (float32)",
    "### Forward\n",
    "### Forward + backward\n",
    "## Max-pool 2×2 with argmax, forward + backward (float32)",
    "## Matmul",
    "## End to end: one epoch of write-up 004's SimpleCNN",
    "## Thread scaling: convolution forward + backward, batch cases",
)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """(exit status, report text, report path) of one quick run with what is installed."""
    out = tmp_path_factory.mktemp("bench") / "results.md"
    status = bench.main(["--quick", "--out", str(out)])
    return status, out.read_text(encoding="utf-8"), out


def test_quick_run_passes_every_answer_check(quick_run):
    status, text, _ = quick_run
    assert status == 0
    assert "answer checks passed" in text
    assert "MISMATCH" not in text
    assert "FAILED" not in text


def test_report_has_every_section_and_the_machine(quick_run):
    _, text, _ = quick_run
    for heading in HEADINGS:
        assert heading in text
    for line in ("- Machine: ", "- fastcnn: fastcnn ", "- Versions: Python ", "- Run: quick, "):
        assert line in text


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
    ):
        assert f"passed: {check}" in text
    assert "PyTorch not installed" not in text


def test_runs_without_scipy_pytorch_and_matplotlib(tmp_path, monkeypatch):
    for name in ("scipy", "scipy.signal", "torch", "matplotlib"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` fail
    out = tmp_path / "results.md"
    assert bench.main(["--quick", "--out", str(out), "--only", "conv", "pool", "matmul"]) == 0
    text = out.read_text(encoding="utf-8")
    assert "scipy not installed" in text
    assert "PyTorch not installed" in text
    assert "not drawn: matplotlib is not installed" in text
    assert not out.with_suffix(".png").exists()


def test_a_wrong_answer_fails_the_run_loudly(tmp_path, monkeypatch, capsys):
    correct_maxpool2d = fastcnn.kernels.maxpool2d

    def off_by_one(x, size=2, stride=None):
        y, argmax = correct_maxpool2d(x, size, stride)
        return y + 1, argmax

    monkeypatch.setattr(fastcnn.kernels, "maxpool2d", off_by_one)
    out = tmp_path / "results.md"
    assert bench.main(["--quick", "--out", str(out), "--only", "pool"]) == 1
    assert "ANSWER MISMATCH" in out.read_text(encoding="utf-8")
    assert "ANSWER MISMATCH" in capsys.readouterr().err


def test_the_thread_count_is_restored(tmp_path):
    before = fastcnn.get_num_threads()
    out = tmp_path / "results.md"
    assert bench.main(["--quick", "--out", str(out), "--threads", "1", "--only", "matmul"]) == 0
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


def test_writeup_loops_agree_with_the_reference_on_a_strided_padded_layer():
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 9, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    bias = rng.standard_normal(4)
    grad_y = rng.standard_normal((2, 4, 5, 4))
    expected = bench._conv_forward_backward(fastcnn.reference, x, w, bias, grad_y, 2, 1)
    for answers in (
        bench.writeup002_conv(x, w, bias, grad_y, 2, 1, signal),
        bench.writeup004_conv(x, w, bias, grad_y, 2, 1),
    ):
        for name, value in answers.items():
            np.testing.assert_allclose(value, expected[name], rtol=1e-12, atol=1e-12)


def test_pytorch_epoch_trains():
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    try:
        result = bench.torch_epoch(batch_size=64, image_count=128, test_count=50, threads=1)
    finally:
        torch.set_num_threads(threads)
    assert result.images == 128
    assert result.seconds > 0
    assert 0 <= result.test_accuracy <= 1
