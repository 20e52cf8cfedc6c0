"""Time fastcnn.compat.writeup003 / writeup004 against the write-ups' own code
(tests/_writeup003.py, tests/_writeup004.py), both in one process, in interleaved
blocks; prints the median time of each and the ratio. Not a test: run it by hand.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python tests/_writeup_timing.py 004
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python tests/_writeup_timing.py 003 --batch 1000
"""

import argparse
import contextlib
import io
import statistics
import time
import types

import numpy as np

import _writeup003
import _writeup004
from _helpers import class_images
from fastcnn.compat import writeup003, writeup004


def interleaved(candidates, blocks, repeats):
    """{name: [seconds per call]} over ``blocks`` rounds of ``repeats`` calls each,
    the candidates taking turns within every round."""
    times = {name: [] for name in candidates}
    for _ in range(blocks):
        for name, call in candidates.items():
            for _ in range(repeats):
                started = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - started)
        time.sleep(0.2)
    return times


def report(label, times):
    ours, theirs = statistics.median(times["compat"]), statistics.median(times["write-up"])
    print(
        f"{label:<34} write-up {theirs * 1e3:10.3f} ms   compat {ours * 1e3:9.3f} ms   "
        f"x{theirs / ours:8.1f}   ({len(times['compat'])} calls each)"
    )


def writeup004_step(model, image, label):
    """One iteration of the body of write-up 004's train loop."""
    out = model.forward(image)
    gradient = np.zeros(10)
    gradient[label] = -1 / out[label]
    model.backprop(gradient, 0.005)


def time_writeup004(args):
    images, labels = class_images(args.images, seed=0)
    models = {}
    for name, module in (("compat", writeup004), ("write-up", _writeup004)):
        np.random.seed(0)
        models[name] = _writeup004.SimpleCNN(
            module.ConvLayer(input_shape=(1, 28, 28), kernel_size=5, num_kernels=6, padding=0),
            module.ReLU(),
            module.ConvLayer(input_shape=(6, 28, 28), kernel_size=5, num_kernels=6, padding=0),
            module.ReLU(),
            module.MaxPool(),
            module.Output(6 * 14 * 14, 10),
        )
    data = models["compat"].preprocess(images)
    cursor = {name: 0 for name in models}

    def step(name):
        index = cursor[name] % len(data)
        cursor[name] += 1
        writeup004_step(models[name], data[index], labels[index])

    times = interleaved({name: (lambda name=name: step(name)) for name in models}, args.blocks, args.repeats)
    report("write-up 004 SimpleCNN train step", times)


def time_writeup003(args):
    n = args.batch
    images, classes = class_images(n, size=32, channels=3, seed=0)
    x = images.astype(np.float64) - images.mean(axis=0)
    rng = np.random.default_rng(0)
    W2, W4 = rng.standard_normal((10, 3, 5, 5)) * 0.03, rng.standard_normal((20, 10, 5, 5)) * 0.03
    b2, b4 = np.zeros((10, 1)), np.zeros((20, 1))
    z3 = rng.standard_normal((n, 10, 16, 16))
    delta2, delta4 = rng.standard_normal((n, 10, 32, 32)), rng.standard_normal((n, 20, 16, 16))
    z2 = rng.standard_normal((n, 10, 32, 32))
    argmaxes = rng.integers(0, 4, (n, 10, 16, 16))
    functions = {"compat": writeup003, "write-up": _writeup003}
    cnns = {}
    for name, module in functions.items():
        cnns[name] = types.SimpleNamespace(W2=W2, W4=W4, images=x, Z3=z3, Xcol2=[], Xcol4=[])
        module.convolve_forward(cnns[name], x, W2, b2, layer=2)
        module.convolve_forward(cnns[name], z3, W4, b4, layer=4)
    cols4 = writeup003.im2col_indices(z3, 5, 5, 2, 1)
    cases = {
        "convolve_forward layer 2": lambda f, m: f.convolve_forward(m, x, W2, b2, layer=2),
        "conv_backward layer 2": lambda f, m: f.conv_backward(m, delta2, layer=2),
        "convolve_forward layer 4": lambda f, m: f.convolve_forward(m, z3, W4, b4, layer=4),
        "conv_backward layer 4": lambda f, m: f.conv_backward(m, delta4, layer=4),
        "maxpool_forward layer 3": lambda f, m: f.maxpool_forward(z2),
        "maxpool_backward layer 3": lambda f, m: f.maxpool_backward(argmaxes, z3, z2.shape),
        "im2col_indices layer 2": lambda f, m: f.im2col_indices(x, 5, 5, 2, 1),
        "col2im_indices layer 4": lambda f, m: f.col2im_indices(cols4, z3.shape, 5, 5, 2, 1),
        "ReLU": lambda f, m: f.ReLU(z2),
        "derivative_ReLU": lambda f, m: f.derivative_ReLU(z2),
        "Softmax (N, 10)": lambda f, m: f.Softmax(z2[:, 0, 0, :10]),
    }
    print(f"write-up 003 functions on its shapes, N={n}:")
    for label, case in cases.items():
        times = interleaved(
            {name: (lambda f=f, m=cnns[name], case=case: case(f, m)) for name, f in functions.items()},
            args.blocks, args.repeats,
        )
        report(label, times)
    step = lambda name: _run_training_step(functions[name], images, classes, n)
    times = interleaved({name: (lambda name=name: step(name)) for name in functions}, args.blocks, 1)
    report(f"write-up 003 training step, N={n}", times)


def _run_training_step(functions, images, classes, n):
    namespace = {"np": np, **{name: getattr(functions, name) for name in writeup003.__all__}}
    np.random.seed(0)
    namespace["m"] = _writeup003.CNN()
    exec(_writeup003.INITIALISATION, namespace)
    namespace["N"], namespace["imap"] = n, list(range(n))
    namespace["m"].images = images - images.mean(axis=0)
    namespace["labels"] = np.eye(10)[classes]
    namespace["Y"] = list(classes)
    with contextlib.redirect_stdout(io.StringIO()):  # its loss line
        exec(_writeup003.TRAINING_LOOP, namespace)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("writeup", choices=["003", "004"])
    parser.add_argument("--batch", type=int, default=100, help="003: N, images per batch")
    parser.add_argument("--images", type=int, default=50, help="004: distinct images cycled")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    (time_writeup003 if args.writeup == "003" else time_writeup004)(args)


if __name__ == "__main__":
    main()
