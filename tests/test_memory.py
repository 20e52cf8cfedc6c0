"""Kernel scratch memory is bounded, whatever the batch size."""

import subprocess
import sys
import textwrap

import pytest

CAP_MIB = 64


@pytest.mark.parametrize(
    "call",
    [
        "kernels.correlate2d(x, w, None, 1, 2)",
        "kernels.correlate2d_backward_weight(x, g, 5, 1, 2)",
        "kernels.convolve2d_full(g, w, (32, 32), 1, 2)",
    ],
    ids=["forward", "weight_gradient", "input_gradient"],
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv_on_1000_images_stays_within_the_scratch_cap(call, dtype):
    # An im2col buffer for the whole batch would be 1000*75*1024 values
    # (293 MiB in float32); the kernels work one image at a time instead.
    # The peak resident size (VmHWM, which starts afresh in a new program, unlike
    # ru_maxrss) is measured in a fresh process around one call.
    code = f"""
        import numpy as np, fastcnn
        from fastcnn import kernels
        rng = np.random.default_rng(0)
        x = rng.standard_normal((1000, 3, 32, 32)).astype("{dtype}")
        w = rng.standard_normal((10, 3, 5, 5)).astype("{dtype}")
        g = rng.standard_normal((1000, 10, 32, 32)).astype("{dtype}")
        kernels.correlate2d(x[:2], w, None, 1, 2)  # load everything lazily loaded
        def peak():
            with open("/proc/self/status") as status:
                line = next(line for line in status if line.startswith("VmHWM:"))
            return int(line.split()[1]) * 1024
        before = peak()
        out = {call}
        print(peak() - before, out.nbytes)
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    grown, output_bytes = map(int, result.stdout.split())
    assert grown <= output_bytes + CAP_MIB * 2**20, (
        f"peak memory grew by {grown / 2**20:.1f} MiB for an output of "
        f"{output_bytes / 2**20:.1f} MiB"
    )
