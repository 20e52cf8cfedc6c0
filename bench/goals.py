"""The speed goals fastcnn holds itself to, against this run's figures.

Each goal is a ratio (the anchor's time ÷ fastcnn's) that every case it covers must
reach. For a missed one the report gives the measured figure and, where the case's
FLOPs are counted, the share of the host's measured peak that meeting it would take:
the anchor's own share times the target. Past 100 % no program can meet the goal on
this host; past about 85 % only a kernel as good as the best GEMMs could (OpenBLAS's
reach 82-85 % here). What limits the rest, and what would close it, is written beside
each goal, from the profiles in the "Profile" section.
"""

from typing import NamedTuple

from .report import table

WRITEUP_SHAPES = ("1, 28, 28, 6, 3, 1, 0", "1, 28, 28, 5, 3, 2, 1", "1, 28, 28, 6, 5, 1, 2",
                  "6, 28, 28, 6, 5, 1, 2", "3, 32, 32, 10, 5, 1, 2", "10, 16, 16, 20, 5, 1, 2")
SQUARE = tuple(f"({n}×{n})·({n}×{n}) {dtype}" for dtype in ("float32", "float64")
               for n in (512, 1024, 2048))
NETWORK_SHAPES = tuple(f"({m}×{k})·({k}×{n}) {dtype}" for dtype in ("float32", "float64")
                       for m, k, n in ((64, 784, 100), (64, 1176, 10), (1000, 1280, 100)))


class Goal(NamedTuple):
    name: str
    section: str  # of report.ratios
    cases: tuple  # the case labels it covers, or None for all of the section's
    alternative: str  # the anchor
    target: float  # anchor time ÷ fastcnn time, at least
    limits: str  # what limits it where it is missed, and what would close it


GOALS = (
    Goal("GEMM, square", "Matmul", SQUARE, "NumPy @", 1.0,
         "float32 is at OpenBLAS's rate within a few percent. float64 is limited by one "
         "thread's rate (48-51 GFLOP/s, OpenBLAS about 52): its k-block of 344 makes a "
         "12×344 A panel of 33 KB, more than a 32 KB L1. Would close it: float64 blocks "
         "sized to L1 and a tile of its own; for 512², starting on the first k-step "
         "before all of B is packed."),
    Goal("GEMM, network shapes", "Matmul", NETWORK_SHAPES, "NumPy @", 1.2,
         "Calls of 10-100 µs, where two-thread figures are bimodal: in some processes the "
         "second thread is asleep when each short call starts and the caller runs both "
         "halves, so the table shows one thread's rate ((64×1176)·(1176×10) float32: "
         "11.9 µs in 5 of 6 fresh processes, 21.7 µs in the sixth; OpenBLAS 24 µs). "
         "Would close it: finding why the worker misses those calls (it spins 150 µs "
         "after each), then keeping it awake through a run of short calls."),
    Goal("Convolution fwd + bwd, write-up layers, N=64", "Convolution, forward + backward",
         tuple(f"64, {shape}" for shape in WRITEUP_SHAPES), "PyTorch", 2.0,
         "The 10→20-channel layer (003b, 16×16, 5×5) runs each of its three passes within "
         "1.06-1.18× of oneDNN's time, the forward at about 45 G multiply-adds/s per core "
         "(three quarters of the FMA peak): see the share of peak it would need. Would close it: "
         "fewer multiplies (Winograd-style transforms), not tuning."),
    Goal("Convolution fwd + bwd, write-up layers, N=1", "Convolution, forward + backward",
         tuple(f"1, {shape}" for shape in WRITEUP_SHAPES), "PyTorch", 5.0,
         "003b at N=1: the weight gradient is the slowest pass (46 µs on one thread): an "
         "image of 256 pixels is too short for its register tiles, so the sums across "
         "lanes at the end of each tile weigh; one image split over two threads gains "
         "1.5-1.6×. Would close it: a transposed reduction of the tiles' lanes. The other "
         "N=1 calls (5-50 µs) show the two-thread bimodality of the small GEMMs (see "
         "there): 001 and 004b measured 7.1× and 6.2× in the kernels' own before/after "
         "run."),
    Goal("Convolution 64→64 3×3, N=32", "Convolution, forward + backward",
         ("32, 64, 32, 32, 64, 3, 1, 1",), "PyTorch", 1.25,
         "Compute-bound: oneDNN already runs at three quarters of the peak, so 1.25× "
         "its speed is nearly all of it (the needed share above); fastcnn's three "
         "passes run at oneDNN's rate. Would close it: fewer multiplies (Winograd "
         "F(2×2, 3×3) does 2.25× fewer), not tuning."),
    Goal("Training step, LeNet, batch 64", "Network training step", ("LeNet, batch 64",),
         "PyTorch", 2.0,
         "The 16→32 convolution's three passes are most of the step at two thirds of "
         "the peak, and the ReLU and pooling layers, memory-bound, take about a sixth "
         "(profile below): at 2× PyTorch the products would need nearly all of the "
         "peak. Would close it: ReLU and pooling fused into the convolutions' passes, so "
         "the memory-bound sixth goes, and fewer multiplies in the 5×5 convolutions."),
    Goal("Training step, VGG-style, batch 64", "Network training step",
         ("VGG-style, batch 64",), "PyTorch", 1.5,
         "oneDNN runs this network at over two thirds of the peak, and fastcnn at the "
         "same rate: 1.5× its speed needs more than the peak (the needed share "
         "above). Not possible on this host with the same arithmetic; would need "
         "fewer multiplies (Winograd for the 3×3 layers)."),
    Goal("SimpleCNN epoch, batch 64", "Network epoch", ("SimpleCNN, batch 64",), "PyTorch",
         3.4,
         "The second 6→6 5×5 convolution's three passes are three quarters of a step at "
         "two thirds of the peak; the other layers, mostly memory-bound, take the rest "
         "(profile below). At 3.4× PyTorch's epoch a step may take about 1.6 ms, which "
         "that convolution alone needs at its current rate: meeting it needs it above "
         "the peak. Would close it: fewer multiplies for 5×5 (Winograd), and ReLU and "
         "pooling fused into its passes."),
    Goal("SimpleCNN epoch, batch 1", "Network epoch", ("SimpleCNN, batch 1",), "PyTorch",
         6.0,
         "A step is about 14 kernel calls of 1-25 µs and 14 Python layer calls of "
         "2-5 µs each (profile below): the fixed cost per call, not arithmetic. Would "
         "close it: fewer, larger calls per step (a compiled step for a known layer "
         "list), outside the write-ups' one-call-per-layer contract."),
    Goal("Max-pool 2×2 fwd + bwd", "Max-pool 2×2, forward + backward", None, "PyTorch", 3.0,
         "Against PyTorch in channels_last memory, whose pooling reads each pixel's "
         "channels as one contiguous vector: fastcnn pools NCHW planes, a 32-column plane "
         "giving rows of 16 outputs, and writes an int64 argmax per output. Would close "
         "it: the channels-last layout kept between layers that the convolutions want "
         "too."),
)
PEAK_MEMORY_GOAL_MIB = 400


