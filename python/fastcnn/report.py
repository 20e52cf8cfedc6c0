"""The picture of a training run: one PNG with the loss and accuracy curves (train and
validation), the confusion matrix on the test set, and a grid of test images labelled
with the predicted and the true class, in red where they differ.

Needs matplotlib (``pip install "fastcnn[plot]"``). It draws with the Agg renderer on
its own Figure, so it neither needs a display nor changes pyplot's state.
"""

import numpy as np

__all__ = ["MISSING_MATPLOTLIB", "PICTURE_FORMATS", "require_matplotlib", "write_report"]

MISSING_MATPLOTLIB = (
    'the picture needs matplotlib: pip install "fastcnn[plot]" (or pip install matplotlib)'
)
# The file types matplotlib's Agg, PDF, PS and SVG backends write, by suffix.
PICTURE_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg", "eps", "ps", "webp", "tif", "tiff")
_GRID_ROWS, _GRID_COLUMNS = 3, 10
_LABEL_SPACE, _GAP = 9, 16  # pixels of the mosaic above and beside each 28 x 28 image
_WRONG, _RIGHT = "#c0392b", "#222222"


def require_matplotlib():
    """Raise ImportError saying how to install matplotlib when it is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(MISSING_MATPLOTLIB) from None


def write_report(path, history, confusion, images, true_labels, predicted_labels, class_names,
                 title=""):
    """Write the report PNG to ``path``.

    history: per-epoch lists "loss", "accuracy", "val_loss", "val_accuracy" (those
    present are drawn). confusion: (K, K) counts, row = true class, column = predicted.
    images: (N, H, W) grey or (N, 3, H, W) colour test images, pixels 0-255 (the
    first 30 are shown) with their true and
    predicted labels (N,). class_names: K names.
    """
    require_matplotlib()
    from matplotlib.figure import Figure

    figure = Figure(figsize=(16, 10), layout="constrained")
    if title:
        figure.suptitle(title, fontsize=13)
    grid = figure.add_gridspec(2, 3, height_ratios=[1.15, 1], width_ratios=[1, 1, 1.25])
    _draw_curves(figure.add_subplot(grid[0, 0]), history, "loss", "Loss")
    _draw_curves(figure.add_subplot(grid[0, 1]), history, "accuracy", "Accuracy")
    _draw_confusion(figure.add_subplot(grid[0, 2]), np.asarray(confusion), class_names)
    _draw_images(
        figure.add_subplot(grid[1, :]), images, true_labels, predicted_labels, class_names
    )
    figure.savefig(path, dpi=100)


def _draw_curves(axes, history, key, name):
    epochs = 0
    for prefix, label in (("", "train"), ("val_", "validation")):
        values = history.get(prefix + key)
        if values:
            epochs = max(epochs, len(values))
            axes.plot(np.arange(1, len(values) + 1), values, marker="o", label=label)
            if len(values) == 1:  # one epoch: print the value, not a lone dot on empty axes
                axes.annotate(f"{values[0]:.4f}", (1, values[0]), textcoords="offset points",
                              xytext=(8, 4 if prefix else -12), fontsize=9)
    if epochs:
        axes.set_xlim(0.5, epochs + 0.5)
        axes.set_xticks(np.arange(1, epochs + 1))
    axes.set_title(f"{name} per epoch")
    axes.set_xlabel("epoch")
    axes.set_ylabel(name.lower())
    if axes.lines:
        axes.legend()
    axes.grid(alpha=0.3)


def _draw_confusion(axes, confusion, class_names):
    axes.imshow(confusion, cmap="Blues")
    ticks = np.arange(len(class_names))
    axes.set_xticks(ticks, class_names, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(ticks, class_names, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("Confusion matrix (test set)")
    threshold = confusion.max() / 2 if confusion.size else 0
    for (row, column), count in np.ndenumerate(confusion):
        colour = "white" if count > threshold else "black"
        axes.text(column, row, str(count), ha="center", va="center", fontsize=7, color=colour)


def _draw_images(axes, images, true_labels, predicted_labels, class_names):
    """The first images as one mosaic (one image is much faster to draw than an axes
    per picture), each labelled above with its predicted class."""
    count = min(len(images), _GRID_ROWS * _GRID_COLUMNS)
    colour = images.ndim == 4  # (N, 3, H, W) colour images, else (N, H, W) grey ones
    if colour:
        images = images.transpose(0, 2, 3, 1)
    height, width = images.shape[1:3]
    cell_height, cell_width = height + _LABEL_SPACE, width + _GAP
    mosaic = np.full((_GRID_ROWS * cell_height, _GRID_COLUMNS * cell_width, *images.shape[3:]),
                     255 if colour else 0, np.uint8)
    for index in range(count):
        row, column = divmod(index, _GRID_COLUMNS)
        top, left = row * cell_height + _LABEL_SPACE, column * cell_width
        mosaic[top : top + height, left : left + width] = images[index]
    if colour:
        axes.imshow(mosaic, interpolation="nearest")
    else:
        axes.imshow(mosaic, cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
    axes.set_axis_off()
    axes.set_title(
        "Test images and the predicted class; in red where wrong, with the true class after",
        fontsize=11,
    )
    for index in range(count):
        row, column = divmod(index, _GRID_COLUMNS)
        true, predicted = int(true_labels[index]), int(predicted_labels[index])
        label = class_names[predicted]
        if predicted != true:
            label += f" ({class_names[true]})"
        axes.text(
            column * cell_width + width / 2,
            row * cell_height + _LABEL_SPACE - 1.5,
            label,
            ha="center",
            va="bottom",
            fontsize=7.5,
            color=_WRONG if predicted != true else _RIGHT,
        )
