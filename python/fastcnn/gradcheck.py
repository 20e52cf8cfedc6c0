"""``gradient_check``: a layer's backward against central finite differences.

Works on any layer with the write-ups' ``forward(input)`` /
``backward(output_gradient, learning_rate)``, fastcnn's built-in layers and a user's
own ``Layer`` subclass alike: the way to prove a new layer's backward before training
with it (CS231n's "gradient checking").
"""

import copy

import numpy as np

__all__ = ["GradientCheck", "gradient_check"]

# Below this fraction of a gradient's largest magnitude, an element's error is measured
# against that fraction instead of its own size: a gradient that is zero in exact
# arithmetic would otherwise be judged by its rounding noise.
_SCALE_FLOOR = 1e-3


class GradientCheck(dict):
    """Name -> the largest relative error of that gradient ("input", then each
    parameter's name), with ``worst``: name -> (index, analytic, numerical) of the element
    where it occurs. ``str()`` of it is a table of both."""

    def __init__(self, errors, worst):
        super().__init__(errors)
        self.worst = worst

    def __str__(self):
        lines = []
        for name, error in self.items():
            index, analytic, numerical = self.worst[name]
            lines.append(
                f"{name}: max relative error {error:.3g} at index {index} "
                f"(backward {analytic:.10g}, finite differences {numerical:.10g})"
            )
        return "\n".join(lines)


def gradient_check(layer, x, *, step=1e-6, seed=0, training=True):
    """Compare ``layer``'s backward with central finite differences, in float64.

    The loss is a random projection of the output, ``loss = sum(forward(x) * r)`` with
    r ~ N(0, 1) drawn from ``seed``, so ``backward(r, 0.0)`` must return d loss / d x
    and leave d loss / d p in ``layer.gradients`` for every ``p`` in
    ``layer.parameters``. Each element of x and of every parameter is moved by
    +-``step`` and the loss difference is taken output by output,
    ``sum((forward(x + step) - forward(x - step)) * r) / (2 step)``, which keeps its
    rounding error near that of the outputs themselves.

    The check runs on a deep copy of ``layer`` converted to float64 (``astype``, when
    the layer has it), with ``training`` set as given, so the layer passed in is left
    exactly as it was. Layers that draw random numbers from numpy Generators they hold
    (Dropout's ``rng``) get the same draws at every evaluation, so one dropout mask is
    checked. BatchNorm in training mode is checked with its batch statistics, which
    depend on x, as they should.

    x: the layer's input, any shape the layer accepts (converted to float64).
    Returns a GradientCheck: name -> the largest relative error over that gradient's
    elements, CS231n's ``|a - n| / max(|a|, |n|, tiny)`` with a the analytic and n the
    numerical value and tiny = 1e-3 of the gradient's largest |a| or |n| (so elements
    that should be 0 are not judged by rounding noise); ``.worst[name]`` holds the
    index of the worst element and both values there. About 1e-7 or less is right; a
    wrong backward gives errors near 1. Cost: two forward passes per element of x and
    of the parameters.

    Raises TypeError when ``layer`` lacks forward/backward, ValueError when backward
    returns nothing or the wrong shape, or leaves no gradient for a parameter.
    """
    for method in ("forward", "backward"):
        if not callable(getattr(layer, method, None)):
            raise TypeError(
                "gradient_check needs a layer with forward(input) and "
                f"backward(output_gradient, learning_rate), got {layer!r}"
            )
    if not (isinstance(step, (int, float)) and not isinstance(step, bool) and step > 0):
        raise ValueError(f"step must be a positive number, got {step!r}")
    layer = copy.deepcopy(layer)
    if callable(getattr(layer, "astype", None)):
        layer.astype(np.float64)
    layer.training = training
    # Built-in layers may skip the input gradient when first in a network.
    if hasattr(layer, "input_gradient"):
        layer.input_gradient = True
    x = np.array(x, dtype=np.float64)
    generators = _generator_states(layer)

    def forward(input):
        for generator, state in generators:
            generator.bit_generator.state = state
        # A copy: the output may be a view of the input (Flatten), which moves next.
        return np.array(layer.forward(input), dtype=np.float64, copy=True)

    output = forward(x)
    projection = np.random.default_rng(seed).standard_normal(output.shape)
    parameters = dict(getattr(layer, "parameters", {}))
    before = {name: np.array(p, copy=True) for name, p in parameters.items()}
    grad_x = layer.backward(projection.copy(), 0.0)
    gradients = dict(getattr(layer, "gradients", {}))
    for name, parameter in parameters.items():
        parameter[...] = before[name]  # in case an optimizer moved it despite rate 0

    name = type(layer).__name__
    if grad_x is None:
        raise ValueError(f"{name}.backward returned None instead of the input gradient")
    grad_x = np.asarray(grad_x, dtype=np.float64)
    if grad_x.shape != x.shape:
        raise ValueError(
            f"{name}.backward returned a gradient of shape {grad_x.shape} for an input of "
            f"shape {x.shape}"
        )
    analytic = {"input": grad_x}
    for key, parameter in parameters.items():
        if key not in gradients:
            raise ValueError(f"{name}.backward left no gradient for its parameter {key!r}")
        gradient = np.asarray(gradients[key], dtype=np.float64)
        if gradient.shape != parameter.shape:
            raise ValueError(
                f"{name}'s gradient of {key!r} has shape {gradient.shape}, the parameter "
                f"{parameter.shape}"
            )
        analytic[key] = gradient

    numerical = {"input": _numerical_gradient(lambda: forward(x), x, projection, step)}
    for key, parameter in parameters.items():
        numerical[key] = _numerical_gradient(lambda: forward(x), parameter, projection, step)

    errors, worst = {}, {}
    for key in analytic:
        errors[key], worst[key] = _largest_relative_error(analytic[key], numerical[key])
    return GradientCheck(errors, worst)


def _generator_states(layer):
    """(generator, its state) for every numpy Generator the layer holds as an attribute."""
    held = getattr(layer, "__dict__", {}).values()
    return [(g, g.bit_generator.state) for g in held if isinstance(g, np.random.Generator)]


def _numerical_gradient(forward, array, projection, step):
    """d sum(forward() * projection) / d array by central differences, moving ``array``
    in place (and putting each element back)."""
    gradient = np.zeros(array.shape, dtype=np.float64)
    for index in np.ndindex(array.shape):
        original = array[index]
        array[index] = original + step
        plus = forward()
        array[index] = original - step
        minus = forward()
        array[index] = original
        gradient[index] = np.sum((plus - minus) * projection) / (2 * step)
    return gradient


def _largest_relative_error(analytic, numerical):
    """(the largest relative error, (its index, analytic, numerical)) of one gradient."""
    if analytic.size == 0:
        return 0.0, ((), 0.0, 0.0)
    magnitude = np.maximum(np.abs(analytic), np.abs(numerical))
    tiny = max(_SCALE_FLOOR * float(magnitude.max()), np.finfo(np.float64).tiny)
    error = np.abs(analytic - numerical) / np.maximum(magnitude, tiny)
    # NaN counts as the worst possible error.
    error = np.where(np.isnan(error), np.inf, error)
    flat = int(np.argmax(error))
    index = tuple(int(i) for i in np.unravel_index(flat, analytic.shape))
    return float(error.flat[flat]), (index, float(analytic[index]), float(numerical[index]))
