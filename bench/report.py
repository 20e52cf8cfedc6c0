"""The report being built: answer checks, sections of Markdown, ratios for the chart;
and the formatting of its cells."""

import sys
import time
from dataclasses import dataclass, field

import numpy as np

# Allowed error, relative to the largest magnitude of the expected array.
TOLERANCE = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}


@dataclass
class Check:
    name: str
    problems: list  # what differed; empty when the answers match


@dataclass
class Report:
    checks: list = field(default_factory=list)
    sections: list = field(default_factory=list)  # Markdown text, in order
    ratios: list = field(default_factory=list)  # (section, case, alternative, ratio)
    # (section, case, alternative) -> that alternative's share of the peak, where the
    # case's FLOPs are counted: what a goal of k times its speed would need is k times it.
    shares: dict = field(default_factory=dict)
    peak_memory_mib: list = field(default_factory=list)  # fastcnn's, per end-to-end run
    peak: object = None  # peak.Peak: the rate every GFLOP/s is a share of
    started: float = field(default_factory=time.perf_counter)

    def progress(self, message):
        """Say on stderr what runs now, and since when the run started."""
        elapsed = time.perf_counter() - self.started
        print(f"[{elapsed:6.1f} s] {message}", file=sys.stderr, flush=True)

    def compare(self, name, actual, expected):
        """Record whether each named array of ``actual`` matches ``expected``."""
        problems = []
        for array_name, value in actual.items():
            problem = difference(value, expected[array_name])
            if problem:
                problems.append(f"{array_name}: {problem}")
        self.checks.append(Check(name, problems))

    @property
    def failed_checks(self):
        return [check for check in self.checks if check.problems]


def difference(actual, expected):
    """None when actual matches expected, else a sentence saying how it differs."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        return f"shape {actual.shape} instead of {expected.shape}"
    if expected.dtype.kind in "iu":
        differing = np.count_nonzero(actual != expected)
        return f"{differing} of {expected.size} indices differ" if differing else None
    if expected.size == 0:
        return None
    tolerance = max(TOLERANCE[actual.dtype], TOLERANCE[expected.dtype])
    error = np.max(np.abs(actual.astype(np.float64) - expected.astype(np.float64)))
    largest = np.max(np.abs(expected.astype(np.float64)))
    if error <= tolerance * largest:  # False for NaN
        return None
    return (
        f"max error {error:.3g} is more than {tolerance:g} of the largest value "
        f"{largest:.3g}"
    )


def checks_section(report):
    failed = report.failed_checks
    if failed:
        summary = f"**ANSWER MISMATCH: {len(failed)} of {len(report.checks)} checks failed.**\n\n"
        summary += "\n".join(
            f"- {check.name}: {'; '.join(check.problems)}" for check in failed
        )
    elif not report.checks:
        summary = "No answer checks ran in the sections chosen."
    else:
        summary = (
            f"All {len(report.checks)} answer checks passed: every array matches to "
            "1e-4 (float32) or 1e-10 (float64) of its largest magnitude, and argmax "
            "indices exactly."
        )
    listing = "\n".join(
        f"- {'FAILED' if check.problems else 'passed'}: {check.name}" for check in report.checks
    )
    return (
        "## Answer checks\n\n"
        + summary
        + "\n\n<details><summary>Every check</summary>\n\n"
        + listing
        + "\n\n</details>"
    )


# --------------------------------------------------------------------------- cells


def format_seconds(seconds):
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    if seconds < 600:
        return f"{seconds:.3g} s"
    return f"{seconds / 60:.3g} min"


def format_ratio(ratio):
    if ratio < 10:
        return f"{ratio:.2f}×"
    if ratio < 100:
        return f"{ratio:.1f}×"
    return f"{ratio:,.0f}×"


def format_rate(flops, seconds, peak):
    """'123.4 (56%)': GFLOP/s, and its share of the peak (GFLOP/s)."""
    gflops = flops / seconds / 1e9
    return f"{gflops:.1f} ({gflops / peak:.0%})"


def cell(timing, fastcnn_timing=None):
    """'12.3 ms (4.10×) [2/64]': time, ratio to fastcnn, samples timed when scaled."""
    if isinstance(timing, str):
        return timing
    text = format_seconds(timing.seconds)
    if fastcnn_timing is not None:
        text += f" ({format_ratio(timing.seconds / fastcnn_timing.seconds)})"
    if timing.scaled:
        text += f" [{timing.samples:,}/{timing.batch:,}]"
    return text


def first_samples(samples, batch):
    """' (first 2 of 64 samples)' when a check saw only part of the batch."""
    return "" if samples == batch else f" (first {samples} of {batch} samples)"


def table(header, rows):
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)

