"""Whole networks: one training step of SimpleCNN, LeNet and a small VGG, fastcnn against
PyTorch in both memory layouts, with GFLOP/s and shares of the peak; and a SimpleCNN
epoch at batch 64 and batch 1, scaled from a timed subset."""

import copy
import dataclasses

import numpy as np

import fastcnn
from fastcnn import Convolutional, Dense
from fastcnn.losses import softmax_cross_entropy, softmax_cross_entropy_prime
from fastcnn.models import PRESETS, vgg_cifar

from .data import load_images, normalise
from .end_to_end import EPOCH_IMAGES
from .measure import SEED, Timing, interleaved
from .report import cell, format_rate, table
from .torch_baselines import LAYOUTS, named_arrays, torch_arrays, torch_model, torch_train_step

NETWORKS = (  # (name, layers factory, sample shape)
    ("SimpleCNN", PRESETS["simplecnn"].layers, (1, 28, 28)),
    ("LeNet", PRESETS["lenet"].layers, (1, 28, 28)),
    ("VGG-style", vgg_cifar, (3, 32, 32)),
)
BATCH_SIZES = (64, 1)
LEARNING_RATE = 0.01
CLASSES = 10
CHECKED_STEPS = 2  # of the epoch check, which trains both libraries in the same order
CHECKED_SAMPLES = 8  # of the float64 step check (PyTorch's float64 convolutions are slow)


def build(layers, sample_shape):
    """Build every layer for samples of ``sample_shape`` (a forward of one zero sample,
    so each draws its initial weights); returns the layers."""
    x = np.zeros((1, *sample_shape), np.float32)
    for layer in layers:
        x = layer.forward(x)
    return layers


def step_flops(layers, batch):
    """Conv and dense FLOPs of one training step of built ``layers`` on ``batch`` samples.

    Each multiply-add is 2 FLOPs, and each layer runs three products of the same size:
    the forward, the weight gradient and the input gradient (counted for the first layer
    too, though neither library computes it), so 3 · 2·N·Ho·Wo·F·C·kh·kw per conv and
    3 · 2·N·in·units per dense. Pooling, activations and the loss are not counted.
    """
    multiply_adds = 0
    for layer in layers:
        if isinstance(layer, Convolutional):
            _, ho, wo = layer.output_shape
            multiply_adds += ho * wo * layer.kernels.size
        elif isinstance(layer, Dense):
            multiply_adds += layer.weights.size
    return 3 * 2 * batch * multiply_adds


def fastcnn_step(layers, x, labels, learning_rate):
    """A closure: one training step through the layers' forward and backward, as
    Network.fit takes each batch (the loss, its gradient on the logits, backward with
    plain SGD); returns the logits. Like fit, it skips the first layer's input gradient."""
    layers[0].input_gradient = False

    def step():
        output = x
        for layer in layers:
            output = layer.forward(output)
        softmax_cross_entropy(labels, output)
        gradient = softmax_cross_entropy_prime(labels, output)
        for layer in reversed(layers):
            gradient = layer.backward(gradient, learning_rate)
        return output

    return step


def _torch_models(torch, layers):
    """{layout: nn.Sequential} holding the built layers' current weights."""
    models = {"NCHW": torch_model(torch, layers)}
    models["channels_last"] = torch_model(torch, layers).to(memory_format=torch.channels_last)
    return models


def _torch_input(torch, x, layout):
    tensor = torch.from_numpy(x)
    if layout == "channels_last":
        return tensor.contiguous(memory_format=torch.channels_last)
    return tensor


def _float64_copy(layers):
    """The built layers, copied to compute in float64. The answer checks compare the
    libraries in float64: in float32 a ReLU input or a max-pool near-tie that rounds to
    the other side in one library sends a whole gradient element elsewhere."""
    return [copy.deepcopy(layer).astype(np.float64) for layer in layers]


def _check_step(name, batch, layers, x, labels, torch, report):
    """One step of float64 copies of ``layers`` in both libraries, from the same
    weights, on the first CHECKED_SAMPLES samples: the logits and every parameter
    gradient must agree."""
    x, labels = x[:CHECKED_SAMPLES].astype(np.float64), labels[:CHECKED_SAMPLES]
    models = _torch_models(torch, layers)
    expected = {"logits": fastcnn_step(layers, x, labels, LEARNING_RATE)(),
                **named_arrays(layers, gradients=True)}
    for layout, model in models.items():
        step = torch_train_step(torch, model, _torch_input(torch, x, layout),
                                torch.from_numpy(labels), LEARNING_RATE)
        report.compare(
            f"{name} training step, batch {batch}: fastcnn vs PyTorch {layout}, float64 "
            "logits and parameter gradients",
            expected,
            {"logits": step().detach().numpy(), **torch_arrays(model, gradients=True)},
        )


