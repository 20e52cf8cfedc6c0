"""Activation functions and their derivatives, element-wise on arrays of any shape.

Each ``f_prime(x)`` is the derivative of ``f`` at ``x`` (the write-ups' one-argument
form), so any pair can be given to :class:`fastcnn.layers.Activation`. ``softmax`` is
not element-wise: its layer, :class:`fastcnn.layers.Softmax`, carries the full
Jacobian-vector product instead of a derivative function.
"""

import numpy as np


def relu(x):
    """max(x, 0)."""
    return np.maximum(x, 0)


def relu_prime(x):
    """1 where x > 0, else 0 (the subgradient 0 is taken at x = 0)."""
    return (x > 0).astype(x.dtype)


def tanh(x):
    """The hyperbolic tangent."""
    return np.tanh(x)


def tanh_prime(x):
    """1 - tanh(x)^2."""
    return 1 - np.tanh(x) ** 2


def sigmoid(x):
    """1 / (1 + exp(-x)), computed without overflow for large |x|."""
    x = np.asarray(x)
    # exp(-|x|) is at most 1, so neither branch can overflow.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_prime(x):
    """sigmoid(x) * (1 - sigmoid(x))."""
    s = sigmoid(x)
    return s * (1 - s)


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along ``axis`` (the classes; the last axis by default).

    The maximum is subtracted first, so huge inputs give no overflow.
    """
    x = np.asarray(x)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)
