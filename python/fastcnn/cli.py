"""The command line: ``fastcnn train | evaluate | predict | export | bench`` (also
``python -m fastcnn``).

``fastcnn train`` trains write-up 004's SimpleCNN (or a LeNet-5 or an MLP) on
Fashion-MNIST, holding out 1/12 of the training images (5,000 of 60,000) for
validation after each epoch, then reports on the test set, saves the model and draws
the report picture. Every failure ends with one line on stderr and a non-zero exit
status.
"""

import argparse
import math
import os
import runpy
import sys
import time
from pathlib import Path

import numpy as np

import fastcnn
from . import datasets, metrics, report, schedules
from .activations import softmax
from .callbacks import Callback
from .layers import Softmax
from .models import PRESETS
from .network import Network
from .optimizers import SGD, Adam

__all__ = ["main", "OneLineParser", "positive_int_argument"]

# The write-ups' input scaling, recorded (as numbers) in the models this command line
# saves so that evaluate and predict feed them images the way they were trained.
SCALING = datasets.WRITE_UPS_SCALING
# What models saved by fastcnn 0.1 recorded instead: the same scaling, as text.
_OLD_PIXELS = "x / 255 - 0.5"
VALIDATION_FRACTION = 12  # hold out 1/12 of the training images: 5,000 of 60,000
REPORT_IMAGES = 30


OPTIMIZERS = {
    "sgd": lambda: SGD(),
    "momentum": lambda: SGD(momentum=0.9),
    "adam": lambda: Adam(),
}
# The first epoch's learning rate for an optimizer other than the preset's own.
LEARNING_RATES = {"sgd": 0.05, "momentum": 0.01, "adam": 0.001}


COMMANDS = ("train", "evaluate", "predict", "export", "bench")


class CommandError(Exception):
    """A failure to report in one line (the message) with exit status 1."""


