"""Losses as the write-ups' (loss, loss_prime) pairs.

``loss(y_true, y_pred)`` returns the mean over the batch as a Python float (summed in
float64); ``loss_prime(y_true, y_pred)`` returns d loss / d y_pred, shaped and typed like
``y_pred``, and so already carries the 1/N: layers sum over the batch and never divide.

``y_pred`` is (N, K) for a batch or (K,) for one sample. ``y_true`` is either shaped
like ``y_pred`` (one-hot rows, probabilities, regression targets) or integer class
labels shaped like ``y_pred`` without its last axis; with one output column, labels are
the 0/1 targets themselves.
"""

import numpy as np

from . import kernels
from .activations import softmax

__all__ = [
    "mse",
    "mse_prime",
    "binary_cross_entropy",
    "binary_cross_entropy_prime",
    "cross_entropy",
    "cross_entropy_prime",
    "softmax_cross_entropy",
    "softmax_cross_entropy_prime",
    "get",
]


def _float_array(y_pred):
    y_pred = np.asarray(y_pred)
    if y_pred.dtype not in (np.float32, np.float64):
        y_pred = y_pred.astype(np.float64)
    if y_pred.size == 0:
        raise ValueError(f"the predictions are empty (shape {y_pred.shape}): a loss needs samples")
    return y_pred


def _targets(y_true, y_pred):
    """y_true as an array shaped and typed like y_pred (integer labels become one-hot).

    Targets of one axis fewer than one-column predictions, (N,) for (N, 1), are read
    as class labels 0/1 only when they are integers; other such targets are refused
    with the reshape that fits (broadcasting them would compare every target with
    every prediction)."""
    y_true = np.asarray(y_true)
    if y_true.shape == y_pred.shape:
        return y_true.astype(y_pred.dtype, copy=False)
    if y_pred.ndim == 0 or y_true.shape != y_pred.shape[:-1]:
        raise ValueError(
            f"targets of shape {y_true.shape} do not fit predictions of shape "
            f"{y_pred.shape}: give targets shaped like the predictions (one-hot rows) "
            f"or integer class labels shaped {y_pred.shape[:-1]}"
        )
    classes = y_pred.shape[-1]
    if not np.issubdtype(y_true.dtype, np.integer):
        whole = y_true.dtype.kind in "fb" and np.array_equal(y_true, np.round(y_true))
        if not whole or classes == 1:
            fits = f" (y.reshape{y_pred.shape})" if y_true.size == y_pred.size else (
                f", or integer class labels shaped {y_pred.shape[:-1]}")
            raise ValueError(
                f"targets of shape {y_true.shape} and dtype {y_true.dtype} do not fit "
                f"predictions of shape {y_pred.shape}: give targets shaped like the "
                f"predictions{fits}"
            )
        raise TypeError(
            f"class labels must be integers, got dtype {y_true.dtype} "
            f"(targets of shape {y_true.shape} for predictions of shape {y_pred.shape}): "
            "pass y.astype(int), or one-hot rows shaped like the predictions"
        )
    limit = max(classes, 2)  # one output column: the labels 0/1 are the targets
    if y_true.size and (y_true.min() < 0 or y_true.max() >= limit):
        raise ValueError(
            f"class labels must be in [0, {limit - 1}] for {classes} output(s), "
            f"got labels from {y_true.min()} to {y_true.max()}"
        )
    if classes == 1:
        return y_true[..., None].astype(y_pred.dtype)
    return np.eye(classes, dtype=y_pred.dtype)[y_true]


def _probabilities(name, y_pred, fix):
    """y_pred, refused unless every value is a probability in [0, 1]."""
    if y_pred.size and not (y_pred.min() >= 0 and y_pred.max() <= 1):
        raise ValueError(
            f"{name} takes probabilities in [0, 1], got predictions from "
            f"{y_pred.min():g} to {y_pred.max():g}: {fix}"
        )
    return y_pred


_NEEDS_SIGMOID = (
    "end the network with a Sigmoid() layer, or train on the raw outputs with "
    "\"softmax_cross_entropy\" (two or more output columns)"
)
_NEEDS_SOFTMAX = (
    "end the network with a Softmax() layer, or (better) drop it and use "
    "\"softmax_cross_entropy\", which takes the raw outputs (logits)"
)


def _batch_size(y_pred):
    return y_pred.shape[0] if y_pred.ndim >= 2 else 1


def mse(y_true, y_pred):
    """Mean squared error, averaged over every element (so over the batch too)."""
    y_pred = _float_array(y_pred)
    difference = y_pred.astype(np.float64) - _targets(y_true, y_pred)
    return float(np.mean(difference * difference))


def mse_prime(y_true, y_pred):
    """2 (y_pred - y_true) / y_pred.size."""
    y_pred = _float_array(y_pred)
    return (2 / y_pred.size) * (y_pred - _targets(y_true, y_pred))