def _step_case(name, factory, sample_shape, batch, settings, torch, report):
    """{library: seconds per step} of one network at one batch size; checks answers."""
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((batch, *sample_shape), dtype=np.float32)
    labels = rng.integers(0, CLASSES, batch)
    layers = build(factory(), sample_shape)
    runs = {"fastcnn": fastcnn_step(layers, x, labels, LEARNING_RATE)}
    if torch is not None:
        _check_step(name, batch, _float64_copy(layers), x, labels, torch, report)
        for layout, model in _torch_models(torch, layers).items():
            runs[f"PyTorch {layout}"] = torch_train_step(
                torch, model, _torch_input(torch, x, layout), torch.from_numpy(labels),
                LEARNING_RATE,
            )
        # The timed float32 steps start from the same weights: their logits agree.
        logits = runs["fastcnn"]()
        for layout in LAYOUTS:
            report.compare(
                f"{name} training step, batch {batch}: fastcnn vs PyTorch {layout}, float32 "
                "logits",
                {"logits": logits},
                {"logits": runs[f"PyTorch {layout}"]().detach().numpy()},
            )
    return interleaved(runs, settings), step_flops(layers, batch)


def _steps_table(settings, torch, report):
    peak = report.peak.gflops
    rows = []
    for name, factory, sample_shape in NETWORKS:
        for batch in BATCH_SIZES:
            report.progress(f"network {name}, batch {batch}")
            seconds, flops = _step_case(
                name, factory, sample_shape, batch, settings, torch, report
            )
            fastcnn_timing = Timing(seconds["fastcnn"])
            row = [name, str(batch), f"{flops / 1e6:,.1f}", cell(fastcnn_timing),
                   format_rate(flops, seconds["fastcnn"], peak)]
            if torch is None:
                rows.append(row + ["PyTorch not installed"] * 3)
                continue
            for layout in LAYOUTS:
                row.append(cell(Timing(seconds[f"PyTorch {layout}"]), fastcnn_timing))
            faster = min(LAYOUTS, key=lambda layout: seconds[f"PyTorch {layout}"])
            row.append(f"{faster}: {format_rate(flops, seconds[f'PyTorch {faster}'], peak)}")
            key = ("Network training step", f"{name}, batch {batch}", "PyTorch")
            report.ratios.append((*key, seconds[f"PyTorch {faster}"] / seconds["fastcnn"]))
            report.shares[key] = flops / seconds[f"PyTorch {faster}"] / 1e9 / peak
            rows.append(row)
    return table(
        ["network", "batch", "MFLOP per step", "fastcnn", "GFLOP/s (% of peak)",
         "PyTorch NCHW", "PyTorch channels_last", "PyTorch, faster layout: GFLOP/s (% of peak)"],
        rows,
    )


# --------------------------------------------------------------------------- epoch


def _fastcnn_pass(layers, x, labels, batch):
    network = fastcnn.Network(layers, dtype=x.dtype).use("softmax_cross_entropy")
    return lambda: network.fit(
        x, labels, epochs=1, learning_rate=LEARNING_RATE, batch_size=batch, shuffle=False,
        verbose=0,
    )


def _torch_pass(torch, model, x, labels, batch, layout):
    steps = [
        torch_train_step(torch, model, _torch_input(torch, x[start : start + batch], layout),
                         torch.from_numpy(labels[start : start + batch]), LEARNING_RATE)
        for start in range(0, len(x), batch)
    ]

    def train():
        for step in steps:
            step()

    return train


def _epoch_check(x, labels, batch, torch, report):
    """Train float64 copies of a fresh SimpleCNN in both libraries on the same first
    batches, in the same order, and compare the parameters they end with."""
    count = min(len(x), CHECKED_STEPS * batch)
    x = x[:count].astype(np.float64)
    layers = _float64_copy(build(PRESETS["simplecnn"].layers(), x.shape[1:]))
    models = _torch_models(torch, layers)
    _fastcnn_pass(layers, x, labels[:count], batch)()
    for layout, model in models.items():
        _torch_pass(torch, model, x, labels[:count], batch, layout)()
        report.compare(
            f"SimpleCNN epoch, batch {batch}: fastcnn vs PyTorch {layout}, float64 "
            f"parameters after {count // batch} steps",
            named_arrays(layers),
            torch_arrays(model),
        )


