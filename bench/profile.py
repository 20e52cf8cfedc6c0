"""Where a training step's time goes: fastcnn's layers one by one, and PyTorch's
operators (torch.profiler), for the networks of the networks section."""

import time

import numpy as np

from fastcnn import Convolutional, Dense
from fastcnn.losses import softmax_cross_entropy, softmax_cross_entropy_prime

from .measure import SEED
from .networks import CLASSES, LEARNING_RATE, LAYOUTS, NETWORKS, _torch_input, _torch_models, build
from .report import table
from .torch_baselines import torch_train_step

CASES = (("SimpleCNN", 64), ("SimpleCNN", 1), ("LeNet", 64), ("VGG-style", 64))
TORCH_OPERATORS = 8  # the most expensive ones shown


def _layer_flops(layer, batch, first):
    """Forward and backward FLOPs of a conv or dense layer (the first layer's backward
    skips its input gradient, as Network.fit does), or None for other layers."""
    if isinstance(layer, Convolutional):
        _, ho, wo = layer.output_shape
        forward = 2 * batch * ho * wo * layer.kernels.size
    elif isinstance(layer, Dense):
        forward = 2 * batch * layer.weights.size
    else:
        return None
    return forward, forward * (1 if first else 2)


def _layer_profile(layers, x, labels, steps):
    """(forward seconds, backward seconds) per layer: each layer's median over the steps."""
    layers[0].input_gradient = False
    forward = np.zeros((steps, len(layers)))
    backward = np.zeros((steps, len(layers)))
    for step in range(steps + 1):  # the first step warms up and is not kept
        output = x
        for index, layer in enumerate(layers):
            start = time.perf_counter()
            output = layer.forward(output)
            if step:
                forward[step - 1, index] = time.perf_counter() - start
        softmax_cross_entropy(labels, output)
        gradient = softmax_cross_entropy_prime(labels, output)
        for index in reversed(range(len(layers))):
            start = time.perf_counter()
            gradient = layers[index].backward(gradient, LEARNING_RATE)
            if step:
                backward[step - 1, index] = time.perf_counter() - start
    return np.median(forward, axis=0), np.median(backward, axis=0)


def _fastcnn_table(layers, x, labels, steps, peak):
    forward, backward = _layer_profile(layers, x, labels, steps)
    total = forward.sum() + backward.sum()
    rows = []
    for index, layer in enumerate(layers):
        flops = _layer_flops(layer, len(x), index == 0)
        rate = "—"
        if flops is not None:
            gflops = sum(flops) / (forward[index] + backward[index]) / 1e9
            rate = f"{gflops:.1f} ({gflops / peak:.0%})"
        rows.append([f"{index}: {layer!r}", f"{forward[index] * 1e3:.3f}",
                     f"{backward[index] * 1e3:.3f}",
                     f"{(forward[index] + backward[index]) / total:.0%}", rate])
    rows.append(["all layers", f"{forward.sum() * 1e3:.3f}", f"{backward.sum() * 1e3:.3f}",
                 "100%", ""])
    return table(["layer", "forward ms", "backward ms", "share", "GFLOP/s (% of peak)"], rows)


def _torch_table(torch, layers, x, labels, steps):
    """PyTorch's operators by self CPU time per step, in its faster layout."""
    models = _torch_models(torch, layers)
    runs = {layout: torch_train_step(torch, models[layout], _torch_input(torch, x, layout),
                                     torch.from_numpy(labels), LEARNING_RATE)
            for layout in LAYOUTS}
    best = {}
    for layout, run in runs.items():
        run()
        start = time.perf_counter()
        for _ in range(steps):
            run()
        best[layout] = (time.perf_counter() - start) / steps
    layout = min(best, key=best.get)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        for _ in range(steps):
            runs[layout]()
    events = sorted(profile.key_averages(), key=lambda event: event.self_cpu_time_total,
                    reverse=True)
    total = sum(event.self_cpu_time_total for event in events)
    rows = [[f"`{event.key}`", f"{event.self_cpu_time_total / steps / 1e3:.3f}",
             f"{event.self_cpu_time_total / total:.0%}"]
            for event in events[:TORCH_OPERATORS]]
    return layout, best[layout], table(["operator", "self CPU ms per step", "share"], rows)


def profile_section(settings, libraries, report):
    torch = libraries.torch
    factories = {name: (factory, shape) for name, factory, shape in NETWORKS}
    parts = []
    for name, batch in CASES:
        report.progress(f"profile {name}, batch {batch}")
        factory, shape = factories[name]
        rng = np.random.default_rng(SEED)
        x = rng.standard_normal((batch, *shape), dtype=np.float32)
        labels = rng.integers(0, CLASSES, batch)
        steps = settings.profile_steps[batch]
        layers = build(factory(), shape)
        text = (f"### {name}, batch {batch}\n\nfastcnn, each layer's median over {steps} "
                "steps:\n\n" + _fastcnn_table(layers, x, labels, steps, report.peak.gflops))
        if torch is not None:
            layout, seconds, operators = _torch_table(torch, layers, x, labels, steps)
            text += (f"\n\nPyTorch in its faster layout here ({layout}, "
                     f"{seconds * 1e3:.3f} ms per step without the profiler), the "
                     f"{TORCH_OPERATORS} operators with the most self CPU time (under "
                     "`torch.profiler`, which adds its own overhead):\n\n" + operators)
        parts.append(text)
    report.sections.append(
        "## Profile: where a training step's time goes (float32)\n\n"
        "The steps of the networks section, timed layer by layer (fastcnn: "
        "`time.perf_counter` around each layer's `forward` and `backward`, the "
        "backward including the SGD update; GFLOP/s counts the layer's forward, weight "
        "gradient and input gradient, the first layer's input gradient skipped as "
        "`Network.fit` skips it).\n\n" + "\n\n".join(parts)
    )
