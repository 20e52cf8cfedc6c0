"""The portable wheel (tools/build-wheel.sh), installed into a fresh virtual environment
and used there as a user would: its tag, each SIMD path against the NumPy reference, and
a short training on the data sample shipped inside it.

It takes minutes (a build, a venv, an install), so it runs only when asked:
FASTCNN_TEST_WHEEL=dist/fastcnn-...-manylinux_2_17_x86_64....whl tests that wheel (as
.ci/run does); FASTCNN_TEST_WHEEL=1 first builds one with tools/build-wheel.sh.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
SETTING = os.environ.get("FASTCNN_TEST_WHEEL", "").strip()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not SETTING,
        reason="set FASTCNN_TEST_WHEEL to a wheel's path, or to 1 to build one first",
    ),
]

# Each kernel on small random float32 arrays, from the wheel and from its NumPy
# reference; prints the SIMD path that ran and the largest relative error.
KERNELS_AGAINST_REFERENCE = """
import numpy as np
import fastcnn
from fastcnn import kernels, reference
rng = np.random.default_rng(0)
x = rng.standard_normal((3, 4, 13, 11), dtype=np.float32)
w = rng.standard_normal((5, 4, 3, 3), dtype=np.float32)
grad_y = rng.standard_normal((3, 5, 13, 11), dtype=np.float32)
a = rng.standard_normal((70, 45), dtype=np.float32)
b = rng.standard_normal((45, 33), dtype=np.float32)
pairs = [
    (kernels.correlate2d(x, w, padding=1), reference.correlate2d(x, w, padding=1)),
    (kernels.correlate2d_backward_weight(x, grad_y, (3, 3), padding=1),
     reference.correlate2d_backward_weight(x, grad_y, (3, 3), padding=1)),
    (kernels.convolve2d_full(grad_y, w, (13, 11), padding=1),
     reference.convolve2d_full(grad_y, w, (13, 11), padding=1)),
    (kernels.matmul(a, b), reference.matmul(a, b)),
    (kernels.maxpool2d(x, 2)[0], reference.maxpool2d(x, 2)[0]),
]
error = max(float(np.abs(got - want).max() / np.abs(want).max()) for got, want in pairs)
print(fastcnn.show_config())
print("max relative error", error)
"""


def run(command, **kwargs):
    """Run a command outside the repository, without its environment leaking in."""
    env = {name: value for name, value in os.environ.items()
           if name not in ("PYTHONPATH", "FASTCNN_ISA", "FASTCNN_DATA", "VIRTUAL_ENV")}
    env.update(kwargs.pop("env", {}))
    result = subprocess.run(list(map(str, command)), env=env, capture_output=True, text=True,
                            **kwargs)
    assert result.returncode == 0, (
        f"{command} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
        f"{result.stderr[-3000:]}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def wheel():
    if SETTING == "1":
        output = run(["bash", "tools/build-wheel.sh"], cwd=REPOSITORY,
                     env={"PYTHON": sys.executable})
        return REPOSITORY / output.strip().splitlines()[-1]
    path = Path(SETTING)
    if not path.is_file():
        pytest.fail(f"FASTCNN_TEST_WHEEL={SETTING!r} is neither 1 nor a wheel file")
    return path


@pytest.fixture(scope="module")
def python(wheel, tmp_path_factory):
    """The interpreter of a fresh virtual environment with the wheel installed."""
    environment = tmp_path_factory.mktemp("wheel-venv")
    run([sys.executable, "-m", "venv", environment])
    interpreter = environment / "bin" / "python"
    run([interpreter, "-m", "pip", "install", "--quiet", wheel])
    return interpreter


def test_wheel_is_manylinux2014_for_this_python(wheel):
    python_tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert re.fullmatch(
        rf"fastcnn-[^-]+-{python_tag}-{python_tag}-.*manylinux_2_17_x86_64.*\.whl", wheel.name
    ), wheel.name


def test_fastcnn_comes_from_the_wheel(python, tmp_path):
    location = run([python, "-c", "import fastcnn; print(fastcnn.__file__)"], cwd=tmp_path)
    assert Path(location.strip()).is_relative_to(python.parent.parent), location


def cpu_flags():
    """The instruction-set flags the Linux kernel reports for this CPU."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


# The CPU flags each SIMD path needs (csrc/simd.cpp asks for the same).
PATH_NEEDS = {
    "avx512": {"avx512f", "avx512dq", "avx512bw", "avx512vl"},
    "avx2": {"avx2", "fma"},
    "generic": set(),
}


@pytest.mark.parametrize("simd_path", PATH_NEEDS)
def test_each_simd_path_matches_the_reference(python, tmp_path, simd_path):
    supported = run([python, "-c", "from fastcnn import _core; "
                     "print(' '.join(_core.supported_simd_paths()))"], cwd=tmp_path).split()
    # The run-time detection must see what the CPU has: a build whose detection is a
    # stub would run everything on the generic path, correct but several times slower.
    cpu_has_it = PATH_NEEDS[simd_path] <= cpu_flags()
    assert (simd_path in supported) == cpu_has_it, (simd_path, supported)
    if not cpu_has_it:
        pytest.skip(f"this CPU has no {simd_path}")
    output = run([python, "-c", KERNELS_AGAINST_REFERENCE], cwd=tmp_path,
                 env={"FASTCNN_ISA": simd_path})
    assert f"SIMD path {simd_path} " in output, output
    error = float(re.search(r"max relative error (\S+)", output).group(1))
    assert error < 1e-5, output


def test_training_on_the_shipped_sample(python, tmp_path):
    sample = run([python, "-c", "from fastcnn import datasets; print(datasets.SAMPLE_DIR)"],
                 cwd=tmp_path).strip()
    assert Path(sample).is_relative_to(python.parent.parent), sample
    output = run([python.parent / "fastcnn", "train", "--data", sample, "--epochs", "1",
                  "--limit", "1000", "--quiet", "--out", "model.npz"], cwd=tmp_path)
    accuracy = float(re.search(r"Test accuracy (\S+),", output).group(1))
    # 10 classes: chance is 0.1; one epoch on 917 images reaches 0.73 (seed 0).
    assert accuracy > 0.3, output
    assert (tmp_path / "model.npz").is_file()
    evaluated = run([python.parent / "fastcnn", "evaluate", "model.npz", "--data", sample],
                    cwd=tmp_path)
    assert f"Accuracy {accuracy:.4f}" in evaluated, evaluated