def _epoch_table(settings, torch, report):
    rows = []
    source = None
    for batch in BATCH_SIZES:
        report.progress(f"network SimpleCNN epoch, batch {batch}")
        images, labels, _, _, source = load_images(settings.network_epoch_images[batch], 0)
        count = len(images) // batch * batch
        x, labels = normalise(images[:count]), labels[:count]
        layers = build(PRESETS["simplecnn"].layers(), x.shape[1:])
        runs = {"fastcnn": _fastcnn_pass(layers, x, labels, batch)}
        if torch is not None:
            _epoch_check(x, labels, batch, torch, report)
            for layout, model in _torch_models(torch, layers).items():
                runs[f"PyTorch {layout}"] = _torch_pass(torch, model, x, labels, batch, layout)
        # A pass is already many steps: one timed pass per block, no warm-up pass.
        seconds = interleaved(runs, dataclasses.replace(settings, warmup=0, min_repeats=1,
                                                        max_repeats=1))
        timings = {
            library: Timing(value * EPOCH_IMAGES / count, count, EPOCH_IMAGES)
            for library, value in seconds.items()
        }
        row = [str(batch), cell(timings["fastcnn"])]
        for layout in LAYOUTS:
            timing = timings.get(f"PyTorch {layout}", "PyTorch not installed")
            row.append(cell(timing, timings["fastcnn"]))
        if torch is not None:
            faster = min(seconds[f"PyTorch {layout}"] for layout in LAYOUTS)
            report.ratios.append(("Network epoch", f"SimpleCNN, batch {batch}", "PyTorch",
                                  faster / seconds["fastcnn"]))
        rows.append(row)
    return source, table(["batch", "fastcnn", "PyTorch NCHW", "PyTorch channels_last"], rows)


def networks_section(settings, libraries, report):
    torch = libraries.torch
    steps = _steps_table(settings, torch, report)
    source, epochs = _epoch_table(settings, torch, report)
    report.sections.append(
        "## Networks: one training step, and a SimpleCNN epoch (float32)\n\n"
        "SimpleCNN (`fastcnn.models.PRESETS['simplecnn']`, write-up 004's) and LeNet "
        "(`PRESETS['lenet']`) on 1×28×28 images; VGG-style (`fastcnn.models.vgg_cifar`: "
        "conv 3×3×32 → ReLU → conv 3×3×32 → ReLU → max-pool 2 → conv 3×3×64 → ReLU → "
        "conv 3×3×64 → ReLU → max-pool 2 → dense 10, padding 1) on 3×32×32 images. "
        "A step is a forward, the softmax cross-entropy on the logits, the backward and a "
        f"plain SGD update (learning rate {LEARNING_RATE}), on random images and labels. "
        "fastcnn: each layer's `forward` and `backward`, the first layer's input gradient "
        "skipped, as `Network.fit` does per batch; PyTorch: the same layers with the same "
        "weights, `cross_entropy`, `backward` and `optim.SGD`, the model and images in "
        "NCHW (contiguous) or channels_last memory. Times are per step, then "
        "(÷ fastcnn's). MFLOP per step counts the convolutions and dense layers three "
        "times (forward, weight gradient, input gradient, the first layer's included); "
        "GFLOP/s is that ÷ the time, and its share of the peak. Checked: the first "
        "timed step of each library starts from the same weights and gives the same "
        "float32 logits; float64 copies give the same logits and parameter gradients on "
        f"the first {CHECKED_SAMPLES} images "
        "(in float32 a ReLU input or max-pool near-tie that rounds the other way in one "
        "library moves a whole gradient element).\n\n"
        + steps
        + "\n\n### SimpleCNN epoch: 60,000 images\n\n"
        f"Scaled from a timed subset of {source} ([n/60,000]: n images timed, × 60,000/n), "
        "one pass in a fixed order. fastcnn: `Network.fit(epochs=1, shuffle=False)`; "
        "PyTorch: the step above over the same batches. Checked: both libraries train "
        f"their first {CHECKED_STEPS} batches in float64 from the same weights and end "
        "with the same parameters.\n\n"
        + epochs
    )
