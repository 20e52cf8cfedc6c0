"""End to end: one epoch of write-up 004's SimpleCNN, each library in a fresh process,
with its peak memory and test accuracy; and write-up 004's own code in this one."""

import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Optional

import numpy as np

import fastcnn
from fastcnn.models import PRESETS

from .data import load_images, normalise
from .measure import SEED, Timing
from .report import Check, cell, table
from .torch_baselines import torch_model
from .writeups import LEARNING_RATE, WriteUp004SimpleCNN

EPOCH_IMAGES = 60_000  # one Fashion-MNIST training epoch
EPOCH_BATCH_SIZES = (1, 64)
SIMPLECNN = PRESETS["simplecnn"]


@dataclass
class EpochResult:
    seconds: float  # for the images trained
    images: int
    peak_rss_mib: Optional[float]
    test_accuracy: float
    test_images: int

    def epoch_timing(self):
        """The time for a 60,000-image epoch, scaled when fewer images were trained."""
        images = min(self.images, EPOCH_IMAGES)
        return Timing(self.seconds * EPOCH_IMAGES / self.images, images, EPOCH_IMAGES)


def _peak_rss_mib():
    """This process's peak resident set size so far, in MiB, or None where unknown.

    Linux: VmHWM from /proc/self/status. getrusage's ru_maxrss is not used there
    because Linux carries it over from the parent through fork and exec, so a fresh
    child started by a large benchmark process would report the parent's peak.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes, else KiB


def fastcnn_epoch(batch_size, image_count, test_count, threads):
    """Train the SimpleCNN with fastcnn.Network for one epoch; run in a fresh process."""
    fastcnn.set_num_threads(threads)
    train_images, train_labels, test_images, test_labels, _ = load_images(image_count, test_count)
    x_train, x_test = normalise(train_images), normalise(test_images)
    network = fastcnn.Network(SIMPLECNN.layers()).use("softmax_cross_entropy")

    def train(x, y):
        network.fit(
            x, y, epochs=1, learning_rate=LEARNING_RATE, batch_size=batch_size, verbose=0
        )

    train(x_train[:batch_size], train_labels[:batch_size])  # warm-up step
    start = time.perf_counter()
    train(x_train, train_labels)
    seconds = time.perf_counter() - start
    predictions = np.argmax(network.predict(x_test), axis=-1)
    return EpochResult(
        seconds,
        len(x_train),
        _peak_rss_mib(),
        float(np.mean(predictions == test_labels)),
        len(x_test),
    )


def torch_epoch(batch_size, image_count, test_count, threads):
    """Train the same network with PyTorch (SGD, mean cross-entropy) in a fresh process."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(SEED)
    train_images, train_labels, test_images, test_labels, _ = load_images(image_count, test_count)
    x_sample = normalise(train_images[:1])
    x_train, y_train = torch.from_numpy(normalise(train_images)), torch.from_numpy(train_labels)
    nn = torch.nn
    layers = SIMPLECNN.layers()
    for layer in layers:  # built by a forward: Glorot-initialised weights for PyTorch
        x_sample = layer.forward(x_sample)
    model = torch_model(torch, layers)
    loss_function = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)

    def train(order):
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad()
            loss_function(model(x_train[batch]), y_train[batch]).backward()
            optimizer.step()

    train(torch.arange(batch_size))  # warm-up step
    start = time.perf_counter()
    train(torch.randperm(len(x_train)))
    seconds = time.perf_counter() - start
    with torch.no_grad():
        predictions = model(torch.from_numpy(normalise(test_images))).argmax(dim=1).numpy()
    return EpochResult(
        seconds,
        len(x_train),
        _peak_rss_mib(),
        float(np.mean(predictions == test_labels)),
        len(test_images),
    )


def in_fresh_process(function, *arguments):
    """function(*arguments) in a new Python process, so its peak memory is its own."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *arguments).result()


def writeup004_epoch(train_images, train_labels):
    """Write-up 004's own SimpleCNN trained on these images, scaled to an epoch."""
    network = WriteUp004SimpleCNN(np.random.default_rng(SEED))
    network.train_step(train_images[0], train_labels[0])  # warm-up step
    start = time.perf_counter()
    for image, label in zip(train_images, train_labels):
        network.train_step(image, label)
    seconds = time.perf_counter() - start
    return Timing(seconds * EPOCH_IMAGES / len(train_images), len(train_images), EPOCH_IMAGES)


