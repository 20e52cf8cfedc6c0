"""Max-pool 2x2 with argmax: fastcnn against NumPy, write-up 004's loops and PyTorch."""

import numpy as np

from fastcnn import kernels, reference

from .measure import SEED, Timing, interleaved, loop_timing
from .report import cell, first_samples, table
from .torch_baselines import LAYOUTS, faster_layout, torch_pool
from .writeups import writeup004_maxpool

POOL_SHAPES = ((64, 6, 28, 28), (64, 10, 32, 32), (1000, 10, 32, 32))
QUICK_POOL_SHAPES = POOL_SHAPES[:1]
POOL_ALTERNATIVES = ("reference", "write-up 004", "PyTorch")

def pool_forward_backward(module, x, grad_y):
    """Values, argmax and input gradient of a 2x2 max-pool through ``module``."""
    y, argmax = module.maxpool2d(x, 2)
    return {
        "y": y,
        "argmax": argmax,
        "grad_x": module.maxpool2d_backward(grad_y, argmax, x.shape[2:]),
    }

def pool_section(settings, libraries, report):
    rng = np.random.default_rng(SEED)
    rows = []
    for shape in QUICK_POOL_SHAPES if settings.quick else POOL_SHAPES:
        label = ", ".join(str(size) for size in shape)
        report.progress(f"max-pool {label}")
        n, c, h, w = shape
        x = rng.standard_normal(shape, dtype=np.float32)
        grad_y = rng.standard_normal((n, c, h // 2, w // 2), dtype=np.float32)
        expected = pool_forward_backward(kernels, x, grad_y)
        report.compare(
            f"max-pool ({label}): fastcnn vs reference",
            expected,
            pool_forward_backward(reference, x, grad_y),
        )
        runs = {
            "fastcnn": lambda: pool_forward_backward(kernels, x, grad_y),
            "reference": lambda: pool_forward_backward(reference, x, grad_y),
        }
        timings = {}
        if libraries.torch is not None:
            for layout in LAYOUTS:
                runs[f"PyTorch {layout}"] = torch_pool(libraries.torch, x, grad_y, layout)
                report.compare(f"max-pool ({label}): fastcnn vs PyTorch {layout}", expected,
                               runs[f"PyTorch {layout}"]())
        else:
            timings["PyTorch"] = "PyTorch not installed"
        timings.update(
            (name, Timing(seconds))
            for name, seconds in faster_layout(interleaved(runs, settings)).items()
        )
        timings["write-up 004"], samples = loop_timing(
            lambda count: writeup004_maxpool(x[:count], grad_y[:count]), n, settings
        )
        subset = pool_forward_backward(kernels, x[:samples], grad_y[:samples])
        report.compare(
            f"max-pool ({label}): fastcnn vs write-up 004{first_samples(samples, n)}",
            {name: subset[name] for name in ("y", "grad_x")},
            writeup004_maxpool(x[:samples], grad_y[:samples]),
        )
        fastcnn_timing = timings["fastcnn"]
        row = [label, cell(fastcnn_timing)]
        for alternative in POOL_ALTERNATIVES:
            timing = timings[alternative]
            row.append(cell(timing, fastcnn_timing))
            if isinstance(timing, Timing):
                report.ratios.append(
                    ("Max-pool 2×2, forward + backward", label, alternative,
                     timing.seconds / fastcnn_timing.seconds)
                )
        rows.append(row)
    report.sections.append(
        "## Max-pool 2×2 with argmax, forward + backward (float32)\n\n"
        "`maxpool2d` (values and argmax) then `maxpool2d_backward`. PyTorch: "
        "`max_pool2d(return_indices=True)` and autograd `backward`. Write-up 004 "
        "finds each window's maximum again in its backward pass instead of keeping an "
        "argmax.\n\n"
        + table(["N, C, H, W", "fastcnn"] + list(POOL_ALTERNATIVES), rows)
    )
