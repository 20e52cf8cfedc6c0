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
         "The packed micro-kernel's inner loop runs at OpenBLAS's rate; the gap is in "
         "the edges and the C-tile traffic of each block (ENGINE.md §1). Would close "
         "it: prefetching the next A and B panels and C rows, edge tiles of their own."),
    Goal("GEMM, network shapes", "Matmul", NETWORK_SHAPES, "NumPy @", 1.2,
         "A product this small is over in 10-100 µs: the thread pool's hand-over and the "
         "partial last tile weigh. Would close it: a tile shaped for narrow n (256-bit "
         "lanes for n ≤ 12), one thread below a few MFLOP."),
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
         "1.5-1.6×. Would close it: a transposed reduction of the tiles' lanes."),
    Goal("Convolution 64→64 3×3, N=32", "Convolution, forward + backward",
         ("32, 64, 32, 32, 64, 3, 1, 1",), "PyTorch", 1.25,
         "Compute-bound: see the share of peak it needs."),
    Goal("Training step, LeNet, batch 64", "Network training step", ("LeNet, batch 64",),
         "PyTorch", 2.0,
         "Compute-bound: see the share of peak it needs; the per-layer profile below "
         "shows the 16→32 convolution's three passes as most of the step."),
    Goal("Training step, VGG-style, batch 64", "Network training step",
         ("VGG-style, batch 64",), "PyTorch", 1.5,
         "Compute-bound: see the share of peak it needs."),
    Goal("SimpleCNN epoch, batch 64", "Network epoch", ("SimpleCNN, batch 64",), "PyTorch",
         3.4,
         "The second 6→6 5×5 convolution's three passes are most of each step (profile "
         "below) and run at 60-65 % of peak; at 3.4× the whole epoch would need about "
         "that share of peak for every layer, memory-bound ones included."),
    Goal("SimpleCNN epoch, batch 1", "Network epoch", ("SimpleCNN, batch 1",), "PyTorch",
         6.0,
         "A step is about 14 kernel calls of 1-25 µs and 14 Python layer calls of "
         "2-5 µs each (profile below): the fixed cost per call, not arithmetic. Would "
         "close it: fewer, larger calls per step (a compiled step for a known layer "
         "list), outside the write-ups' one-call-per-layer contract."),
    Goal("Max-pool 2×2 fwd + bwd", "Max-pool 2×2, forward + backward", None, "PyTorch", 3.0,
         ""),
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
