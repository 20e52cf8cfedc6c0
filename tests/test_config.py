"""Thread count and SIMD path: chosen from the environment, never changing answers."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastcnn
from fastcnn import _core


def run_python(code, **env):
    """Run code in a fresh interpreter with extra environment variables."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FASTCNN_")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_default_thread_count_is_the_usable_cores():
    result = run_python("import fastcnn; print(fastcnn.get_num_threads())")
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == len(os.sched_getaffinity(0))


def test_thread_count_from_environment():
    result = run_python("import fastcnn; print(fastcnn.get_num_threads())", FASTCNN_NUM_THREADS="3")
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == 3


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_bad_thread_count_in_environment_is_refused(value):
    result = run_python("import fastcnn", FASTCNN_NUM_THREADS=value)
    assert result.returncode != 0
    assert "FASTCNN_NUM_THREADS must be a positive integer" in result.stderr


@pytest.mark.parametrize("value", [0, -1, 1.5, "2", True])
def test_set_num_threads_refuses_non_positive_ints(value):
    with pytest.raises(ValueError, match="positive int"):
        fastcnn.set_num_threads(value)


def test_unknown_simd_path_is_refused():
    result = run_python("import fastcnn", FASTCNN_ISA="sse9")
    assert result.returncode != 0
    assert "unknown SIMD path 'sse9'" in result.stderr


FAULTS_OF_A_TRAINING_LIKE_LOOP = """
import resource
import numpy as np
import fastcnn

def step():  # a step's activations: a few arrays of 8 MiB, made, filled and freed
    arrays = [np.ones(1 << 20) for _ in range(4)]
    del arrays

step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or not os.confstr("CS_GNU_LIBC_VERSION"),
                    reason="the allocator settings are glibc's")
def test_freed_arrays_are_reused_without_page_faults_unless_turned_off():
    kept = run_python(FAULTS_OF_A_TRAINING_LIKE_LOOP)
    returned = run_python(FAULTS_OF_A_TRAINING_LIKE_LOOP, FASTCNN_RETAIN_FREED_MEMORY="0")
    assert kept.returncode == 0 and returned.returncode == 0, kept.stderr + returned.stderr
    # 10 steps of 32 MiB touch 81,920 pages; glibc's own moving thresholds keep some
    # of it (about 20,000 faults were seen), retaining keeps all of it (0 were seen).
    assert int(kept.stdout) < 500 < 5_000 < int(returned.stdout)


@pytest.mark.parametrize("value", ["2", "yes", "-1"])
def test_bad_retain_freed_memory_setting_is_refused(value):
    result = run_python("import fastcnn", FASTCNN_RETAIN_FREED_MEMORY=value)
    assert result.returncode != 0
    assert "FASTCNN_RETAIN_FREED_MEMORY must be 0 or 1" in result.stderr


def test_show_config_names_path_and_threads(capsys):
    text = fastcnn.show_config()
    assert capsys.readouterr().out.strip() == text
    assert f"{fastcnn.get_num_threads()} threads" in text
    assert "generic" in text


SUPPORTED = run_python(
    "from fastcnn import _core; print(' '.join(_core.supported_simd_paths()))"
).stdout.split()


@pytest.mark.parametrize("path", SUPPORTED)
def test_every_simd_path_gives_the_reference_answers(path):
    # Each path runs in its own interpreter, chosen the way users choose it.
    result = run_python(
        """
        import numpy as np, fastcnn
        from fastcnn import kernels, reference
        rng = np.random.default_rng(7)
        for dtype, tol in ((np.float32, 1e-5), (np.float64, 1e-12)):
            # Both matmul paths (unpacked, packed), every transpose.
            for m, n, k in ((1, 1, 1), (13, 35, 7), (64, 10, 300), (130, 260, 300)):
                for ta in (False, True):
                    for tb in (False, True):
                        a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
                        b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
                        np.testing.assert_allclose(kernels.matmul(a, b, ta, tb),
                                                   reference.matmul(a, b, ta, tb),
                                                   rtol=tol, atol=tol * k)
            x = rng.standard_normal((3, 4, 17, 15)).astype(dtype)
            w = rng.standard_normal((5, 4, 3, 3)).astype(dtype)
            np.testing.assert_allclose(kernels.correlate2d(x, w, None, 2, 1),
                                       reference.correlate2d(x, w, None, 2, 1),
                                       rtol=tol, atol=tol * 36)
            # 2x2 max-pool planes narrower than a vector, reading on into the next
            # row or plane (NaNs there must stay in their own lanes).
            for shape in ((3, 4, 16, 16), (2, 3, 28, 28), (2, 2, 6, 6), (1, 1, 2, 2)):
                x = rng.standard_normal(shape).astype(dtype)
                x.flat[rng.integers(0, x.size, 5)] = np.nan
                for got, want in zip(kernels.maxpool2d(x), reference.maxpool2d(x)):
                    np.testing.assert_array_equal(got, want)
        print(fastcnn.show_config())
        """,
        FASTCNN_ISA=path,
    )
    assert result.returncode == 0, result.stderr
    assert f"SIMD path {path}" in result.stdout



@pytest.mark.parametrize("dtype", ["float32", "float64", np.float32])
@pytest.mark.parametrize("threads", [1, 2])
def test_fma_peak_measures_a_positive_rate(dtype, threads):
    rate = _core.fma_peak(dtype, threads, 0.01)
    assert isinstance(rate, float) and 0 < rate < float("inf")


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (("int32", 1, 0.01), TypeError, "float32 or float64"),
        (("float32", 0, 0.01), ValueError, "threads"),
        (("float32", 1, 0.0), ValueError, "seconds"),
        (("float32", 1, 100.0), ValueError, "seconds"),
    ],
    ids=["dtype", "threads", "no-time", "too-long"],
)
def test_fma_peak_refuses_bad_arguments(arguments, error, message):
    with pytest.raises(error, match=message):
        _core.fma_peak(*arguments)
