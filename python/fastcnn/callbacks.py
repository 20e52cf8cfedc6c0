"""What ``Network.fit`` tells about its progress, and the callbacks that act on it.

``fit(callbacks=[...])`` takes any objects; it calls whichever of these methods they
have (Keras's names, Keras's order):

- ``on_train_begin()`` and ``on_train_end()``, once each;
- ``on_epoch_begin(epoch)`` and ``on_epoch_end(epoch, logs)``, with ``logs`` the
  epoch's entries of the History ("loss", "accuracy", "val_loss", ...);
- ``on_batch_begin(batch)`` and ``on_batch_end(batch, logs)``, with ``logs``
  {"size": samples in the batch, "loss": its mean loss, "correct": how many it
  classified right, or None}.

Epochs and batches count from 0. Subclasses of ``Callback`` also get the network
(``self.network``, set by ``fit`` before ``on_train_begin``) and can end training
cleanly after the current epoch by setting ``self.network.stop_training = True``.
"""

import math
import time
from pathlib import Path


from . import _checks

__all__ = ["Callback", "History", "EarlyStopping", "ModelCheckpoint"]


class Callback:
    """Base class with every method a no-op; override the ones you need."""

    network = None

    def set_network(self, network):
        """Called by ``fit`` before training starts."""
        self.network = network

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass


class History(dict):
    """Per-epoch results of ``fit``: ``history["loss"]`` is a list with one float per
    epoch, and so are "accuracy" (when the targets are classes), "val_loss" and
    "val_accuracy" (with validation data). As in Keras, ``history.history`` is this
    dict and ``history.epoch`` the list of finished epoch indices. ``history.epochs``
    counts the finished epochs, ``history.steps`` the training steps (batches), and
    ``history.interrupted`` says whether Ctrl-C stopped the run early."""

    steps = 0
    interrupted = False

    def __init__(self):
        super().__init__()
        self.epoch = []

    @property
    def history(self):
        return self

    @property
    def epochs(self):
        return len(self.epoch)

    def on_epoch_end(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.setdefault(key, []).append(value)


class EpochPrinter:
    """Prints one line per epoch: its results and its time in seconds."""

    def __init__(self, epochs):
        self.epochs = epochs

    def on_epoch_begin(self, epoch):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs):
        values = "  ".join(
            f"{key}={value:.4f}" for key, value in logs.items() if value is not None
        )
        seconds = time.perf_counter() - self.started
        print(f"epoch {epoch + 1}/{self.epochs}  {values}  ({seconds:.1f}s)")


class _Monitor(Callback):
    """The monitored quantity of EarlyStopping and ModelCheckpoint: which way is better."""

    def __init__(self, monitor, mode, min_delta=0.0):
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be the name of a logged value, got {monitor!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            mode = "max" if "acc" in monitor or "f1" in monitor else "min"
        self.monitor = monitor
        self.mode = mode
        self.min_delta = _checks.number("min_delta", min_delta, minimum=0)
        self.best = None

    def _value(self, logs):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise ValueError(
                f"{type(self).__name__} monitors {self.monitor!r}, which fit does not log "
                f"(it logs {', '.join(sorted(logs or {})) or 'nothing'}); "
                "'val_loss' needs validation_data or validation_split"
            )
        return float(value)

    def _improved(self, value):
        if self.best is None:
            return math.isfinite(value)
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop training when ``monitor`` has not improved for ``patience`` epochs.

    An improvement is a change of more than ``min_delta`` in the better direction
    (``mode``: "min", "max", or "auto": max for accuracies and F1, min otherwise).
    With ``restore_best_weights`` (the default) the network ends training with the
    parameters and buffers of its best epoch. After training, ``stopped_epoch`` is the
    epoch after which it stopped (None if it did not), ``best`` the best value and
    ``best_epoch`` its epoch. Keras's EarlyStopping, with restore_best_weights on.
    """

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0,
                 restore_best_weights=True, mode="auto"):
        super().__init__(monitor, mode, min_delta)
        if not _checks.is_int(patience) or patience < 0:
            raise ValueError(f"patience must be an int >= 0, got {patience!r}")
        self.patience = int(patience)
        self.restore_best_weights = bool(restore_best_weights)

    def on_train_begin(self, logs=None):
        self.best = None
        self.best_epoch = None
        self.best_weights = None
        self.stopped_epoch = None
        self.wait = 0

    def on_epoch_end(self, epoch, logs=None):
        value = self._value(logs)
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.network.get_weights()
            return
        self.wait += 1
        if self.wait >= max(self.patience, 1):
            self.stopped_epoch = epoch
            self.network.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.network.set_weights(self.best_weights)


class ModelCheckpoint(_Monitor):
    """Save the network to ``path`` after each epoch, or with ``save_best_only`` (the
    default) after each epoch that improved ``monitor``. ``path`` may hold format
    fields, filled from the epoch (counted from 1) and its logs, for example
    "model-{epoch:02d}-{val_loss:.3f}.npz". Each save is atomic (``Network.save``), so
    an interrupted run leaves the last good checkpoint. Keras's ModelCheckpoint."""

    def __init__(self, path, monitor="val_loss", save_best_only=True, mode="auto"):
        super().__init__(monitor, mode)
        self.path = str(Path(path))
        self.save_best_only = bool(save_best_only)

    def on_train_begin(self, logs=None):
        self.best = None
        folder = Path(self.path).parent
        if not folder.is_dir():  # fail before training, not after its first epoch
            raise FileNotFoundError(
                f"ModelCheckpoint cannot save to {self.path}: the folder {folder} does not exist"
            )

    def on_epoch_end(self, epoch, logs=None):
        if self.save_best_only:
            value = self._value(logs)
            if not self._improved(value):
                return
            self.best = value
        try:
            path = self.path.format(epoch=epoch + 1, **(logs or {}))
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                f"ModelCheckpoint's path {self.path!r} names a field fit does not log "
                f"({error}); it can use epoch and {', '.join(sorted(logs or {}))}"
            ) from None
        self.network.save(path)

