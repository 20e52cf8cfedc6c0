"""The argument checks of the Python layer, one copy of each.

Every check accepts NumPy scalars (np.int64, np.float32, np.uint8 ...) wherever it
accepts a Python number, refuses bools (True is not a count), and returns the value as
a plain Python int or float, so no arithmetic on a user's setting ever happens in a
narrow integer dtype. A refusal is a ValueError (a number out of range) or a TypeError
(not a number at all) whose message names the argument and shows what came.
"""

import math
import numbers
import os

import numpy as np

# The thread pool counts threads in a C int; more than this would not be honoured anyway.
MAX_THREADS = 1024


def is_int(value):
    """True for a Python or NumPy integer, False for bools and everything else."""
    return type(value) is int or (
        isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)))


def is_number(value):
    """True for a real Python or NumPy number, False for bools and everything else."""
    # The exact types first: the abstract-class check costs a microsecond, and a
    # learning rate is checked on every step.
    return type(value) is float or type(value) is int or (
        isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)))


def positive_int(name, value, maximum=None):
    """``value`` as an int >= 1 (and <= ``maximum`` if given)."""
    if not is_int(value):
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    value = int(value)
    if value < 1 or (maximum is not None and value > maximum):
        limit = f" no larger than {maximum}" if maximum is not None else ""
        raise ValueError(f"{name} must be a positive int{limit}, got {value!r}")
    return value


def number(name, value, minimum=None, maximum=None, below=None):
    """``value`` as a finite float, with ``minimum <= value <= maximum`` and
    ``value < below`` for the bounds given."""
    if not is_number(value):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) and minimum is None and maximum is None and below is None:
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if (
        not math.isfinite(value)
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
        or (below is not None and value >= below)
    ):
        if minimum is not None and (maximum is not None or below is not None):
            upper = f"{below:g})" if below is not None else f"{maximum:g}]"
            raise ValueError(f"{name} must be in [{minimum:g}, {upper}, got {value!r}")
        bound = f">= {minimum:g}" if minimum is not None else (
            f"< {below:g}" if below is not None else f"<= {maximum:g}")
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return value


def pair(name, value, minimum=1):
    """An int or an (h, w) pair of ints >= ``minimum``, as a tuple of two ints."""
    values = (value, value) if is_int(value) else value
    try:
        values = tuple(values)
    except TypeError:
        values = (value,)
    if len(values) != 2 or not all(is_int(v) and v >= minimum for v in values):
        raise ValueError(f"{name} must be an int >= {minimum} or a pair of them, got {value!r}")
    return (int(values[0]), int(values[1]))


def sample_shape(name, shape, rank=None):
    """A shape of one sample (ints >= 1, ``rank`` of them if given) as a tuple; an int
    counts as (int,)."""
    if is_int(shape):
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError:
        shape = (shape,)
    if (rank is not None and len(shape) != rank) or not shape or not all(
        is_int(v) and v >= 1 for v in shape
    ):
        count = f"{rank} positive int(s)" if rank is not None else "positive ints"
        raise ValueError(f"{name} must be {count} for one sample, got {shape!r}")
    return tuple(int(v) for v in shape)


def float_dtype(dtype):
    """float32 or float64 as a np.dtype; anything else is a TypeError."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def numeric_array(name, values):
    """``values`` as an array of a numeric dtype (bool, int or float)."""
    values = np.asarray(values)
    if values.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {values.dtype}")
    return values


def finite(name, values):
    """A ValueError naming the first sample (and place in it) that holds NaN or inf."""
    if values.dtype.kind != "f" or np.isfinite(values).all():
        return values
    bad = np.argwhere(~np.isfinite(values))[0]
    place = f" at position {tuple(int(i) for i in bad[1:])}" if len(bad) > 1 else ""
    raise ValueError(
        f"{name} contains NaN or infinite values: sample {int(bad[0])} holds "
        f"{values[tuple(bad)]}{place}"
    )


def output_length(axis, length, window, stride, padding):
    """The number of window positions along one axis:
    floor((length + 2 padding - window) / stride) + 1, the convolution arithmetic of
    Dumoulin & Visin (2016), as PyTorch's Conv2d and MaxPool2d use it."""
    if length + 2 * padding < window:
        raise ValueError(
            f"the window {window} is larger than the padded input {length + 2 * padding} "
            f"along {axis}"
        )
    return (length + 2 * padding - window) // stride + 1


def _memory_bytes():
    """This machine's memory in bytes, or None where it cannot be asked."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _size_text(size):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:,.1f} {unit}" if unit != "bytes" else f"{size:,} bytes"
        size /= 1024
    return ""


def fits_in_memory(name, shape, dtype):
    """A MemoryError naming ``name`` when an array of ``shape`` and ``dtype`` would take
    more than this machine's memory (instead of NumPy's bare one, or swapping)."""
    size = math.prod(int(v) for v in shape) * np.dtype(dtype).itemsize
    memory = _memory_bytes()
    if memory is not None and size > memory:
        raise MemoryError(
            f"{name} of shape {tuple(shape)} would take {_size_text(size)}, more than this "
            f"machine's {_size_text(memory)}"
        )
