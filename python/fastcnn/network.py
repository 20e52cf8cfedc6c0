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
from dataclasses import dataclass

import numpy as np

from . import _checks, kernels, metrics, saving, schedules
from . import losses as _losses
from . import optimizers as _optimizers
from .augmentation import compose as _augmentation
from .callbacks import EpochPrinter, History
from .layers import Activation, BatchNorm1D, BatchNorm2D, Layer, ReLU, Softmax, mark

__all__ = ["Network", "History"]

_PREDICT_BATCH_SIZE = 256
_NO_LOSS = 'choose a loss first, for example network.use("softmax_cross_entropy")'


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


def _samples(name, x):
    x = _checks.numeric_array(name, x)
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(
            f"{name} must hold one or more samples along its first axis, got shape {x.shape}"
        )
    return _checks.finite(name, x)


def _targets(name, y, count):
    y = _checks.numeric_array(name, y)
    if y.ndim == 0 or len(y) != count:
        raise ValueError(f"{name} must have one target per sample ({count}), got shape {y.shape}")
    return _checks.finite(name, y)


def _refuse_other_channels(name, shape, sample_shape):
    """One image sample whose channel count is not the network's is most likely a
    batch of images without their channel axis: refuse it, saying so."""
    if len(sample_shape) == 3 and shape[0] != sample_shape[0]:
        raise ValueError(
            f"{name} of shape {shape} is neither one sample {tuple(sample_shape)} nor a batch "
            f"(N, {', '.join(map(str, sample_shape))}): for a batch of images without the "
            "channel axis, add it with x[:, None]"
        )


def _count_correct(outputs, labels):
    """How many outputs give the right label, or None when they are not class scores."""
    if not metrics.labels_fit_outputs(labels, outputs):
        return None
    return int(np.count_nonzero(metrics.labels_from_outputs(outputs) == labels))


@dataclass
class _Run:
    """What one ``fit`` call trains on and how."""

    x: np.ndarray
    y: np.ndarray
    labels: object  # (N,) int labels, or None when the targets are not classes
    epochs: int
    schedule: object  # epoch -> learning rate
    batch_size: int
    shuffle: bool
    rng: np.random.Generator
    validation: object  # (x_val, y_val) or None
    history: History
    reporters: list
    parallel: object  # a fastcnn.distributed.DataParallel optimizer, or None
    augment: object  # f(x_batch, rng) applied to each training batch, or None
    interrupt: _DeferredInterrupt = None
    # Integer labels, all within the output's classes, under softmax_cross_entropy:
    # checked once (after the first step), then each step takes the fused loss.
    labels_checked: bool = False


_CALLBACK_METHODS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
                     "on_batch_begin", "on_batch_end")


def _callbacks(callbacks):
    """The list of callbacks, each checked to have at least one callback method."""
    callbacks = list(callbacks)
    for callback in callbacks:
        if not any(callable(getattr(callback, name, None)) for name in _CALLBACK_METHODS):
            raise TypeError(
                f"a callback needs one or more of the methods {', '.join(_CALLBACK_METHODS)} "
                f"(see fastcnn.callbacks.Callback), got {callback!r}"
            )
    return callbacks


def _call_all(reporters, method, *arguments):
    for reporter in reporters:
        function = getattr(reporter, method, None)
        if function is not None:
            function(*arguments)