# --------------------------------------------------------------------------- arguments


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments give one line on stderr, not the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int_argument(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


_RAW_HELP = ("feed the pixel values as they are, for a model that records no "
             "preprocessing (saved from the Python API without metadata['preprocessing'])")


def _parser():
    parser = OneLineParser(
        prog="fastcnn",
        description="Train, evaluate and use convolutional networks on Fashion-MNIST.",
    )
    parser.add_argument("--version", action="version", version=f"fastcnn {fastcnn.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    presets = "; ".join(
        f"{name}: {preset.epochs} epochs, {preset.optimizer}, learning rate "
        f"{preset.learning_rate}" for name, preset in PRESETS.items()
    )
    train = commands.add_parser(
        "train",
        help="train a network on Fashion-MNIST, save it and draw a report",
        description="Train on Fashion-MNIST (the full set when installed, else the sample "
        "shipped with fastcnn; or CIFAR-10 with --dataset cifar10), validating on 1/12 of the training images (5,000 of "
        "60,000) after each epoch; then report test accuracy and macro-F1, save the model "
        "and draw the report picture. The learning rate decays along a half cosine over "
        f"the epochs. Defaults per model: {presets}.",
    )
    train.add_argument("--model", choices=PRESETS, default="simplecnn",
                       help="the network (default: simplecnn, write-up 004's)")
    train.add_argument("--epochs", type=positive_int_argument, metavar="N",
                       help="passes over the training images")
    train.add_argument("--batch-size", type=positive_int_argument, metavar="B",
                       help="images per step (default: 32)")
    train.add_argument("--optimizer", choices=OPTIMIZERS,
                       help="sgd (plain gradient descent), momentum (SGD, momentum 0.9) or adam")
    train.add_argument("--learning-rate", type=_positive_float, metavar="LR",
                       help="the first epoch's learning rate (default: the model's with "
                       "its optimizer, else sgd 0.05, momentum 0.01, adam 0.001)")
    train.add_argument("--dataset", choices=DATASETS, default="fashion-mnist",
                       help="fashion-mnist (default) or cifar10 (the binary release, "
                       "from --data DIR, $FASTCNN_DATA/cifar-10 or the cache)")
    train.add_argument("--data", metavar="DIR",
                       help="a folder with the four Fashion-MNIST files (default: "
                       "$FASTCNN_DATA, Debian's dataset-fashion-mnist, the cache, the sample)")
    train.add_argument("--limit", type=positive_int_argument, metavar="N",
                       help="use only the first N training and N test images")
    train.add_argument("--seed", type=_non_negative_int, default=0, metavar="S",
                       help="seed of initialisation, shuffling and the validation split "
                       "(default: 0)")
    train.add_argument("--threads", type=positive_int_argument, metavar="T",
                       help=f"kernel threads (default: {fastcnn.get_num_threads()})")
    train.add_argument("--out", default="model.npz", metavar="MODEL",
                       help="where to save the model (default: model.npz)")
    train.add_argument("--plot", metavar="PNG",
                       help="where to draw the report picture (default: report.png; "
                       "needs matplotlib)")
    train.add_argument("--quiet", action="store_true",
                       help="no progress bar (still one line per epoch)")
    train.set_defaults(run=train_command)

    evaluate = commands.add_parser(
        "evaluate",
        help="test a saved model on the Fashion-MNIST test set",
        description="Accuracy, macro-F1, a per-class table and the confusion matrix of a "
        "saved model on the Fashion-MNIST test set.",
    )
    evaluate.add_argument("model", metavar="MODEL", help="a model saved by fastcnn (.npz)")
    evaluate.add_argument("--dataset", choices=DATASETS,
                          help="the test set (default: the one the model was trained on)")
    evaluate.add_argument("--data", metavar="DIR", help="a folder with the data set's files")
    evaluate.add_argument("--raw", action="store_true", help=_RAW_HELP)
    evaluate.set_defaults(run=evaluate_command)

    predict = commands.add_parser(
        "predict",
        help="classify the images in a .npy or IDX file",
        description="Print the most likely classes and their probabilities for each image "
        "in FILE: a .npy array or an IDX file (gzipped or not) of 28x28 images, uint8 "
        "pixels 0-255 like Fashion-MNIST's (light garment on a dark background), or one "
        "PNG/JPEG picture (needs Pillow; made grayscale and resized to the model's input).",
    )
    predict.add_argument("model", metavar="MODEL", help="a model saved by fastcnn (.npz)")
    predict.add_argument("file", metavar="FILE",
                         help="images: .npy, IDX (.idx, -ubyte, .gz), or a .png/.jpg picture")
    predict.add_argument("--raw", action="store_true", help=_RAW_HELP)
    predict.set_defaults(run=predict_command)

    export = commands.add_parser(
        "export",
        help="write a saved model as ONNX or safetensors",
        description="Write a saved model as an ONNX model (OUT ending in .onnx, opset 17, "
        "input \"input\" of shape (batch, C, H, W) as the model was trained on, output "
        "\"output\"; it takes the pixels scaled as the model's metadata \"pixels\" says, "
        "x / 255 - 0.5 for models of fastcnn train) or its weights under PyTorch's "
        "state_dict names (.safetensors).",
    )
    export.add_argument("model", metavar="MODEL", help="a model saved by fastcnn (.npz)")
    export.add_argument("out", metavar="OUT", help="the file to write: .onnx or .safetensors")
    export.set_defaults(run=export_command)

    commands.add_parser(
        "bench",
        help="time the kernels against NumPy and PyTorch (fastcnn bench --help)",
        add_help=False,
    )
    return parser


# --------------------------------------------------------------------------- main


def main(argv=None):
    """Run the command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv else None
    name = f"fastcnn {command}" if command in COMMANDS else "fastcnn"
    try:
        if fastcnn.environment_error is not None:
            raise fastcnn.environment_error
        if command == "bench":
            return bench_command(argv[1:])
        args = _parser().parse_args(argv)
        return args.run(args)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (fastcnn predict ... | head): it has read all
        # it wanted, so stop quietly and successfully.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:  # every failure is one line, never a traceback
        print(f"{name}: error: {_one_line(error)}", file=sys.stderr)
        return 1


def _one_line(error):
    if isinstance(error, OSError) and error.filename and error.strerror:
        text = f"{error.filename}: {error.strerror}"
    elif isinstance(error, (CommandError, ValueError, TypeError, OSError, RuntimeError,
                            ImportError, ArithmeticError)):
        text = str(error)
    else:
        text = f"{type(error).__name__}: {error}"
    return " ".join(text.split()) or type(error).__name__


# --------------------------------------------------------------------------- bench


def _bench_script():
    """bench/run.py of the source checkout fastcnn is imported from (an editable
    install), else of the current folder; None when neither has one."""
    checkout = Path(fastcnn.__file__).resolve().parents[2]  # <checkout>/python/fastcnn/
    for folder in (checkout, Path.cwd()):
        script = folder / "bench" / "run.py"
        if script.is_file():
            return script
    return None


def bench_command(arguments):
    """Run bench/run.py's main with ``arguments``: the benchmark lives in the source
    repository, not in the installed package."""
    script = _bench_script()
    if script is None:
        raise CommandError(
            "the benchmark is not part of the installed package: in a clone of fastcnn's "
            "repository run python bench/run.py (--help for its options)"
        )
    return runpy.run_path(str(script))["main"](arguments, prog="fastcnn bench")


# --------------------------------------------------------------------------- data


DATASETS = ("fashion-mnist", "cifar10")


def _load_data(dataset, folder, splits=("train", "test")):
    """The data set's (train, test) pair, its source printed."""
    if dataset == "cifar10":
        data = datasets.cifar10(path=folder)
    else:
        data = datasets.fashion_mnist(path=folder, splits=splits)
    print(f"Data: {data.source}")
    return data


def _class_list(data):
    return list(getattr(data, "classes", None) or datasets.FASHION_MNIST_CLASSES)


def _network_input(images):
    """uint8 pixels, (N, 28, 28) grey or (N, 3, 32, 32) colour -> float32 (N, C, H, W)
    in [-0.5, 0.5], the write-ups' scaling (SCALING)."""
    return SCALING(images[:, None] if images.ndim == 3 else images)


def _model_scaling(network):
    """The pixel scaling a model was trained with, or None if it records none."""
    if network.metadata.get("pixels") == _OLD_PIXELS:
        return SCALING
    recorded = network.metadata.get("preprocessing")
    if recorded is None:
        return None
    try:
        return datasets.Rescaling.from_dict(recorded)
    except ValueError as error:
        raise CommandError(f"the model's recorded preprocessing is damaged: {error}") from None


def _check_pixels(images, where):
    """Refuse images that are not raw pixels 0-255 (what the models take), saying why."""
    if images.size == 0:
        return
    low, high = float(images.min()) + 0.0, float(images.max()) + 0.0  # no "-0"
    if low < 0 or high > 255 or not (math.isfinite(low) and math.isfinite(high)):
        raise CommandError(
            f"{where} holds values from {low:g} to {high:g}, but the model takes pixels "
            "0-255 (it scales them itself): pass the images as they were before scaling"
        )
    if images.dtype.kind == "f" and high <= 1 and high > 0:
        raise CommandError(
            f"{where} holds values from {low:g} to {high:g}, which look already scaled to "
            "[0, 1]; the model takes pixels 0-255 and scales them itself: multiply by 255"
        )


def _class_names(network, count):
    names = network.metadata.get("classes")
    if isinstance(names, list) and len(names) >= count and all(isinstance(n, str) for n in names):
        return names
    return [str(index) for index in range(count)]


def _model_input(network, images, where, raw=False):
    """Images of any layout that holds the model's input size per image -> the model's
    input batch, scaled as the model was trained."""
    images = np.asarray(images)
    if images.dtype.kind not in "biuf":
        raise CommandError(f"{where} holds {images.dtype} values, not images")
    shape = network.input_shape
    if shape is None:
        raise CommandError("the model has no input shape: it was saved before it was trained")
    size = math.prod(shape)
    if images.size == size:
        images = images.reshape(1, *shape)
    elif images.ndim >= 2 and len(images) and math.prod(images.shape[1:]) == size:
        images = images.reshape(len(images), *shape)
    else:
        raise CommandError(
            f"{where} holds an array of shape {images.shape}, but the model takes images "
            f"of shape {shape} (one, or a batch of them)"
        )
    scaling = _model_scaling(network)
    if scaling is None and not raw:
        raise CommandError(
            "the model records no input preprocessing, so the pixels cannot be fed as it "
            "was trained: before saving it, set network.metadata['preprocessing'] = "
            "fastcnn.datasets.WRITE_UPS_SCALING.as_dict() (or the Rescaling it was trained "
            "with), or pass --raw to feed the values as they are"
        )
    if scaling is not None:
        _check_pixels(images, where)
        images = scaling(images)
    return images


def _load_model(path):
    if not os.path.exists(path):
        raise CommandError(f"no model file {path}")
    return Network.load(path)


def _probabilities(network, outputs):
    """Class probabilities from the network's outputs (logits unless it ends in Softmax)."""
    if network.layers and isinstance(network.layers[-1], Softmax):
        return outputs
    return softmax(outputs.astype(np.float64))


# --------------------------------------------------------------------------- train


class _Progress(Callback):
    """The progress bar of each epoch (tqdm) and the one line printed after it."""

    def __init__(self, epochs, count, show_bar):
        self.epochs = epochs
        self.count = count
        self.show_bar = show_bar
        self.bar = None
        self.epoch_seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen = 0
        self.loss_sum = 0.0
        self.correct = 0
        if self.show_bar:
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.count,
                desc=f"epoch {epoch + 1}/{self.epochs}",
                unit="img",
                unit_scale=True,
                leave=False,
                file=sys.stdout,
                dynamic_ncols=True,
            )
        self.started = self.finished = time.perf_counter()

    def on_batch_end(self, batch, logs=None):
        size = logs["size"]
        self.seen += size
        self.loss_sum += logs["loss"] * size
        self.correct += logs["correct"] or 0
        self.finished = time.perf_counter()
        if self.bar is not None:
            self.bar.set_postfix_str(
                f"loss {self.loss_sum / self.seen:.4f}, accuracy {self.correct / self.seen:.4f}",
                refresh=False,
            )
            self.bar.update(size)

    def on_epoch_end(self, epoch, logs=None):
        self.close()
        seconds = self.finished - self.started
        self.epoch_seconds.append(seconds)
        values = "  ".join(f"{key} {value:.4f}" for key, value in logs.items())
        rate = self.count / seconds if seconds > 0 else float("inf")
        print(
            f"epoch {epoch + 1}/{self.epochs}  {values}  (learning rate "
            f"{self.network.learning_rate:.3g}, {seconds:.1f} s, {rate:,.0f} images/s)",
            flush=True,
        )

    def on_train_end(self, logs=None):
        self.close()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _check_destination(path, what):
    """Fail before training, not after, when ``path`` cannot be written."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CommandError(f"cannot save the {what} to {path}: there is no folder {folder}")
    if os.path.isdir(path):
        raise CommandError(f"cannot save the {what} to {path}: it is a folder")


def _plot_path(args):
    """Where to draw the picture, or None (with a note) when matplotlib is missing.
    Checked before training: the folder, and a picture format matplotlib writes."""
    path = args.plot or "report.png"
    _check_destination(path, "picture")
    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    if suffix not in report.PICTURE_FORMATS:
        raise CommandError(
            f"cannot draw the picture as {path}: name a file ending in "
            f"{', '.join('.' + name for name in report.PICTURE_FORMATS)}"
        )
    try:
        report.require_matplotlib()
    except ImportError as error:
        print(f"fastcnn train: no picture: {error}", file=sys.stderr)
        return None
    return path


def _split(count, seed):
    """Shuffled (training, validation) indices of ``count`` images."""
    validation = max(1, count // VALIDATION_FRACTION)
    order = np.random.default_rng(seed).permutation(count)
    return np.sort(order[validation:]), np.sort(order[:validation])


def train_command(args):
    preset = PRESETS[args.model]
    epochs = args.epochs or preset.epochs
    batch_size = args.batch_size or preset.batch_size
    optimizer_name = args.optimizer or preset.optimizer
    learning_rate = args.learning_rate or (
        preset.learning_rate if optimizer_name == preset.optimizer
        else LEARNING_RATES[optimizer_name]
    )
    if args.limit is not None and args.limit < 2:
        raise CommandError("--limit must be at least 2: one image to train on, one to validate")
    if args.threads:
        fastcnn.set_num_threads(args.threads)
    _check_destination(args.out, "model")
    plot = _plot_path(args)

    data = _load_data(args.dataset, args.data)
    if data.source.is_sample:
        print(
            "Training on the small sample shipped with fastcnn, not the full Fashion-MNIST: "
            "accuracy will be well below the write-up's. For the full set: apt-get install "
            "dataset-fashion-mnist, or --data DIR, or FASTCNN_DATA, or "
            "fastcnn.datasets.fashion_mnist(download=True)."
        )
    (train_images, train_labels), (test_images, test_labels) = data
    if args.limit is not None:
        train_images, train_labels = train_images[: args.limit], train_labels[: args.limit]
        test_images, test_labels = test_images[: args.limit], test_labels[: args.limit]
    training, validation = _split(len(train_images), args.seed)
    # Scaled after the split, from the uint8 pixels: a scaled copy of the whole set
    # beside the training part would double the peak memory (188 MB more).
    x_train, y_train = _network_input(train_images[training]), train_labels[training]
    validation_data = (_network_input(train_images[validation]), train_labels[validation])
    print(f"Model: {args.model}, {preset.description}")
    print(
        f"Training on {len(training):,} images, validating on {len(validation):,} held-out "
        f"training images: {epochs} epoch(s), batch {batch_size}, {optimizer_name}, "
        f"learning rate {learning_rate:g} with cosine decay, seed {args.seed}, "
        f"{fastcnn.get_num_threads()} thread(s)",
        flush=True,
    )

    network = Network(preset.layers()).use("softmax_cross_entropy")
    network.metadata = {
        "model": args.model,
        "dataset": args.dataset,
        "classes": _class_list(data),
        "preprocessing": SCALING.as_dict(),
        "trained_on": f"{data.source.dataset}, {len(training):,} training images "
                      f"({data.source})",
    }
    progress = _Progress(epochs, len(training), show_bar=not args.quiet and sys.stdout.isatty())
    history = network.fit(
        x_train,
        y_train,
        epochs=epochs,
        learning_rate=schedules.cosine(learning_rate, epochs),
        batch_size=batch_size,
        optimizer=OPTIMIZERS[optimizer_name](),
        validation_data=validation_data,
        verbose=0,
        seed=args.seed,
        callbacks=[progress],
        augment=preset.augment() if preset.augment else None,
    )
    if history.interrupted:  # Ctrl-C: fit stopped after a whole step
        raise KeyboardInterrupt

    predicted = metrics.labels_from_outputs(network.predict(_network_input(test_images)))
    accuracy = metrics.accuracy(test_labels, predicted)
    macro_f1 = metrics.macro_f1(test_labels, predicted)
    seconds = progress.epoch_seconds
    print(
        f"Test accuracy {accuracy:.4f}, macro-F1 {macro_f1:.4f} on {len(test_labels):,} "
        "test images"
    )
    print(
        f"Time per epoch: {sum(seconds) / len(seconds):.1f} s (training, mean of "
        f"{len(seconds)}: {', '.join(f'{s:.1f}' for s in seconds)} s)"
    )
    network.save(args.out)
    print(f"Model saved to {args.out}")
    if plot is None:
        if args.plot:
            print(f"fastcnn train: error: no picture drawn: {report.MISSING_MATPLOTLIB}",
                  file=sys.stderr)
            return 1
        return 0
    confusion = metrics.confusion_matrix(test_labels, predicted, num_classes=10)
    limit = f" --limit {args.limit}" if args.limit is not None else ""
    title = (
        f"fastcnn train --model {args.model}{limit}: test accuracy {accuracy:.4f}, "
        f"macro-F1 {macro_f1:.4f} on {len(test_labels):,} test images ({data.source})"
    )
    report.write_report(
        plot,
        history,
        confusion,
        test_images[:REPORT_IMAGES],
        test_labels[:REPORT_IMAGES],
        predicted[:REPORT_IMAGES],
        _class_list(data),
        title=title,
    )
    print(f"Picture saved to {plot}")
    return 0


# --------------------------------------------------------------------------- evaluate


def evaluate_command(args):
    network = _load_model(args.model)
    dataset = args.dataset or network.metadata.get("dataset", "fashion-mnist")
    if dataset not in DATASETS:
        raise CommandError(f"the model was trained on {dataset!r}, which fastcnn cannot load")
    _, (test_images, test_labels) = _load_data(dataset, args.data, splits=("test",))
    x = _model_input(network, test_images, "the test set", args.raw)
    predicted = metrics.labels_from_outputs(network.predict(x))
    classes = int(max(predicted.max(), test_labels.max())) + 1
    names = _class_names(network, classes)
    confusion = metrics.confusion_matrix(test_labels, predicted, num_classes=classes)

    print(f"Accuracy {metrics.accuracy(test_labels, predicted):.4f}, macro-F1 "
          f"{metrics.macro_f1(test_labels, predicted):.4f} on {len(test_labels):,} test images")
    print()
    width = max(len(name) for name in names) + 4
    print(f"{'class':<{width}} precision  recall      F1  images")
    table = zip(*metrics.precision_recall_f1(confusion))
    for index, (name, (precision, recall, f1, support)) in enumerate(zip(names, table)):
        print(f"{f'{index} {name}':<{width}} {precision:9.4f} {recall:7.4f} {f1:7.4f} "
              f"{support:7,}")
    print()
    print("Confusion matrix (rows: true class, columns: predicted class)")
    cell = max(5, len(f"{confusion.max():,}") + 1)
    print(" " * 4 + "".join(f"{index:>{cell}}" for index in range(classes)))
    for index, row in enumerate(confusion):
        print(f"{index:>4}" + "".join(f"{count:>{cell},}" for count in row))
    return 0


# --------------------------------------------------------------------------- predict


_PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _read_picture(path, shape):
    """One picture file as a (1, *shape) uint8 batch: grayscale (or RGB for a
    three-channel model), resized to the model's (H, W) with Pillow."""
    try:
        from PIL import Image
    except ImportError:
        raise CommandError(
            f"reading {path} needs Pillow: pip install \"fastcnn[images]\" (or save the "
            "images as a .npy array or an IDX file of pixels 0-255)"
        ) from None
    channels, height, width = shape if len(shape) == 3 else (1, *shape[-2:])
    try:
        with Image.open(path) as picture:
            picture = picture.convert("RGB" if channels == 3 else "L")
            picture = picture.resize((width, height), Image.Resampling.LANCZOS)
            pixels = np.asarray(picture, dtype=np.uint8)
    except OSError as error:
        raise CommandError(f"{path} cannot be read as a picture ({error})") from None
    if channels == 3:
        pixels = pixels.transpose(2, 0, 1)
    return pixels.reshape(1, *shape)


