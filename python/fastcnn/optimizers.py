"""Optimizers: how a layer turns a gradient into a parameter update.

A layer's ``backward`` computes its gradients, then hands each (parameter, gradient)
pair to ``optimizer.update(parameter, gradient, learning_rate, state)``, which changes
the parameter in place. ``state`` is a dict that the layer keeps for that one parameter
(momentum buffers, Adam's moments), so one optimizer object can serve every layer of a
network and its state still belongs to the parameter it describes.

The learning rate is not part of the optimizer: it comes from ``backward``, as in the
write-ups. The update rules match ``torch.optim.SGD`` and ``torch.optim.Adam``
(weight decay is added to the gradient, on every parameter).
"""

import numpy as np

from . import _checks, kernels

__all__ = ["Optimizer", "GradientDescent", "SGD", "Adam", "get"]


def _non_negative(name, value):
    return _checks.number(name, value, minimum=0)


def _in_unit_interval(name, value):
    return _checks.number(name, value, minimum=0, below=1)


class Optimizer:
    """Base class: subclasses implement ``update`` and ``config``, and name in
    ``state_kinds`` what ``update`` keeps per parameter once it has taken a step:
    "array" for a buffer shaped like the parameter, "count" for a positive int
    (saving checks a model file against it)."""

    state_kinds = {}

    def update(self, parameter, gradient, learning_rate, state):
        """Change ``parameter`` in place from ``gradient`` (same shape and dtype).

        ``state`` is this parameter's own dict, empty on the first step.
        """
        raise NotImplementedError

    def config(self):
        """The constructor arguments, as a JSON-able dict."""
        return {}

    def __repr__(self):
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.config().items())
        return f"{type(self).__name__}({arguments})"


class GradientDescent(Optimizer):
    """The write-ups' rule and fastcnn's default: ``p -= learning_rate * g``."""

    state_kinds = {}

    def update(self, parameter, gradient, learning_rate, state):
        # One C++ pass when it can (a third of the time of NumPy's two passes and
        # temporary on a batch-1 step's small arrays), the same numbers either way.
        if not kernels.gradient_descent_update(parameter, gradient, learning_rate):
            parameter -= learning_rate * gradient


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay.

    g += weight_decay * p;  v = momentum * v + g;  p -= lr * (g + momentum * v if
    nesterov else v). With the defaults it is plain gradient descent.
    """

    state_kinds = {"velocity": "array"}

    def __init__(self, momentum=0.0, nesterov=False, weight_decay=0.0):
        self.momentum = _in_unit_interval("momentum", momentum)
        self.nesterov = bool(nesterov)
        self.weight_decay = _non_negative("weight_decay", weight_decay)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs a momentum > 0")

    def update(self, parameter, gradient, learning_rate, state):
        if self.weight_decay:
            gradient = gradient + self.weight_decay * parameter
        if self.momentum:
            velocity = state.get("velocity")
            if velocity is None:
                velocity = state["velocity"] = np.zeros_like(parameter)
            velocity *= self.momentum
            velocity += gradient
            if self.nesterov:
                gradient = gradient + self.momentum * velocity
            else:
                gradient = velocity
        parameter -= learning_rate * gradient

    def config(self):
        return {
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
        }


class Adam(Optimizer):
    """Adam (Kingma and Ba), with optional L2 weight decay added to the gradient.

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
    """

    state_kinds = {"step": "count", "mean": "array", "square_mean": "array"}

    def __init__(self, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        self.beta1 = _in_unit_interval("beta1", beta1)
        self.beta2 = _in_unit_interval("beta2", beta2)
        self.eps = _non_negative("eps", eps)
        self.weight_decay = _non_negative("weight_decay", weight_decay)

    def update(self, parameter, gradient, learning_rate, state):
        if self.weight_decay:
            gradient = gradient + self.weight_decay * parameter
        if not state:
            state["step"] = 0
            state["mean"] = np.zeros_like(parameter)
            state["square_mean"] = np.zeros_like(parameter)
        state["step"] += 1
        step, mean, square_mean = state["step"], state["mean"], state["square_mean"]
        mean *= self.beta1
        mean += (1 - self.beta1) * gradient
        square_mean *= self.beta2
        square_mean += (1 - self.beta2) * gradient * gradient
        denominator = np.sqrt(square_mean / (1 - self.beta2**step))
        denominator += self.eps
        parameter -= (learning_rate / (1 - self.beta1**step)) * mean / denominator

    def config(self):
        return {
            "beta1": self.beta1,
            "beta2": self.beta2,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
        }


_BY_NAME = {"gd": GradientDescent, "gradient_descent": GradientDescent, "sgd": SGD, "adam": Adam}


def get(optimizer):
    """An Optimizer from an instance (returned as it is) or a name ("sgd", "adam", "gd")."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in _BY_NAME:
        return _BY_NAME[optimizer.lower()]()
    raise ValueError(
        f"unknown optimizer {optimizer!r}: give an Optimizer instance "
        f"or one of {sorted(_BY_NAME)}"
    )
