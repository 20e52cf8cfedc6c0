"""Time a few kernels in two fastcnn installs, interleaved, to compare two builds.

    python tools/compare_speed.py PYTHON_A PYTHON_B [--blocks 7]

PYTHON_A and PYTHON_B are interpreters that import different builds of fastcnn (for
example build/wheel/test-venv/bin/python and the development .venv/bin/python). On a
shared machine a single timing says little, so the two builds run in alternating
blocks, one fresh process each, and every figure is the fastest of its repeats; the
table gives each build's median over the blocks and the ratio B/A per block.
Set FASTCNN_ISA to compare another SIMD path.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time


def kernel_cases():
    """(name, function of no arguments) for each timed kernel; float32 throughout."""
    import numpy as np

    from fastcnn import kernels

    rng = np.random.default_rng(0)
    a = rng.standard_normal((1024, 1024), dtype=np.float32)
    b = rng.standard_normal((1024, 1024), dtype=np.float32)
    # SimpleCNN's second convolution on a batch of 64: 6 -> 6 channels, 5x5, "same".
    x = rng.standard_normal((64, 6, 28, 28), dtype=np.float32)
    w = rng.standard_normal((6, 6, 5, 5), dtype=np.float32)
    grad_y = rng.standard_normal((64, 6, 28, 28), dtype=np.float32)
    return [
        ("matmul 1024", lambda: kernels.matmul(a, b)),
        ("conv forward 64x6x28x28 5x5", lambda: kernels.correlate2d(x, w, padding=2)),
        ("conv backward (weight + input)", lambda: (
            kernels.correlate2d_backward_weight(x, grad_y, (5, 5), padding=2),
            kernels.convolve2d_full(grad_y, w, (28, 28), padding=2),
        )),
    ]


def time_block(repeats):
    """Print {kernel: fastest seconds of `repeats` calls} as JSON (runs in the child)."""
    fastest = {}
    for name, run in kernel_cases():
        run()  # warm up: first-touch pages, thread start
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        fastest[name] = min(times)
    print(json.dumps(fastest))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("python_a")
    parser.add_argument("python_b")
    parser.add_argument("--blocks", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between blocks")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        time_block(args.repeats)
        return

    for python in (args.python_a, args.python_b):
        config = subprocess.run([python, "-c", "import fastcnn; fastcnn.show_config()"],
                                check=True, capture_output=True, text=True).stdout
        print(f"{python}: {config.strip()}")
    results = {args.python_a: [], args.python_b: []}
    for block in range(args.blocks):
        for python in (args.python_a, args.python_b) if block % 2 == 0 else (
                args.python_b, args.python_a):
            child = subprocess.run(
                [python, __file__, args.python_a, args.python_b, "--child",
                 "--repeats", str(args.repeats)],
                check=True, capture_output=True, text=True)
            results[python].append(json.loads(child.stdout))
            time.sleep(args.pause)

    print(f"\n{'kernel':32} {'A median ms':>12} {'B median ms':>12} "
          f"{'B/A median':>10} {'B/A range':>14}")
    for name in results[args.python_a][0]:
        a = [block[name] for block in results[args.python_a]]
        b = [block[name] for block in results[args.python_b]]
        ratios = [tb / ta for ta, tb in zip(a, b)]
        print(f"{name:32} {statistics.median(a) * 1e3:12.2f} {statistics.median(b) * 1e3:12.2f} "
              f"{statistics.median(ratios):10.3f} {min(ratios):6.3f}-{max(ratios):.3f}")


if __name__ == "__main__":
    sys.exit(main())