def _read_images(path, shape):
    if not os.path.exists(path):
        raise CommandError(f"no file {path}")
    if path.lower().endswith(_PICTURE_SUFFIXES):
        return _read_picture(path, shape)
    if path.endswith(".npy"):
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as error:
            raise CommandError(f"{path} cannot be read as a .npy array ({error})") from None
    return datasets.read_idx(path)


def predict_command(args):
    network = _load_model(args.model)
    if network.input_shape is None:
        raise CommandError("the model has no input shape: it was saved before it was trained")
    images = _read_images(args.file, network.input_shape)
    x = _model_input(network, images, args.file, args.raw)
    probabilities = _probabilities(network, network.predict(x))
    if probabilities.ndim != 2:
        raise CommandError(
            f"the model gives outputs of shape {probabilities.shape[1:]}, not classes"
        )
    names = _class_names(network, probabilities.shape[1])
    ranking = np.argsort(-probabilities, axis=1, kind="stable")
    width = max(len(name) for name in names)
    print(f"{'image':>5}  {'class':<{width}}  probability  {'next':<{width}}  probability")
    for index, (order, row) in enumerate(zip(ranking, probabilities)):
        first, second = order[0], order[1] if len(order) > 1 else order[0]
        print(f"{index:>5}  {names[first]:<{width}}  {row[first]:11.4f}  "
              f"{names[second]:<{width}}  {row[second]:11.4f}")
    return 0


# --------------------------------------------------------------------------- export


def export_command(args):
    network = _load_model(args.model)
    network.export(args.out)
    print(f"Exported {args.model} to {args.out}")
    return 0
