"""Whole networks against PyTorch (float64): the forward output, the loss, and every
parameter after training steps with each optimizer. Skipped without PyTorch."""

import numpy as np
import pytest

from fastcnn import Network, layers
from fastcnn.optimizers import SGD, Adam, GradientDescent

torch = pytest.importorskip("torch")
nn = torch.nn


def conv_net():
    return [
        layers.Convolutional(6, 3, stride=2, padding=1),
        layers.ReLU(),
        layers.MaxPool2D(2),
        layers.Convolutional(4, (3, 2), padding=(1, 0)),
        layers.Tanh(),
        layers.AvgPool2D(2, stride=1),
        layers.Flatten(),
        layers.Dense(10),
    ]


def writeup_002_net():
    return [
        layers.Convolutional(3, 3),
        layers.Sigmoid(),
        layers.Flatten(),
        layers.Dense(8),
        layers.Tanh(),
        layers.Dense(5),
        layers.Sigmoid(),
    ]


def softmax_net():
    return [
        layers.Flatten(),
        layers.Dense(7),
        layers.ReLU(),
        layers.Dropout(0.0),
        layers.Dense(5),
        layers.Softmax(),
    ]


def to_torch(layer):
    """The PyTorch module computing the same function, with the same parameters."""
    if isinstance(layer, layers.Convolutional):
        module = nn.Conv2d(
            layer.kernels.shape[1], layer.depth, layer.kernel_size,
            stride=layer.stride, padding=layer.padding, dtype=torch.float64,
        )
        module.weight.data = torch.tensor(layer.kernels)
        module.bias.data = torch.tensor(layer.biases)
        return module
    if isinstance(layer, layers.Dense):
        module = nn.Linear(*layer.weights.shape, dtype=torch.float64)
        module.weight.data = torch.tensor(layer.weights.T.copy())
        module.bias.data = torch.tensor(layer.bias)
        return module
    simple = {
        layers.ReLU: nn.ReLU, layers.Tanh: nn.Tanh, layers.Sigmoid: nn.Sigmoid,
        layers.Flatten: nn.Flatten, layers.Dropout: nn.Identity,
    }
    if type(layer) in simple:
        return simple[type(layer)]()
    if isinstance(layer, layers.MaxPool2D):
        return nn.MaxPool2d(layer.size, layer.stride)
    if isinstance(layer, layers.AvgPool2D):
        return nn.AvgPool2d(layer.size, layer.stride)
    if isinstance(layer, layers.Softmax):
        return nn.Softmax(dim=-1)
    raise AssertionError(f"no PyTorch twin for {layer!r}")


def torch_parameters(module, layer):
    """The module's parameters in fastcnn's names and orientation."""
    if isinstance(layer, layers.Convolutional):
        return {"kernels": module.weight.detach().numpy(), "biases": module.bias.detach().numpy()}
    if isinstance(layer, layers.Dense):
        return {"weights": module.weight.detach().numpy().T, "bias": module.bias.detach().numpy()}
    return {}


def torch_loss(name, output, x_labels, one_hot):
    if name == "softmax_cross_entropy":
        return nn.functional.cross_entropy(output, x_labels)
    if name == "cross_entropy":
        return nn.functional.nll_loss(torch.log(output), x_labels)
    if name == "binary_cross_entropy":
        return nn.functional.binary_cross_entropy(output, one_hot)
    return nn.functional.mse_loss(output, one_hot)


def torch_optimizer(optimizer, parameters, learning_rate):
    if isinstance(optimizer, Adam):
        return torch.optim.Adam(
            parameters, learning_rate, betas=(optimizer.beta1, optimizer.beta2),
            eps=optimizer.eps, weight_decay=optimizer.weight_decay,
        )
    momentum = getattr(optimizer, "momentum", 0.0)
    return torch.optim.SGD(
        parameters, learning_rate, momentum=momentum,
        nesterov=getattr(optimizer, "nesterov", False),
        weight_decay=getattr(optimizer, "weight_decay", 0.0),
    )


CASES = [
    pytest.param(conv_net, "softmax_cross_entropy", (2, 12, 12), id="conv-relu-pool-tanh-avgpool-dense"),
    pytest.param(writeup_002_net, "binary_cross_entropy", (1, 8, 8), id="writeup002-sigmoid-bce"),
    pytest.param(writeup_002_net, "mse", (1, 8, 8), id="writeup002-mse"),
    pytest.param(softmax_net, "cross_entropy", (3, 4, 4), id="dense-softmax-cross-entropy"),
]

OPTIMIZERS = [
    pytest.param(GradientDescent(), id="gradient-descent"),
    pytest.param(SGD(momentum=0.9, nesterov=True, weight_decay=0.01), id="sgd-nesterov-decay"),
    pytest.param(Adam(weight_decay=0.001), id="adam"),
]


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("make_layers, loss, sample_shape", CASES)
def test_network_matches_pytorch(make_layers, loss, sample_shape, optimizer, rng):
    batch, steps, learning_rate = 6, 3, 0.05
    network = Network(make_layers(), dtype=np.float64).use(loss)
    x = rng.standard_normal((batch, *sample_shape))
    classes = 10 if make_layers is conv_net else 5
    labels = rng.integers(0, classes, batch)
    one_hot = np.eye(classes)[labels]
    network.predict(x)  # builds every layer
    modules = [to_torch(layer) for layer in network.layers]
    model = nn.Sequential(*modules)

    x_torch = torch.tensor(x)
    output = model(x_torch)
    np.testing.assert_allclose(network.predict(x), output.detach().numpy(), rtol=1e-10, atol=1e-12)
    expected_loss = torch_loss(loss, output, torch.tensor(labels), torch.tensor(one_hot))
    assert network.evaluate(x, labels)["loss"] == pytest.approx(expected_loss.item(), rel=1e-10)

    targets = labels if loss in ("softmax_cross_entropy", "cross_entropy") else one_hot
    history = network.fit(
        x, targets, steps, learning_rate, batch_size=batch, optimizer=optimizer,
        shuffle=False, verbose=0,
    )
    optim = torch_optimizer(optimizer, model.parameters(), learning_rate)
    torch_losses = []
    for _ in range(steps):
        optim.zero_grad()
        step_loss = torch_loss(loss, model(x_torch), torch.tensor(labels), torch.tensor(one_hot))
        step_loss.backward()
        optim.step()
        torch_losses.append(step_loss.item())
    np.testing.assert_allclose(history["loss"], torch_losses, rtol=1e-9)
    compared = 0
    for layer, module in zip(network.layers, modules):
        for name, expected in torch_parameters(module, layer).items():
            np.testing.assert_allclose(
                layer.parameters[name], expected, rtol=1e-9, atol=1e-12,
                err_msg=f"{layer!r}.{name} after {steps} steps",
            )
            compared += 1
    assert compared >= 4
