"""Data augmentation for image batches: random crops after zero padding, horizontal flips.

Each transform is a callable ``transform(x, rng=None)`` taking a batch x of shape
(N, C, H, W) or (N, H, W) (float or integer images, uint8 included) and returning a new
batch of the same dtype; the input is never modified. The whole batch is transformed at
once (one padded copy and one gather for the crops, one masked copy for the flips), with
no Python loop over the images. The vocabulary and defaults are torchvision's
(``transforms.RandomCrop``, ``transforms.RandomHorizontalFlip``), applied per image
of a batch.

Random numbers come from ``rng`` (a ``numpy.random.Generator``) when the caller passes
one (``Network.fit(augment=...)`` passes its seeded generator, so ``fit(seed=...)``
reproduces the augmented run), otherwise from the transform's own generator, seeded by
its ``seed`` argument::

    augment = Compose([RandomCrop(padding=4), RandomHorizontalFlip()])
    network.fit(x_train, y_train, epochs=10, learning_rate=0.01, augment=augment)
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import _checks

__all__ = ["RandomCrop", "RandomHorizontalFlip", "Compose", "compose"]


def _images(x):
    """x as an array of images (N, ..., H, W), checked."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"augmentation needs numeric images, got an array of dtype {x.dtype}")
    if x.ndim not in (3, 4):
        raise ValueError(
            f"augmentation needs a batch of images (N, C, H, W) or (N, H, W), "
            f"got an array of shape {x.shape}"
        )
    return x


def _size_pair(name, value, minimum):
    pair = (value, value) if np.ndim(value) == 0 else tuple(value)
    if len(pair) != 2 or any(
        isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum for v in pair
    ):
        raise ValueError(f"{name} must be an int >= {minimum} or an (h, w) pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


class _Transform:
    """A callable transform with its own generator for calls that bring none."""

    def __init__(self, seed):
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def __call__(self, x, rng=None):
        return self.apply(_images(x), self.rng if rng is None else rng)


class RandomCrop(_Transform):
    """Pad each image with ``padding`` values ``fill`` on every side, then cut out a ``size``
    window at a uniformly random position, independently per image.

    x (N, C, H, W) or (N, H, W) -> (N, C, h, w) or (N, h, w), with (h, w) = ``size``
    (an int or an (h, w) pair; None keeps the input's (H, W), the usual "pad 4 and crop
    back" of CIFAR training). ``padding`` (pixels, an int or (h, w) pair) defaults to 4.
    ``fill`` is the padding's value (torchvision's ``fill``): 0 is black for raw pixels;
    for scaled images give the scaled black, e.g. -0.5 under x / 255 - 0.5.
    Each of the (H + 2 ph - h + 1) x (W + 2 pw - w + 1) positions is equally likely.
    A size larger than the padded image is a ValueError.
    """

    def __init__(self, size=None, padding=4, *, fill=0.0, seed=None):
        super().__init__(seed)
        self.size = None if size is None else _size_pair("size", size, 1)
        self.padding = _size_pair("padding", padding, 0)
        self.fill = _checks.number("fill", fill)

    def apply(self, x, rng):
        height, width = x.shape[-2:]
        ph, pw = self.padding
        h, w = (height, width) if self.size is None else self.size
        if h > height + 2 * ph or w > width + 2 * pw:
            raise ValueError(
                f"RandomCrop size {h}x{w} is larger than the padded image "
                f"{height + 2 * ph}x{width + 2 * pw} (image {height}x{width}, padding {ph, pw})"
            )
        count = len(x)
        top = rng.integers(0, height + 2 * ph - h + 1, size=count)
        left = rng.integers(0, width + 2 * pw - w + 1, size=count)
        planes = x.reshape(count, -1, height, width)
        padded = np.pad(planes, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=self.fill)
        # windows[n, c, i, j] is the h x w window at (i, j): a view, nothing copied yet.
        windows = sliding_window_view(padded, (h, w), axis=(2, 3))
        crops = windows[np.arange(count), :, top, left]  # (N, C, h, w): one gather
        return crops.reshape(*x.shape[:-2], h, w)

    def __repr__(self):
        size = "None" if self.size is None else self.size
        fill = f", fill={self.fill:g}" if self.fill else ""
        return f"RandomCrop(size={size}, padding={self.padding}{fill})"


class RandomHorizontalFlip(_Transform):
    """Mirror each image left to right (reverse the W axis) with probability ``p``,
    independently per image. x (N, C, H, W) or (N, H, W) -> the same shape."""

    def __init__(self, p=0.5, *, seed=None):
        super().__init__(seed)
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ValueError(f"RandomHorizontalFlip p must be a probability in [0, 1], got {p!r}")
        self.p = float(p)

    def apply(self, x, rng):
        flip = rng.random(len(x)) < self.p
        flipped = x.copy()
        flipped[flip] = x[flip][..., ::-1]
        return flipped

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class Compose:
    """Apply ``transforms`` in order, each to the previous one's output, all drawing from
    the same ``rng`` when one is passed."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for transform in self.transforms:
            if not callable(transform):
                raise TypeError(f"Compose needs callable transforms, got {transform!r}")

    def __call__(self, x, rng=None):
        for transform in self.transforms:
            x = transform(x, rng)
        return x

    def __repr__(self):
        return f"Compose({self.transforms!r})"


def compose(augment):
    """What ``Network.fit(augment=...)`` accepts as one callable ``f(x, rng)``: None
    stays None, a list or tuple becomes a Compose, a callable is kept; anything else is a
    TypeError."""
    if augment is None or callable(augment):
        return augment
    if isinstance(augment, (list, tuple)):
        return Compose(augment)
    raise TypeError(
        f"augment must be a transform (a callable f(x, rng)), a list of them or None, "
        f"got {augment!r}"
    )