class Network:
    """A list of layers with the write-ups' add / use / fit / predict.

    ``Network(layers=None, dtype=np.float32)``: every layer computes in ``dtype``.
    ``network.layers`` is the plain list of layers. ``network.metadata`` is a dict of
    JSON-able values that ``save`` keeps with the network (class names, say).
    ``network.input_shape`` is the shape of one input sample once known (from
    ``build``, ``fit``, ``predict``, ``summary(input_shape=...)`` or the first layer's
    ``input_shape=``).
    """

    def __init__(self, layers=None, dtype=np.float32):
        self.dtype = _checks.float_dtype(dtype)
        self.layers = []
        self.loss = None
        self.loss_prime = None
        self.input_shape = None
        self.optimizer = None
        self.metadata = {}
        self.stop_training = False
        self.learning_rate = None
        self._rng = None
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

    # ------------------------------------------------------------------ shapes

    def _sample_shape(self):
        """One input sample's shape, if known: the network's, else the first layer's."""
        if self.input_shape is not None:
            return self.input_shape
        shape = getattr(self.layers[0], "input_shape", None) if self.layers else None
        return None if shape is None else tuple(shape)

    def build(self, input_shape):
        """Build every layer for input samples of ``input_shape`` (one sample's shape,
        for example (1, 28, 28)), as ``fit`` does before its first step: pick each
        layer's initialisation (He before a ReLU, else Glorot) and create its
        parameters. Layers already built stay as they are. Returns the network.
        Raises ValueError if a layer cannot take the shape the one before it gives."""
        if not self.layers:
            raise ValueError("the network has no layers: add some first")
        shape = _checks.sample_shape("input_shape", input_shape)
        self.input_shape = shape
        # The activation that follows each layer, looking past normalisation (a linear
        # rescaling per channel), picks its initialisation.
        following = None
        for layer in reversed(self.layers):
            if isinstance(layer, Layer):
                layer.set_default_init(
                    isinstance(following, ReLU)
                    or (isinstance(following, Activation)
                        and getattr(following.f, "__name__", "") == "relu")
                )
            if not isinstance(layer, (BatchNorm1D, BatchNorm2D)):
                following = layer
        for layer in self.layers:
            next_shape = getattr(layer, "compute_output_shape", None)
            if next_shape is None:  # a layer of one's own: the rest build on first use
                break
            if getattr(layer, "input_shape", "") is None:
                layer.build(shape)  # keeps weights set by hand, records the shape
            shape = tuple(next_shape(shape))
        return self

    def _prepare(self, sample_shape, seed):
        """Before the first batch: build the layers for ``sample_shape`` and, with a
        seed, seed every layer that has no seed of its own and the shuffling. Returns
        the generator for shuffling (kept, and saved with the network, so training
        continues identically after ``load``)."""
        if not self.layers:
            raise ValueError("the network has no layers: add some first")
        if seed is not None:
            sequences = np.random.SeedSequence(seed).spawn(len(self.layers) + 1)
            for layer, sequence in zip(self.layers, sequences):
                if isinstance(layer, Layer):
                    layer.seed_from(sequence)
            self._rng = np.random.default_rng(sequences[-1])
        elif self._rng is None:
            self._rng = np.random.default_rng()
        self.build(sample_shape)
        return self._rng

    @property
    def random_state(self):
        """The state of the shuffling generator as a JSON-able dict (NumPy's
        ``bit_generator.state``), or None before the first ``fit``."""
        return None if self._rng is None else self._rng.bit_generator.state

    @random_state.setter
    def random_state(self, state):
        rng = np.random.default_rng()
        try:
            rng.bit_generator.state = state
        except (TypeError, ValueError, KeyError) as error:
            raise ValueError(f"not a PCG64 generator state: {error}") from None
        self._rng = rng

    # ------------------------------------------------------------------ training

    def _set_training(self, training):
        for layer in self.layers:
            layer.training = training

    def _forward(self, x):
        x = mark(x, True)  # a Network always passes batches
        for layer in self.layers:
            x = layer.forward(x)
        return x

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
        validation_split=0.0,
        augment=None,
    ):
        """Train on (x, y) for ``epochs`` passes in mini-batches; returns a History.

        x: (N, ...) samples of any numeric dtype (uint8 images too), converted to the
        network's dtype batch by batch. y: one target per sample (integer labels or
        rows shaped like the output). ``learning_rate``: a number, or a schedule (any
        callable of the epoch index, 0-based, returning the rate; see
        ``fastcnn.schedules``). ``optimizer`` (an Optimizer such as ``Adam()`` or
        ``SGD(momentum=0.9)``, or a name: "sgd", "adam") replaces each layer's
        optimizer (passing the same object again keeps its state); without it the
        layers keep theirs (plain gradient descent by default). ``seed`` makes the run
        reproducible: it seeds the shuffling, dropout, and the initialisation of layers
        not built yet that have no seed of their own; without it, a second ``fit``
        continues the first one's shuffling. ``verbose=0`` prints nothing, 1 a line per
        epoch.

        Validation after each epoch: ``validation_data=(x_val, y_val)``, or
        ``validation_split``, a fraction in (0, 1) of the samples held out from the end
        of x and y before any shuffling, as Keras does.

        ``augment``: a transform ``f(x_batch, rng)`` (see fastcnn.augmentation) or a
        list of them, applied to each training batch (never to validation data) with
        the run's generator, so ``seed`` also fixes the augmentation.

        ``callbacks``: see ``fastcnn.callbacks`` (EarlyStopping, ModelCheckpoint, or
        objects of one's own). Ctrl-C stops after the current step and returns the
        History with ``interrupted`` set. Raises ValueError for non-finite data (naming
        the sample) and FloatingPointError when the loss stops being finite.
        """
        if self.loss is None:
            raise RuntimeError(_NO_LOSS)
        if self.loss is _losses.softmax_cross_entropy and self.layers and isinstance(
            self.layers[-1], Softmax
        ):
            raise ValueError(
                "the network ends in a Softmax layer and softmax_cross_entropy applies the "
                "softmax again: drop the Softmax layer (predict then gives logits), or use "
                '"cross_entropy", which takes probabilities'
            )
        x = _samples("x", x)
        y = _targets("y", y, len(x))
        epochs = _checks.positive_int("epochs", epochs)
        batch_size = _checks.positive_int("batch_size", batch_size)
        schedule = learning_rate if callable(learning_rate) else schedules.constant(learning_rate)
        augment = _augmentation(augment)
        split = _checks.number("validation_split", validation_split, minimum=0, below=1)
        if split:
            if validation_data is not None:
                raise ValueError("give validation_data or validation_split, not both")
            held_out = int(len(x) * split)
            if not 1 <= held_out < len(x):
                raise ValueError(
                    f"validation_split={split:g} of {len(x)} samples leaves {held_out} to "
                    "validate on and the rest to train on: both need at least one"
                )
            validation_data = (x[-held_out:], y[-held_out:])
            x, y = x[:-held_out], y[:-held_out]
        validation = self._validation(validation_data)
        if optimizer is not None and optimizer is not self.optimizer:
            optimizer = _optimizers.get(optimizer)
            self.optimizer = optimizer
            for layer in self.layers:
                layer.optimizer = optimizer

        # fastcnn.distributed.DataParallel: the same seed and parameters as rank 0.
        parallel = self.optimizer if hasattr(self.optimizer, "shard") else None
        if parallel is not None:
            seed = parallel.common_seed(seed)
            verbose = verbose if parallel.is_main_process else 0
        rng = self._prepare(x.shape[1:], seed)
        if parallel is not None:
            parallel.start(self, x)
        history = History()
        reporters = [history] + ([EpochPrinter(epochs)] if verbose else []) + _callbacks(callbacks)
        run = _Run(x, y, metrics.labels_from_targets(y), epochs, schedule, batch_size,
                   bool(shuffle), rng, validation, history, reporters, parallel, augment)
        for reporter in reporters:
            if hasattr(reporter, "set_network"):
                reporter.set_network(self)
        self.stop_training = False
        self._set_training(True)
        # Nothing reads the gradient of the network's input: the first layer may skip it.
        first = self.layers[0]
        skipped = isinstance(first, Layer) and first.input_gradient is True
        if skipped:
            first.input_gradient = False
        _call_all(reporters, "on_train_begin")
        try:
            with _DeferredInterrupt() as run.interrupt:
                for epoch in range(epochs):
                    self._train_epoch(run, epoch)
                    if run.interrupt.requested or self.stop_training:
                        break
        finally:
            if skipped:
                first.input_gradient = True
        _call_all(reporters, "on_train_end")
        if run.interrupt.requested:
            history.interrupted = True
            if verbose:
                print(f"interrupted: stopped after {history.steps} training steps")
        return history

    def _loss_step(self, run, batch, y_batch, output):
        """(loss, its gradient w.r.t. output, correctly classified count or None) of
        one training batch. The loss of a non-finite output is returned, not raised."""
        if run.labels_checked:
            return kernels.softmax_cross_entropy(output, y_batch)
        loss = self.loss(y_batch, output)
        right = None if run.labels is None else _count_correct(output, run.labels[batch])
        gradient = self.loss_prime(y_batch, output)
        run.labels_checked = (
            self.loss is _losses.softmax_cross_entropy
            and self.loss_prime is _losses.softmax_cross_entropy_prime
            and output.ndim == 2 and output.shape[1] >= 2
            and run.y.ndim == 1 and np.issubdtype(run.y.dtype, np.integer)
            and bool(run.y.min() >= 0) and bool(run.y.max() < output.shape[1])
        )
        return loss, gradient, right

    def _refuse_divergence(self, epoch):
        """A FloatingPointError when a step left a parameter (or an optimizer's state)
        non-finite: training has diverged, and nothing after it would mean anything."""
        for index, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                continue
            arrays = dict(layer.parameters)
            for name, state in layer.optimizer_state.items():
                arrays.update({f"{name} ({key})": value for key, value in state.items()
                               if isinstance(value, np.ndarray)})
            for name, array in arrays.items():
                if not np.isfinite(array).all():
                    raise FloatingPointError(
                        f"the loss became meaningless in epoch {epoch + 1}: training "
                        f"diverged, {type(layer).__name__} layer {index}'s {name} holds NaN "
                        "or infinite values; try a smaller learning_rate"
                    )

    @staticmethod
    def _validation(validation_data):
        """(x_val, y_val), checked, or None."""
        if validation_data is None:
            return None
        try:
            x_val, y_val = validation_data
        except (TypeError, ValueError):
            raise ValueError("validation_data must be a pair (x_val, y_val)") from None
        x_val = _samples("validation x", x_val)
        return x_val, _targets("validation y", y_val, len(x_val))

    def _train_epoch(self, run, epoch):
        """One pass over run.x; reports to run.reporters."""
        self.learning_rate = schedules.rate_at(run.schedule, epoch)
        _call_all(run.reporters, "on_epoch_begin", epoch)
        count = len(run.x)
        order = run.rng.permutation(count) if run.shuffle else None
        backward_steps = [layer.backward for layer in reversed(self.layers)]
        loss_sum = 0.0
        correct = 0 if run.labels is not None else None
        for start in range(0, count, run.batch_size):
            if run.interrupt.requested:
                return
            batch_index = start // run.batch_size
            _call_all(run.reporters, "on_batch_begin", batch_index)
            batch = slice(start, start + run.batch_size)
            if order is not None:
                batch = order[batch]
            if run.parallel is not None:  # this process's rows of the global batch
                rows = np.arange(start, min(start + run.batch_size, count))
                batch = run.parallel.shard(rows if order is None else batch)
                if len(batch) == 0:  # none: join the others' gradient average
                    run.parallel.join(self.layers, self.learning_rate)
                    run.history.steps += 1
                    continue
            # Overflow is not reported by NumPy but checked: the loss, then the parameters.
            with np.errstate(over="ignore", invalid="ignore"):
                x_batch = run.x[batch].astype(self.dtype, copy=False)
                if run.augment is not None:
                    x_batch = run.augment(x_batch, run.rng)
                y_batch = run.y[batch]
                output = self._forward(x_batch)
                loss, gradient, right = self._loss_step(run, batch, y_batch, output)
                if not math.isfinite(loss):
                    raise FloatingPointError(
                        f"the loss became {loss} in epoch {epoch + 1} (batch starting at "
                        f"sample {start}): training diverged; try a smaller learning_rate"
                    )
                loss_sum += loss * len(x_batch)
                if correct is not None:
                    correct = None if right is None else correct + right
                for backward in backward_steps:
                    gradient = backward(gradient, self.learning_rate)
            run.history.steps += 1
            _call_all(run.reporters, "on_batch_end", batch_index,
                      {"size": len(x_batch), "loss": loss, "correct": right})
        # Non-finite parameters make the next step's loss non-finite; state that no
        # forward reads (Adam's moments) is checked here, once an epoch.
        self._refuse_divergence(epoch)
        logs = {"loss": loss_sum / count}
        if correct is not None:
            logs["accuracy"] = correct / count
        if run.parallel is not None:
            logs = run.parallel.sum_over_processes(logs)
        if run.validation:
            scores = self.evaluate(*run.validation)
            logs["val_loss"] = scores["loss"]
            if scores["accuracy"] is not None:
                logs["val_accuracy"] = scores["accuracy"]
        _call_all(run.reporters, "on_epoch_end", epoch, logs)

    # ------------------------------------------------------------------ inference

    def predict(self, x, batch_size=_PREDICT_BATCH_SIZE):
        """The last layer's output for x (N, ...) -> (N, ...), or for one sample.

        One sample is an array of the rank of the network's input samples (known from
        ``build``, ``fit``, or the first layer's ``input_shape=``); anything else is a
        batch. Under ``softmax_cross_entropy`` these are logits: apply
        ``fastcnn.activations.softmax`` for probabilities. Dropout is off.
        """
        batch_size = _checks.positive_int("batch_size", batch_size)
        x = _checks.numeric_array("x", x)
        if not self.layers:
            raise ValueError("the network has no layers: add some first")
        sample_shape = self._sample_shape()
        unbatched = sample_shape is not None and x.ndim == len(sample_shape)
        if unbatched:
            _refuse_other_channels("x", x.shape, sample_shape)
            x = x[None]
        if x.ndim < 2 or len(x) == 0:
            raise ValueError(f"x must hold one or more samples, got shape {x.shape}")
        _checks.finite("x", x)
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
        if metrics.labels_fit_outputs(labels, outputs):
            predicted = metrics.labels_from_outputs(outputs)
            scores["accuracy"] = metrics.accuracy(labels, predicted)
            scores["macro_f1"] = metrics.macro_f1(labels, predicted)
        return scores

    def summary(self, input_shape=None):
        """Print and return a table of the layers, their output shapes (per sample) and
        parameter counts. ``input_shape`` is one sample's shape, for example (1, 28, 28):
        it builds the network for that shape (``build``); without it, the shape seen by
        ``fit``/``predict`` or the first layer's ``input_shape=`` is used. Shapes are
        computed, not traced, so nothing of the input's size is allocated."""
        if input_shape is not None:
            self.build(input_shape)
        input_shape = self._sample_shape()
        if input_shape is None:
            raise ValueError(
                "summary() needs the input shape: summary(input_shape=(C, H, W)), give "
                "the first layer input_shape=..., or call fit or predict first"
            )
        rows = [("Layer", "Output shape", "Params")]
        total = 0
        shape = tuple(input_shape)
        for layer in self.layers:
            if getattr(layer, "compute_output_shape", None) is None:
                # A layer of one's own: trace a copy of it on zeros.
                probe = copy.deepcopy(layer)
                probe.training = False
                shape = tuple(np.asarray(probe.forward(np.zeros((1, *shape), self.dtype))).shape[1:])
            else:
                probe = layer
                if getattr(layer, "input_shape", "") is None and not layer.parameters:
                    probe = copy.deepcopy(layer)
                    probe.build(shape)
                shape = tuple(layer.compute_output_shape(shape))
            count = sum(p.size for p in getattr(probe, "parameters", {}).values())
            total += count
            rows.append((repr(layer), str(shape), f"{count:,}"))
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

    # ------------------------------------------------------------------ state

    def get_weights(self):
        """Copies of every layer's parameters and buffers, layer by layer in the
        order of ``layer.parameters`` then ``layer.buffers`` (Keras's get_weights)."""
        return [
            np.array(array, copy=True)
            for layer in self.layers if isinstance(layer, Layer)
            for array in {**layer.parameters, **layer.buffers}.values()
        ]

    def set_weights(self, weights):
        """Copy ``weights`` (as ``get_weights`` returns them) into the layers' arrays in
        place. Raises ValueError if their number or shapes differ."""
        targets = [
            array
            for layer in self.layers if isinstance(layer, Layer)
            for array in {**layer.parameters, **layer.buffers}.values()
        ]
        weights = list(weights)
        if len(weights) != len(targets):
            raise ValueError(f"the network has {len(targets)} weight arrays, got {len(weights)}")
        for index, (target, source) in enumerate(zip(targets, weights)):
            source = np.asarray(source)
            if source.shape != target.shape:
                raise ValueError(
                    f"weight array {index} has shape {target.shape}, got {source.shape}"
                )
            np.copyto(target, source, casting="same_kind")

    def save(self, path):
        """Write the network to ``path`` (an .npz file, named exactly ``path``): its
        layers' classes and configs, dtype, input shape, loss, ``metadata``, parameters,
        buffers, optimizer state and random generators. Only fastcnn's built-in layers,
        optimizers and activation functions can be saved (a loss of one's own is left
        out: give it again with ``use`` after loading). The file is replaced atomically:
        if saving fails or is interrupted, the previous file is left as it was."""
        saving.save(self, path)

    @classmethod
    def load(cls, path):
        """The network saved at ``path`` by ``save``: it predicts exactly as the saved
        one did, and training continues where it stopped (optimizers, dropout and the
        shuffling included). Nothing in the file is executed (no pickle); a damaged,
        truncated or incompatible file raises a ValueError that names the file and says
        what is wrong."""
        return saving.load(path, cls)

    def __repr__(self):
        return f"Network({self.layers!r}, dtype={self.dtype.name})"

    # ------------------------------------------------------------------ hand-over

    def export(self, path):
        """Write the network as ONNX (``.onnx``, opset 17) or its weights under PyTorch's
        names (``.safetensors``), by the suffix of ``path``; see fastcnn.export.export."""
        from .export import export

        export(self, path)

    def to_torch(self):
        """The equivalent ``torch.nn.Sequential``, weights copied; see
        fastcnn.export.to_torch."""
        from .export import to_torch

        return to_torch(self)

    @classmethod
    def from_torch(cls, module, input_shape=None):
        """A Network computing what a ``torch.nn.Sequential`` does, weights copied; see
        fastcnn.export.from_torch."""
        from .export import from_torch

        return from_torch(module, input_shape)
