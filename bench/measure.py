"""How long to measure, and the timing loops every section shares."""

import statistics
import time
from dataclasses import dataclass
from typing import Optional

SEED = 20240611  # of every section's random data


@dataclass(frozen=True)
class Settings:
    """How long to measure, and how many images the training sections use."""

    name: str
    warmup: int  # untimed calls at the start of each block
    blocks: int  # turns each library takes
    min_repeats: int  # timed calls per block, at least
    max_repeats: int  # and at most
    seconds_per_block: float  # repeat until this much time is spent (within the limits)
    pause: float  # seconds of rest after each library's block
    loop_seconds: float  # a per-sample Python loop runs on as many samples as fit in this
    loop_repeats: int
    epoch_images: Optional[dict]  # end to end: {batch size: images trained}; None: all
    writeup_epoch_images: int  # images the write-up-004 network trains on, then scaled
    test_images: int
    network_epoch_images: dict  # network section: {batch size: images timed}, then scaled
    profile_steps: dict  # profile section: {batch size: steps timed layer by layer}

    @property
    def quick(self):
        return self.name == "quick"


FULL = Settings(
    name="full",
    warmup=2,
    blocks=3,
    min_repeats=3,
    max_repeats=30,
    seconds_per_block=0.3,
    pause=0.25,
    loop_seconds=0.5,
    loop_repeats=3,
    epoch_images=None,
    writeup_epoch_images=25,
    test_images=10_000,
    network_epoch_images={64: 1_920, 1: 300},
    profile_steps={64: 30, 1: 300},
)
QUICK = Settings(
    name="quick",
    warmup=1,
    blocks=1,
    min_repeats=1,
    max_repeats=3,
    seconds_per_block=0.02,
    pause=0.01,
    loop_seconds=0.05,
    loop_repeats=1,
    epoch_images={1: 256, 64: 640},
    writeup_epoch_images=2,
    test_images=500,
    network_epoch_images={64: 128, 1: 8},
    profile_steps={64: 2, 1: 3},
)


@dataclass
class Timing:
    """Seconds for the whole batch; scaled up when fewer samples were timed."""

    seconds: float
    samples: int = 1
    batch: int = 1

    @property
    def scaled(self):
        return self.samples < self.batch


def _block_time(run, settings, statistic):
    """statistic (median or min) of run()'s wall times after the warm-up calls."""
    for _ in range(settings.warmup):
        run()
    times = []
    started = time.perf_counter()
    while len(times) < settings.max_repeats and (
        len(times) < settings.min_repeats
        or time.perf_counter() - started < settings.seconds_per_block
    ):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistic(times)


def interleaved(runs, settings, statistic=statistics.median):
    """{name: seconds} of each run() in ``runs`` ({name: function of no arguments}).

    The libraries take turns, in settings.blocks blocks: each block warms a library up,
    times it (the median of its calls, or another ``statistic``), then rests
    settings.pause seconds before the next library starts, because a library's idle
    worker threads spin for a while after a call and would take cores from the next. A library's figure is its fastest block:
    on a shared machine the slower blocks measure the neighbours.
    """
    blocks = {name: [] for name in runs}
    for _ in range(settings.blocks):
        for name, run in runs.items():
            blocks[name].append(_block_time(run, settings, statistic))
            time.sleep(settings.pause)
    return {name: min(values) for name, values in blocks.items()}


def loop_timing(run_on, batch, settings):
    """Time run_on(samples), a loop over samples in Python, for the whole batch.

    One sample is timed first. If the whole batch fits in settings.loop_seconds it is
    timed like everything else; otherwise the loop runs on as many samples as fit, and
    the median is multiplied by batch / samples. Returns the Timing and the samples.
    """
    start = time.perf_counter()
    run_on(1)
    one_sample = time.perf_counter() - start
    if one_sample * batch <= settings.loop_seconds:
        seconds = interleaved({"loop": lambda: run_on(batch)}, settings)["loop"]
        return Timing(seconds), batch
    samples = int(max(1, settings.loop_seconds // one_sample))
    times = []
    for _ in range(settings.loop_repeats):
        start = time.perf_counter()
        run_on(samples)
        times.append(time.perf_counter() - start)
    return Timing(statistics.median(times) * batch / samples, samples, batch), samples
