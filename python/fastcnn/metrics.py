"""Classification metrics on integer labels: accuracy, confusion matrix, macro-F1.

``labels_from_outputs`` and ``labels_from_targets`` turn a network's outputs and its
training targets into labels (the argmax of a row; a 0.5 threshold for one column).
"""

import numpy as np

__all__ = [
    "accuracy",
    "confusion_matrix",
    "macro_f1",
    "precision_recall_f1",
    "labels_from_outputs",
    "labels_from_targets",
    "labels_fit_outputs",
]


def labels_from_outputs(outputs):
    """(N, K) scores or probabilities -> (N,) labels: argmax, or p > 0.5 when K == 1."""
    outputs = np.asarray(outputs)
    if outputs.ndim == 0:
        raise ValueError("outputs must have a class axis, got a scalar")
    if outputs.shape[-1] == 1:
        return (outputs[..., 0] > 0.5).astype(np.int64)
    return outputs.argmax(axis=-1)


def labels_from_targets(targets):
    """Training targets -> (N,) integer labels, or None when they are not classes.

    Rows (N, K > 1) of class probabilities (one-hot, or non-negative summing to 1) give
    their argmax; integer labels (N,) are returned as they are; one column of 0/1
    values gives those values. Anything else (regression targets) gives None.
    """
    targets = np.asarray(targets)
    if targets.ndim == 2 and targets.shape[1] > 1:
        rows = targets.astype(np.float64)
        if len(rows) and (rows.min() < 0 or not np.allclose(rows.sum(axis=1), 1, atol=1e-3)):
            return None
        return targets.argmax(axis=1)
    if targets.ndim == 2 and targets.shape[1] == 1:
        targets = targets[:, 0]
    if targets.ndim != 1:
        return None
    if np.issubdtype(targets.dtype, np.integer) or targets.dtype == bool:
        return targets.astype(np.int64)
    if np.isin(targets, (0, 1)).all():
        return targets.astype(np.int64)
    return None


def labels_fit_outputs(labels, outputs):
    """Whether ``labels`` can be classes of ``outputs`` (N, K): 0..K-1, or 0/1 when K == 1."""
    outputs = np.asarray(outputs)
    if labels is None or outputs.ndim != 2 or len(labels) != len(outputs):
        return False
    return not len(labels) or (labels.min() >= 0 and labels.max() < max(outputs.shape[1], 2))


def _labels(name, labels):
    labels = np.asarray(labels)
    if labels.ndim != 1 or not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise ValueError(
            f"{name} must be a 1-D array of integer labels, got dtype {labels.dtype} "
            f"and shape {labels.shape}"
        )
    return labels.astype(np.int64)


def _pair(y_true, y_pred):
    y_true, y_pred = _labels("y_true", y_true), _labels("y_pred", y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        raise ValueError("no labels given")
    return y_true, y_pred


def accuracy(y_true, y_pred):
    """The fraction of labels that agree."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def confusion_matrix(y_true, y_pred, num_classes=None):
    """(K, K) counts: row = true class, column = predicted class."""
    y_true, y_pred = _pair(y_true, y_pred)
    if min(y_true.min(), y_pred.min()) < 0:
        raise ValueError("labels must be >= 0")
    needed = int(max(y_true.max(), y_pred.max())) + 1
    if num_classes is None:
        num_classes = needed
    elif num_classes < needed:
        raise ValueError(f"num_classes={num_classes} but a label {needed - 1} occurs")
    counts = np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


def precision_recall_f1(confusion):
    """Per class, from a (K, K) confusion matrix (row = true class): precision tp /
    (tp + fp), recall tp / (tp + fn), F1 = 2 tp / (2 tp + fp + fn) and support (the
    true count), each (K,); 0 where a denominator is 0, as scikit-learn's
    ``precision_recall_fscore_support(zero_division=0)``."""
    confusion = np.asarray(confusion)
    true_positives = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)

    def ratio(numerator, denominator):
        return np.divide(numerator, denominator, out=np.zeros(len(numerator)),
                         where=denominator > 0)

    return (ratio(true_positives, predicted), ratio(true_positives, actual),
            ratio(2 * true_positives, predicted + actual), actual)


def macro_f1(y_true, y_pred):
    """The unweighted mean of each class's F1 = 2 tp / (2 tp + fp + fn), over the
    classes that occur in ``y_true`` or ``y_pred`` (a class never predicted correctly
    counts as 0, as in scikit-learn's ``f1_score(average="macro")``)."""
    matrix = confusion_matrix(y_true, y_pred)
    _, _, f1, _ = precision_recall_f1(matrix)
    present = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0
    return float(f1[present].mean())
