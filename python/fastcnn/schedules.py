"""Learning-rate schedules for ``Network.fit(learning_rate=...)``.

A schedule is any callable of the epoch index (0-based) that returns the learning rate
for that epoch; ``fit`` calls it once at the start of each epoch. These two ship:

- ``cosine(initial, epochs)``: a half cosine from ``initial`` down towards 0 over
  ``epochs`` (SGDR's annealing without restarts, Loshchilov & Hutter 2017):
  ``initial * (1 + cos(pi * epoch / epochs)) / 2``; 3 epochs give 1, 0.75, 0.25 of it.
- ``step(initial, factor, every)``: ``initial * factor ** (epoch // every)``, as
  Keras's and PyTorch's StepLR.
"""

import math

from . import _checks

__all__ = ["cosine", "step", "constant", "rate_at"]


class _Schedule:
    """A named schedule: calling it with the epoch gives the rate; its repr shows it."""

    def __init__(self, name, function, **settings):
        self._name = name
        self._rate = function
        self._settings = settings

    def __call__(self, epoch):
        return self._rate(_checks.positive_int("epoch + 1", epoch + 1) - 1)

    def __repr__(self):
        settings = ", ".join(f"{key}={value!r}" for key, value in self._settings.items())
        return f"fastcnn.schedules.{self._name}({settings})"


def cosine(initial, epochs):
    """The half-cosine decay from ``initial`` (> 0) over ``epochs`` (a positive int);
    after the last epoch it stays at its last value."""
    initial = _checks.number("initial", initial, minimum=0)
    epochs = _checks.positive_int("epochs", epochs)
    return _Schedule(
        "cosine",
        lambda epoch: initial * (1 + math.cos(math.pi * min(epoch, epochs - 1) / epochs)) / 2,
        initial=initial,
        epochs=epochs,
    )


def step(initial, factor, every):
    """``initial * factor ** (epoch // every)``: the rate times ``factor`` (0 to 1)
    every ``every`` epochs."""
    initial = _checks.number("initial", initial, minimum=0)
    factor = _checks.number("factor", factor, minimum=0, maximum=1)
    every = _checks.positive_int("every", every)
    return _Schedule(
        "step",
        lambda epoch: initial * factor ** (epoch // every),
        initial=initial,
        factor=factor,
        every=every,
    )


def constant(rate):
    """The same ``rate`` every epoch (what a plain number means to ``fit``)."""
    rate = _checks.number("learning_rate", rate, minimum=0)
    return _Schedule("constant", lambda epoch: rate, rate=rate)


def rate_at(schedule, epoch):
    """``schedule(epoch)``, checked to be a finite number >= 0 (a ValueError naming the
    epoch otherwise)."""
    rate = schedule(epoch)
    try:
        return _checks.number(f"the learning rate of epoch {epoch}", rate, minimum=0)
    except TypeError:
        raise TypeError(
            f"the learning-rate schedule {schedule!r} returned {rate!r} for epoch {epoch}, "
            "not a number"
        ) from None