def epoch_cells(result, fastcnn_timing=None):
    """The epoch time, peak memory and test accuracy cells of one run, or its reason."""
    if isinstance(result, str):
        return [result, "", ""]
    peak = "unknown" if result.peak_rss_mib is None else f"{result.peak_rss_mib:.0f} MiB"
    return [
        cell(result.epoch_timing(), fastcnn_timing),
        peak,
        f"{result.test_accuracy:.3f} ({result.test_images:,})",
    ]


def end_to_end_section(settings, libraries, report, threads):
    writeup_images, writeup_labels, _, _, source = load_images(settings.writeup_epoch_images, 0)
    functions = {"fastcnn": fastcnn_epoch}
    results = {}
    if libraries.torch is None:
        results["PyTorch"] = dict.fromkeys(EPOCH_BATCH_SIZES, "PyTorch not installed")
    elif settings.quick:  # importing torch in each fresh process takes seconds
        results["PyTorch"] = dict.fromkeys(EPOCH_BATCH_SIZES, "skipped in quick mode")
    else:
        functions["PyTorch"] = torch_epoch
    for name, function in functions.items():
        results[name] = {}
        for batch_size in EPOCH_BATCH_SIZES:
            report.progress(f"end-to-end {name}, batch {batch_size}")
            images = None if settings.epoch_images is None else settings.epoch_images[batch_size]
            try:
                results[name][batch_size] = in_fresh_process(
                    function, batch_size, images, settings.test_images, threads
                )
            except Exception as error:  # reported as a failed check; the run goes on
                message = f"{type(error).__name__}: {error}"
                results[name][batch_size] = f"failed: {message}"
                report.checks.append(Check(f"end-to-end {name}, batch {batch_size}", [message]))
    report.progress("end-to-end write-up 004, batch 1")
    writeup_timing = writeup004_epoch(writeup_images, writeup_labels)

    rows = []
    for batch_size in EPOCH_BATCH_SIZES:
        fastcnn_result = results["fastcnn"][batch_size]
        fastcnn_timing = None if isinstance(fastcnn_result, str) else fastcnn_result.epoch_timing()
        if fastcnn_timing is not None and fastcnn_result.peak_rss_mib is not None:
            report.peak_memory_mib.append(fastcnn_result.peak_rss_mib)
        torch_result = results["PyTorch"][batch_size]
        row = [str(batch_size)] + epoch_cells(fastcnn_result)
        row += epoch_cells(torch_result, fastcnn_timing)
        alternatives = {}
        if not isinstance(torch_result, str):
            alternatives["PyTorch"] = torch_result.epoch_timing()
        if batch_size == 1:
            row.append(cell(writeup_timing, fastcnn_timing))
            alternatives["write-up 004"] = writeup_timing
        else:
            row.append("— (trains one image at a time)")
        if fastcnn_timing is not None:
            for alternative, timing in alternatives.items():
                report.ratios.append(
                    ("SimpleCNN epoch", f"batch {batch_size}", alternative,
                     timing.seconds / fastcnn_timing.seconds)
                )
        rows.append(row)
    report.sections.append(
        "## End to end: one epoch of write-up 004's SimpleCNN\n\n"
        "conv 5×5×6 same → ReLU → conv 5×5×6 same → ReLU → max-pool 2 → dense 10, "
        f"softmax cross-entropy, SGD with learning rate {LEARNING_RATE}, "
        f"on {source}. Images are float32 (x / 255 − 0.5). "
        "fastcnn: `Network.fit(epochs=1, batch_size=...)`; PyTorch: the same layers, "
        "`CrossEntropyLoss` and `optim.SGD`, in a plain loop over shuffled batches. "
        "Each run is a fresh Python process that loads the data, takes one warm-up "
        "step, trains one timed epoch and classifies the test images. "
        "The epoch time is for 60,000 images ([n/60,000]: scaled from n images trained). "
        "Peak memory is that process's peak resident set size (VmHWM in "
        "/proc/self/status on Linux, else `resource.getrusage` ru_maxrss), which "
        "includes the interpreter, the libraries and the whole loaded data set. "
        "Test accuracy is after that one epoch (number of test images in brackets). "
        "Write-up 004's own code trains in this process, float64, one image at a "
        "time, as the write-up does.\n\n"
        + table(
            [
                "batch",
                "fastcnn epoch",
                "fastcnn peak memory",
                "fastcnn test accuracy",
                "PyTorch epoch",
                "PyTorch peak memory",
                "PyTorch test accuracy",
                "write-up 004 epoch",
            ],
            rows,
        )
    )
