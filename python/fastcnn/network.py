"""Network: a plain list of layers, trained with the write-ups' loop on mini-batches.

One training step is the write-ups' loop, once per batch rather than once per sample::

    output = x_batch
    for layer in layers: output = layer.forward(output)
    gradient = loss_prime(y_batch, output)
    for layer in reversed(layers): gradient = layer.backward(gradient, learning_rate)
"""

import copy
import math
import signal
import threading
import time

import numpy as np

from . import losses as _losses
from . import metrics
from .layers import Activation, Layer, ReLU, _float_dtype
from . import optimizers as _optimizers
from . import saving
from .augmentation import compose as _augmentation

__all__ = ["Network", "History"]

_PREDICT_BATCH_SIZE = 256
_NO_LOSS = 'choose a loss first, for example network.use("softmax_cross_entropy")'


class History(dict):
    """Per-epoch results of ``fit``: ``history["loss"]`` is a list with one float per
    epoch, and so are "accuracy" (when the targets are classes), "val_loss" and
    "val_accuracy" (with ``validation_data``). ``history.epochs`` counts the finished
    epochs, ``history.steps`` the training steps (batches), and ``history.interrupted``
    says whether Ctrl-C stopped the run early."""

    steps = 0
    interrupted = False

    @property
    def epochs(self):
        return len(self.get("loss", ()))

    def on_epoch_end(self, epoch, logs):
        for key, value in logs.items():
            self.setdefault(key, []).append(value)


class _DeferredInterrupt:
    """Ctrl-C during training, held until the current step has finished.

    While active (in the main thread), SIGINT only sets ``requested``; ``fit``
    then stops after the step, so the weights are those of a whole step. A
    second Ctrl-C interrupts at once, as usual.
    """

    requested = False

    def __enter__(self):
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._request)
        return self

    def _request(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc_info):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


class _EpochPrinter:
    """Prints one line per epoch."""

    def __init__(self, epochs):
        self.epochs = epochs
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs):
        now = time.perf_counter()
        values = "  ".join(
            f"{key}={value:.4f}" for key, value in logs.items() if value is not None
        )
        print(f"epoch {epoch + 1}/{self.epochs}  {values}  ({now - self.started:.1f}s)")
        self.started = now


def _check_number(name, value, minimum=0):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {value!r}")


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _samples(name, x):
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {x.dtype}")
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(
            f"{name} must hold one or more samples along its first axis, got shape {x.shape}"
        )
    _refuse_non_finite(name, x)
    return x


def _refuse_non_finite(name, values):
    """A ValueError naming the first sample (and place in it) that holds NaN or inf."""
    if values.dtype.kind != "f" or np.isfinite(values).all():
        return
    bad = np.argwhere(~np.isfinite(values))[0]
    place = f" at position {tuple(int(i) for i in bad[1:])}" if len(bad) > 1 else ""
    raise ValueError(
        f"{name} contains NaN or infinite values: sample {int(bad[0])} holds "
        f"{values[tuple(bad)]}{place}"
    )


def _targets(name, y, count):
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {y.dtype}")
    if y.ndim == 0 or len(y) != count:
        raise ValueError(f"{name} must have one target per sample ({count}), got shape {y.shape}")
    _refuse_non_finite(name, y)
    return y


def _count_correct(outputs, labels):
    """How many outputs give the right label, or None when they are not class scores."""
    if labels is None or outputs.ndim != 2:
        return None
    return int(np.count_nonzero(metrics.labels_from_outputs(outputs) == labels))