# Probabilities are clipped to [EPSILON, 1 - EPSILON] before their logarithm or their
# inverse is taken, as Keras's backend.epsilon() does (1e-7), so a confident wrong answer
# costs -log(1e-7) = 16.1 and its gradient stays near 1e7 in float32 too.
EPSILON = 1e-7


def _clip_probabilities(p):
    return np.clip(p, p.dtype.type(EPSILON), p.dtype.type(1 - EPSILON))


def binary_cross_entropy(y_true, y_pred):
    """-mean(y log p + (1 - y) log(1 - p)) over every element; p are probabilities."""
    y_pred = _probabilities("binary_cross_entropy", _float_array(y_pred), _NEEDS_SIGMOID)
    y = _targets(y_true, y_pred).astype(np.float64)
    p = _clip_probabilities(y_pred).astype(np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def binary_cross_entropy_prime(y_true, y_pred):
    """((1 - y) / (1 - p) - y / p) / y_pred.size."""
    y_pred = _probabilities("binary_cross_entropy", _float_array(y_pred), _NEEDS_SIGMOID)
    y = _targets(y_true, y_pred)
    p = _clip_probabilities(y_pred)
    return ((1 - y) / (1 - p) - y / p) / y_pred.size


def cross_entropy(y_true, y_pred):
    """-sum(y log p) / N on probabilities (the output of a Softmax layer)."""
    y_pred = _probabilities("cross_entropy", _float_array(y_pred), _NEEDS_SOFTMAX)
    y = _targets(y_true, y_pred).astype(np.float64)
    p = _clip_probabilities(y_pred).astype(np.float64)
    return float(-np.sum(y * np.log(p)) / _batch_size(y_pred))


def cross_entropy_prime(y_true, y_pred):
    """-y / p / N."""
    y_pred = _probabilities("cross_entropy", _float_array(y_pred), _NEEDS_SOFTMAX)
    y = _targets(y_true, y_pred)
    return -y / _clip_probabilities(y_pred) / _batch_size(y_pred)


def _class_labels(y_true, logits):
    """(labels (N,), logits (N, K)) when y_true holds integer class labels for logits
    (N, K) or (K,) with K >= 2, checked to be in range; None for any other targets,
    which take the general path through _targets."""
    y_true = np.asarray(y_true)
    if (logits.ndim not in (1, 2) or logits.shape[-1] < 2 or y_true.shape != logits.shape[:-1]
            or not np.issubdtype(y_true.dtype, np.integer)):
        return None
    if y_true.size and (y_true.min() < 0 or y_true.max() >= logits.shape[-1]):
        _targets(y_true, logits)  # raises, naming the range
    return y_true.reshape(-1), logits.reshape(-1, logits.shape[-1])


def softmax_cross_entropy(y_true, logits):
    """Cross-entropy of softmax(logits), computed with log-sum-exp (finite for any
    finite logits). Use it on the raw outputs of the last Dense layer, with no Softmax
    layer: it is the stable default for classification. A logit of -inf masks its
    class: it gets probability 0 and adds nothing where its target is 0 (as PyTorch's
    cross_entropy)."""
    logits = _float_array(logits)
    labels = _class_labels(y_true, logits)
    if labels is not None:  # one C++ pass, the same one Network.fit takes
        return kernels.softmax_cross_entropy(labels[1], labels[0])[0]
    y = _targets(y_true, logits).astype(np.float64)
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    log_p = z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))
    # 0 * log 0 is 0 here (a masked class that is not the target), not NaN.
    terms = np.multiply(y, log_p, out=np.zeros_like(log_p), where=y != 0)
    return float(-np.sum(terms) / _batch_size(logits))


def softmax_cross_entropy_prime(y_true, logits):
    """(softmax(logits) * sum(y) - y) / N, which is (p - y) / N for one-hot rows."""
    logits = _float_array(logits)
    labels = _class_labels(y_true, logits)
    if labels is not None:
        return kernels.softmax_cross_entropy(labels[1], labels[0])[1].reshape(logits.shape)
    y = _targets(y_true, logits)
    p = softmax(logits)
    return (p * y.sum(axis=-1, keepdims=True) - y) / _batch_size(logits)


_PAIRS = {
    "mse": (mse, mse_prime),
    "binary_cross_entropy": (binary_cross_entropy, binary_cross_entropy_prime),
    "cross_entropy": (cross_entropy, cross_entropy_prime),
    "softmax_cross_entropy": (softmax_cross_entropy, softmax_cross_entropy_prime),
}


def get(loss):
    """The (loss, loss_prime) pair for a loss's name or for one of this module's losses."""
    if isinstance(loss, str):
        if loss not in _PAIRS:
            raise ValueError(f"unknown loss {loss!r}: choose one of {sorted(_PAIRS)}")
        return _PAIRS[loss]
    for pair in _PAIRS.values():
        if loss is pair[0]:
            return pair
    raise ValueError(
        f"no derivative is known for {loss!r}: give the pair, use(loss, loss_prime)"
    )

