"""Each example script runs to the end in its fast mode (small synthetic data)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

SCRIPTS = {
    "writeup_001_mlp_and_cnn.py": ["MLP 100-50-10: 3 epochs", "conv net: 3 epochs"],
    "writeup_002_conv_sigmoid.py": ["epoch 3/3", "Total params: 406,770", "test loss"],
    "writeup_002_compat_port.py": ["1/2, error=", "2/2, error=", "Total Average Error:"],
    "writeup_003_cifar_style.py": ["Total params: 134,890", "epoch 2/2", "test loss"],
    "writeup_003_own_code_on_compat.py": ["Iteration 0 loss", "1 step(s) on 100 images"],
    "writeup_004_fashion_mnist.py": ["Total params: 12,832", "epoch 2/2", "test accuracy"],
    "writeup_004_own_code_on_compat.py": ["Epoch 2, loss:", "Dev Accuracy:", "300 images x 2 epochs"],
}


def run(script, arguments=(), environment=None):
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *arguments],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, **(environment or {})},
    )


def test_every_example_is_tested():
    assert sorted(p.name for p in EXAMPLES.glob("writeup_*.py")) == sorted(SCRIPTS)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_example_runs_in_fast_mode(script):
    result = run(script, ["--fast"])
    assert result.returncode == 0, result.stderr
    assert "synthetic images" in result.stdout
    for expected in SCRIPTS[script]:
        assert expected in result.stdout, result.stdout


def test_the_environment_variable_also_selects_fast_mode():
    result = run("writeup_001_mlp_and_cnn.py", environment={"FASTCNN_EXAMPLES_FAST": "1"})
    assert result.returncode == 0, result.stderr
    assert "synthetic images (600 train / 200 test)" in result.stdout