class Network:
    """A list of layers with the write-ups' add / use / fit / predict.

    ``Network(layers=None, dtype=np.float32)``: every layer computes in ``dtype``.
    ``network.layers`` is the plain list of layers. ``network.metadata`` is a dict of
    JSON-able values that ``save`` keeps with the network (class names, say).
    """

    def __init__(self, layers=None, dtype=np.float32):
        self.dtype = _float_dtype(dtype)
        self.layers = []
        self.loss = None
        self.loss_prime = None
        self.input_shape = None
        self.optimizer = None
        self.metadata = {}
        for layer in layers or ():
            self.add(layer)

    def add(self, layer):
        """Append a layer (anything with forward and backward); returns the network."""
        if isinstance(layer, type):
            raise TypeError(f"add a layer instance, for example {layer.__name__}(), not the class")
        methods = (getattr(layer, "forward", None), getattr(layer, "backward", None))
        if not all(callable(method) for method in methods):
            raise TypeError(
                f"a layer needs forward(input) and backward(output_gradient, learning_rate) "
                f"methods, got {layer!r}"
            )
        if isinstance(layer, Layer):
            layer.astype(self.dtype)
        self.layers.append(layer)
        return self

    def use(self, loss, loss_prime=None):
        """Set the loss: a (loss, loss_prime) pair, a loss's name ("mse",
        "binary_cross_entropy", "cross_entropy", "softmax_cross_entropy") or one of
        fastcnn.losses' functions. Returns the network."""
        if loss_prime is None:
            loss, loss_prime = _losses.get(loss)
        elif not (callable(loss) and callable(loss_prime)):
            raise TypeError("use(loss, loss_prime) needs two functions")
        self.loss = loss
        self.loss_prime = loss_prime
        return self

    def _set_training(self, training):
        for layer in self.layers:
            layer.training = training

    def _forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def _prepare(self, sample_shape, seed):
        """Before the first batch: record the input shape, pick each unbuilt layer's
        initialisation (He before a ReLU, else Glorot) and, with a seed, seed every
        layer that has no seed of its own. Returns the generator for shuffling."""
        if not self.layers:
            raise ValueError("the network has no layers: add some first")
        self.input_shape = tuple(sample_shape)
        for layer, following in zip(self.layers, self.layers[1:] + [None]):
            if getattr(layer, "init", "") is None:
                relu_next = isinstance(following, ReLU) or (
                    isinstance(following, Activation)
                    and getattr(following.f, "__name__", "") == "relu"
                )
                layer.init = "he" if relu_next else "glorot"
        if seed is None:
            return np.random.default_rng()
        sequences = np.random.SeedSequence(seed).spawn(len(self.layers) + 1)
        for layer, sequence in zip(self.layers, sequences):
            if hasattr(layer, "rng") and getattr(layer, "seed", None) is None:
                layer.rng = np.random.default_rng(sequence)
        return np.random.default_rng(sequences[-1])

    def fit(
        self,
        x,
        y,
        epochs,
        learning_rate,
        batch_size=32,
        optimizer=None,
        shuffle=True,
        validation_data=None,
        verbose=1,
        seed=None,
        callbacks=(),
        augment=None,
    ):
        """Train on (x, y) for ``epochs`` passes in mini-batches; returns a History.

        x: (N, ...) samples of any numeric dtype (uint8 images too), converted to the
        network's dtype batch by batch. y: one target per sample (integer labels or
        rows shaped like the output). ``optimizer`` (an Optimizer such as ``Adam()``
        or ``SGD(momentum=0.9)``, or a name: "sgd", "adam") replaces each layer's
        optimizer (passing the same object again keeps its state); without it the
        layers keep theirs (plain gradient descent by default). ``seed`` makes the run
        reproducible: it seeds the shuffling, dropout, and the initialisation of layers
        not built yet that have no seed of their own. ``verbose=0`` prints nothing, 1 a
        line per epoch.

        ``callbacks``: objects told about the progress through whichever of these
        methods they have: ``on_epoch_begin(epoch)``, ``on_batch_end(batch, logs)``
        with logs {"size": samples in the batch, "loss": its mean loss, "correct": how
        many it classified right, or None}, and ``on_epoch_end(epoch, logs)`` with the
        epoch's entries of the History.

        ``augment``: a transform ``f(x_batch, rng)`` (see fastcnn.augmentation) or a
        list of them, applied to each training batch (never to validation data) with
        the run's generator, so ``seed`` also fixes the augmentation.
        """
        if self.loss is None:
            raise RuntimeError(_NO_LOSS)
        x = _samples("x", x)
        y = _targets("y", y, len(x))
        _check_positive_int("epochs", epochs)
        _check_number("learning_rate", learning_rate)
        _check_positive_int("batch_size", batch_size)
        augment = _augmentation(augment)
        if validation_data is not None:
            try:
                x_val, y_val = validation_data
            except (TypeError, ValueError):
                raise ValueError("validation_data must be a pair (x_val, y_val)") from None
            x_val = _samples("validation x", x_val)
            y_val = _targets("validation y", y_val, len(x_val))
        if optimizer is not None and optimizer is not self.optimizer:
            optimizer = _optimizers.get(optimizer)
            self.optimizer = optimizer
            for layer in self.layers:
                layer.optimizer = optimizer

        rng = self._prepare(x.shape[1:], seed)
        labels = metrics.labels_from_targets(y)
        history = History()
        reporters = [history] + ([_EpochPrinter(epochs)] if verbose else []) + list(callbacks)
        epoch_starts = [r.on_epoch_begin for r in reporters if hasattr(r, "on_epoch_begin")]
        batch_ends = [r.on_batch_end for r in reporters if hasattr(r, "on_batch_end")]
        count = len(x)
        backward_steps = [layer.backward for layer in reversed(self.layers)]
        self._set_training(True)
        # Nothing reads the gradient of the network's input: the first layer may skip it.
        first = self.layers[0]
        skipped = first.input_gradient is True if isinstance(first, Layer) else False
        if skipped:
            first.input_gradient = False
        try:
            with _DeferredInterrupt() as interrupt:
                self._train_epochs(
                    x, y, labels, epochs, learning_rate, batch_size, shuffle, rng,
                    None if validation_data is None else (x_val, y_val), reporters, epoch_starts, batch_ends,
                    backward_steps, interrupt, augment=augment,
                )
        finally:
            if skipped:
                first.input_gradient = True
        if interrupt.requested:
            history.interrupted = True
            if verbose:
                print(f"interrupted: stopped after {history.steps} training steps")
        return history

    def _train_epochs(
        self, x, y, labels, epochs, learning_rate, batch_size, shuffle, rng, validation,
        reporters, epoch_starts, batch_ends, backward_steps, interrupt, augment=None,
    ):
        count = len(x)
        history = reporters[0]
        for epoch in range(epochs):
            for on_epoch_begin in epoch_starts:
                on_epoch_begin(epoch)
            order = rng.permutation(count) if shuffle else None
            loss_sum = 0.0
            correct = 0 if labels is not None else None
            for start in range(0, count, batch_size):
                if interrupt.requested:
                    return
                batch = slice(start, start + batch_size)
                if order is not None:
                    batch = order[batch]
                x_batch = x[batch].astype(self.dtype, copy=False)
                if augment is not None:
                    x_batch = augment(x_batch, rng)
                y_batch = y[batch]
                output = self._forward(x_batch)
                loss = self.loss(y_batch, output)
                if not math.isfinite(loss):
                    raise FloatingPointError(
                        f"the loss became {loss} in epoch {epoch + 1} (batch starting at "
                        f"sample {start}); try a smaller learning_rate"
                    )
                loss_sum += loss * len(x_batch)
                right = None
                if correct is not None:
                    right = _count_correct(output, labels[batch])
                    correct = None if right is None else correct + right
                gradient = self.loss_prime(y_batch, output)
                for backward in backward_steps:
                    gradient = backward(gradient, learning_rate)
                history.steps += 1
                if batch_ends:
                    batch_logs = {"size": len(x_batch), "loss": loss, "correct": right}
                    for on_batch_end in batch_ends:
                        on_batch_end(start // batch_size, batch_logs)
            logs = {"loss": loss_sum / count}
            if correct is not None:
                logs["accuracy"] = correct / count
            if validation:
                scores = self.evaluate(*validation)
                logs["val_loss"] = scores["loss"]
                if scores["accuracy"] is not None:
                    logs["val_accuracy"] = scores["accuracy"]
            for reporter in reporters:
                reporter.on_epoch_end(epoch, logs)

    def predict(self, x, batch_size=_PREDICT_BATCH_SIZE):
        """The last layer's output for x (N, ...) -> (N, ...), or for one sample.

        Under ``softmax_cross_entropy`` these are logits: apply
        ``fastcnn.activations.softmax`` for probabilities. Dropout is off.
        """
        _check_positive_int("batch_size", batch_size)
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"x must be numeric, got dtype {x.dtype}")
        unbatched = self.input_shape is not None and x.ndim == len(self.input_shape)
        if unbatched:
            x = x[None]
        if x.ndim < 2 or len(x) == 0:
            raise ValueError(f"x must hold one or more samples, got shape {x.shape}")
        if not self.layers:
            raise ValueError("the network has no layers: add some first")
        if self.input_shape is None:
            self._prepare(x.shape[1:], None)
        self._set_training(False)
        try:
            outputs = [
                self._forward(x[start : start + batch_size].astype(self.dtype, copy=False))
                for start in range(0, len(x), batch_size)
            ]
        finally:
            self._set_training(True)
        output = outputs[0] if len(outputs) == 1 else np.concatenate(outputs)
        return output[0] if unbatched else output

    def evaluate(self, x, y, batch_size=_PREDICT_BATCH_SIZE):
        """A dict: "loss" (the mean over x), "accuracy" and "macro_f1" (None when the
        targets are not classes)."""
        if self.loss is None:
            raise RuntimeError(_NO_LOSS)
        x = _samples("x", x)
        y = _targets("y", y, len(x))
        outputs = self.predict(x, batch_size)
        scores = {"loss": float(self.loss(y, outputs)), "accuracy": None, "macro_f1": None}
        labels = metrics.labels_from_targets(y)
        if labels is not None and outputs.ndim == 2:
            predicted = metrics.labels_from_outputs(outputs)
            scores["accuracy"] = metrics.accuracy(labels, predicted)
            scores["macro_f1"] = metrics.macro_f1(labels, predicted)
        return scores

    def _summary_input_shape(self):
        if self.input_shape is not None:
            return self.input_shape
        return getattr(self.layers[0], "input_shape", None) if self.layers else None

    def summary(self, input_shape=None):
        """Print and return a table of the layers, their output shapes (per sample) and
        parameter counts. ``input_shape`` is one sample's shape, for example (1, 28, 28);
        without it, the shape seen by ``fit``/``predict`` or the first layer's
        ``input_shape=`` is used. Changes nothing: it traces a copy of the layers."""
        if input_shape is None:
            input_shape = self._summary_input_shape()
        if input_shape is None:
            raise ValueError(
                "summary() needs the input shape: summary(input_shape=(C, H, W)), give "
                "the first layer input_shape=..., or call fit or predict first"
            )
        rows = [("Layer", "Output shape", "Params")]
        total = 0
        x = np.zeros((1, *input_shape), self.dtype)
        for layer in copy.deepcopy(self.layers):
            layer.training = False
            x = np.asarray(layer.forward(x))
            count = sum(p.size for p in getattr(layer, "parameters", {}).values())
            total += count
            rows.append((repr(layer), str(tuple(x.shape[1:])), f"{count:,}"))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        rule_width = sum(widths) + 4

        def line(row):
            return f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}"

        lines = [line(rows[0]), "-" * rule_width]
        lines += [line(row) for row in rows[1:]]
        lines += ["=" * rule_width, f"Total params: {total:,}"]
        text = "\n".join(lines)
        print(text)
        return text

    def save(self, path):
        """Write the network to ``path`` (an .npz file, named exactly ``path``): its
        layers' classes and configs, dtype, input shape, loss, ``metadata``, parameters
        and optimizer state. Only fastcnn's built-in layers, optimizers and activation
        functions can be saved (a loss of one's own is left out: give it again with
        ``use`` after loading). The file is replaced atomically: if saving fails or is
        interrupted, the previous file is left as it was."""
        saving.save(self, path)

    @classmethod
    def load(cls, path):
        """The network saved at ``path`` by ``save``: it predicts exactly as the saved
        one did, and its optimizers continue where they stopped. Nothing in the file is
        executed (no pickle); a damaged, truncated or incompatible file raises a
        ValueError that names the file and says what is wrong."""
        return saving.load(path, cls)

    def __repr__(self):
        return f"Network({self.layers!r}, dtype={self.dtype.name})"
