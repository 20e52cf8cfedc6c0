"""PyTorch doing what fastcnn does, for timing and as a second oracle.

Every function takes the torch module as an argument: PyTorch is optional, and the
benchmark imports it once, where it decides whether it is installed.
"""

import fastcnn


LAYOUTS = ("NCHW", "channels_last")


def _tensor(torch, array, layout):
    """The array as a tensor in ``layout`` memory (NCHW shares the array's memory)."""
    tensor = torch.from_numpy(array)
    if layout == "channels_last" and tensor.dim() == 4:
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    return tensor


def faster_layout(seconds):
    """``seconds`` ({name: seconds}) with its "PyTorch NCHW" and "PyTorch channels_last"
    entries replaced by one "PyTorch" entry, the faster of the two."""
    layouts = [seconds.pop(f"PyTorch {layout}") for layout in LAYOUTS
               if f"PyTorch {layout}" in seconds]
    if layouts:
        seconds["PyTorch"] = min(layouts)
    return seconds


def torch_conv(torch, x, w, bias, grad_y, stride, padding, layout="NCHW"):
    """(forward, forward_backward) closures over PyTorch tensors holding the arrays in
    ``layout`` memory ("NCHW" or "channels_last")."""
    functional = torch.nn.functional
    x_t, w_t, bias_t = (_tensor(torch, a, layout).requires_grad_() for a in (x, w, bias))
    grad_y_t = _tensor(torch, grad_y, layout)

    def forward():
        with torch.no_grad():
            return functional.conv2d(x_t, w_t, bias_t, stride=stride, padding=padding)

    def forward_backward():
        for tensor in (x_t, w_t, bias_t):
            tensor.grad = None
        y = functional.conv2d(x_t, w_t, bias_t, stride=stride, padding=padding)
        y.backward(grad_y_t)
        return {
            "y": y.detach().numpy(),
            "grad_w": w_t.grad.numpy(),
            "grad_x": x_t.grad.numpy(),
            "grad_b": bias_t.grad.numpy(),
        }

    return forward, forward_backward


def torch_pool(torch, x, grad_y, layout="NCHW"):
    """A closure: 2x2 max-pool with indices and its backward, on tensors in ``layout``
    memory; returns the arrays."""
    x_t = _tensor(torch, x, layout).requires_grad_()
    grad_y_t = _tensor(torch, grad_y, layout)

    def forward_backward():
        x_t.grad = None
        y, indices = torch.nn.functional.max_pool2d(x_t, 2, return_indices=True)
        y.backward(grad_y_t)
        return {"y": y.detach().numpy(), "argmax": indices.numpy(), "grad_x": x_t.grad.numpy()}

    return forward_backward


def torch_model(torch, layers):
    """An nn.Sequential doing what the built fastcnn ``layers`` do, with their weights
    and in their dtype.

    Dense's weights (in, units) become Linear's weight (units, in). Raises TypeError
    for a layer without a counterpart here.
    """
    nn = torch.nn
    activations = {fastcnn.ReLU: nn.ReLU, fastcnn.Tanh: nn.Tanh, fastcnn.Flatten: nn.Flatten}
    modules = []
    for layer in layers:
        if isinstance(layer, fastcnn.Convolutional):
            depth, channels, kh, kw = layer.kernels.shape
            weight, bias = layer.kernels, layer.biases
            module = nn.Conv2d(channels, depth, (kh, kw), layer.stride, layer.padding,
                               dtype=torch.from_numpy(weight).dtype)
        elif isinstance(layer, fastcnn.Dense):
            weight, bias = layer.weights.T, layer.bias
            module = nn.Linear(*layer.weights.shape, dtype=torch.from_numpy(weight).dtype)
        elif isinstance(layer, fastcnn.MaxPool2D):
            modules.append(nn.MaxPool2d(layer.size, layer.stride))
            continue
        elif type(layer) in activations:
            modules.append(activations[type(layer)]())
            continue
        else:
            raise TypeError(f"the benchmark has no PyTorch counterpart for {layer!r}")
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(weight))
            module.bias.copy_(torch.from_numpy(bias))
        modules.append(module)
    return nn.Sequential(*modules)


def torch_arrays(model, gradients=False):
    """The model's parameters (or, with ``gradients``, their gradients) as arrays,
    named and oriented as fastcnn's ``named_arrays`` names them."""
    arrays = {}
    for index, module in enumerate(m for m in model if hasattr(m, "weight")):
        weight, bias = module.weight, module.bias
        if gradients:
            weight, bias = weight.grad, bias.grad
        weight, bias = weight.detach().numpy(), bias.detach().numpy()
        linear = weight.ndim == 2
        names = ("weights", "bias") if linear else ("kernels", "biases")
        arrays[f"{index}.{names[0]}"] = weight.T if linear else weight
        arrays[f"{index}.{names[1]}"] = bias
    return arrays


def named_arrays(layers, gradients=False):
    """fastcnn's counterpart of torch_arrays: {"<index>.<name>": array}, the index
    counting only the layers with parameters."""
    arrays = {}
    for index, layer in enumerate(layer for layer in layers if layer.parameters):
        source = layer.gradients if gradients else layer.parameters
        arrays.update((f"{index}.{name}", value) for name, value in source.items())
    return arrays


def torch_train_step(torch, model, x, labels, learning_rate):
    """A closure: one SGD step of ``model`` on x (N, C, H, W) and integer labels (N,)
    (forward, mean cross-entropy on the logits, backward, update); returns the logits."""
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    cross_entropy = torch.nn.functional.cross_entropy

    def step():
        optimizer.zero_grad()
        logits = model(x)
        cross_entropy(logits, labels).backward()
        optimizer.step()
        return logits

    return step