def _status(measured, target):
    return "met" if measured >= target else "**missed**"


def goals_section(report):
    """The goals table from report.ratios and report.shares; None when the run measured
    none of the goals' cases (only some sections, or no PyTorch)."""
    ratios = {(section, case, alternative): ratio
              for section, case, alternative, ratio in report.ratios}
    rows, missed = [], []
    for goal in GOALS:
        cases = goal.cases or tuple(dict.fromkeys(
            case for section, case, alternative, _ in report.ratios
            if section == goal.section and alternative == goal.alternative))
        for case in cases:
            key = (goal.section, case, goal.alternative)
            if key not in ratios:
                continue
            measured = ratios[key]
            share = report.shares.get(key)
            needed = "—" if share is None else f"{share:.0%} → {share * goal.target:.0%}"
            rows.append([goal.name, case, f"≥ {goal.target:g}×", f"{measured:.2f}×",
                         _status(measured, goal.target), needed])
            if measured < goal.target and goal not in missed:
                missed.append(goal)
    if report.peak_memory_mib:
        peak = max(report.peak_memory_mib)
        rows.append(["Peak memory, SimpleCNN epoch", "end to end, fresh process",
                     f"≤ {PEAK_MEMORY_GOAL_MIB} MiB", f"{peak:.0f} MiB",
                     "met" if peak <= PEAK_MEMORY_GOAL_MIB else "**missed**", "—"])
    if not rows:
        return None
    notes = "\n".join(f"- {goal.name}: {goal.limits}" for goal in missed if goal.limits)
    return (
        "## Goals\n\n"
        "Each goal is the anchor's time ÷ fastcnn's, from the tables below (PyTorch: its "
        "faster layout; NumPy: its BLAS). \"Anchor's share of peak → needed\": the "
        "anchor's own GFLOP/s as a share of this host's measured peak, and the share "
        "fastcnn would need to meet the goal (the anchor's × the target). Past 100 % no "
        "program can; the best GEMM kernels here reach 82-85 %.\n\n"
        + table(["goal", "case", "target", "measured", "", "anchor's share of peak → needed"],
                rows)
        + ("\n\nWhat limits the missed goals, and what would close them:\n\n" + notes
           if notes else "")
    )
