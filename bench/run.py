"""fastcnn's benchmark: python bench/run.py [--quick] [--out bench/results.md] ...

Times fastcnn's kernels and whole networks against NumPy, the write-ups' own code and
PyTorch (when installed), in this one process and at the same thread count; checks
every answer against the others (a mismatch makes the run fail, exit status 1); writes
a Markdown report (and a PNG chart of the ratios beside it when matplotlib is
installed) and prints it. Run it from a checkout with fastcnn installed; for NumPy's
own OpenBLAS kernel, as ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python
bench/run.py``. bench/README.md explains every section and column. ``fastcnn bench``
runs this file too.
"""

import contextlib
import datetime
import io
import platform
import sys
import time
from pathlib import Path

if not __package__:
    # Run as a script: import this folder as the package `bench`, never its files as
    # top-level modules (bench/report.py must not hide another `report`).
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402 (after the path is set)

import fastcnn  # noqa: E402
from fastcnn.cli import OneLineParser, positive_int_argument  # noqa: E402
from bench import machine  # noqa: E402
from bench.chart import write_chart  # noqa: E402
from bench.conv import conv_section  # noqa: E402
from bench.end_to_end import end_to_end_section  # noqa: E402
from bench.goals import goals_section  # noqa: E402
from bench.libraries import find_libraries, version  # noqa: E402
from bench.matmul import matmul_section  # noqa: E402
from bench.measure import FULL, QUICK  # noqa: E402
from bench.networks import networks_section  # noqa: E402
from bench.peak import host_peak  # noqa: E402
from bench.pool import pool_section  # noqa: E402
from bench.profile import profile_section  # noqa: E402
from bench.report import Report, checks_section, format_seconds  # noqa: E402
from bench.threads import threads_section  # noqa: E402

SECTIONS = ("conv", "pool", "matmul", "networks", "profile", "end-to-end", "threads")
DEFAULT_OUT = Path(__file__).resolve().with_name("results.md")


def _parser(prog):
    parser = OneLineParser(
        prog=prog,
        description="Time fastcnn's kernels and networks against NumPy, the write-ups' "
        "own code and PyTorch (when installed), check every answer, and write a "
        "Markdown report. For NumPy's own OpenBLAS kernel run it as "
        f"`{machine.CLEAN_COMMAND}`.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a subset of the cases with tiny repeat counts, to check answers in seconds",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="PATH",
        help="the Markdown report to write; the PNG chart goes beside it "
        "(default: results.md beside this script)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int_argument,
        metavar="N",
        help="threads for fastcnn, PyTorch and NumPy's BLAS (default: "
        f"fastcnn.get_num_threads(), now {fastcnn.get_num_threads()})",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        default=list(SECTIONS),
        metavar="SECTION",
        help=f"run only these sections, of {', '.join(SECTIONS)} (default: all)",
    )
    return parser


def _blas_threads(libraries, threads):
    """A context limiting NumPy's BLAS to ``threads`` (threadpoolctl), and what it says."""
    if libraries.threadpoolctl is None:
        return contextlib.nullcontext(), "its own default (threadpoolctl is not installed)"
    limits = libraries.threadpoolctl.threadpool_limits(limits=threads, user_api="blas")
    return limits, f"{threads} (`threadpoolctl.threadpool_limits`)"


def _header(settings, threads, blas_threads, config, peak, load_at_start, seconds, chart_note):
    if settings.quick:
        timing = (
            f"{settings.min_repeats}–{settings.max_repeats} runs after {settings.warmup} "
            "warm-up run, one block: **quick mode, for checking answers; the figures are "
            "rough**"
        )
    else:
        timing = (
            f"the libraries of a case take turns in {settings.blocks} blocks, "
            f"{settings.pause:g} s apart; each block is {settings.warmup} warm-up runs, "
            f"then {settings.min_repeats}–{settings.max_repeats} runs (at least "
            f"{settings.seconds_per_block:g} s); each figure is the fastest block's median"
        )
    lines = [
        "# fastcnn benchmark",
        "",
        f"- Run: {settings.name}, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"- Machine: {machine.cpu_model()}, {machine.usable_cpus()} usable logical CPUs, "
        f"{platform.system()} {platform.machine()}",
        f"- Load average (1, 5, 15 min): {load_at_start} at the start, "
        f"{machine.load_average()} at the end; the run took {format_seconds(seconds)}",
        f"- fastcnn: {config}",
        f"- Threads: fastcnn {threads}, PyTorch {threads} (`torch.set_num_threads`), "
        f"NumPy's BLAS {blas_threads}",
        f"- Peak: {peak.gflops:.0f} GFLOP/s float32; {peak.source}. Every \"% of peak\" "
        "is a share of it.",
        f"- Versions: Python {platform.python_version()}, NumPy {np.__version__}, "
        f"SciPy {version('scipy')}, PyTorch {version('torch')}, "
        f"matplotlib {version('matplotlib')}",
        f"- Timing: `time.perf_counter`; {timing}",
        "- Cells: time for the whole batch, then (that time ÷ fastcnn's): above 1 "
        "means fastcnn is faster. [n/N]: timed on n of the N samples and scaled by N/n.",
        f"- Chart: {chart_note}",
    ]
    warning = machine.openblas_warning()
    if warning:
        lines.insert(2, f"- {warning}")
    return "\n".join(lines)


def _run_sections(sections, settings, libraries, report, threads):
    if "conv" in sections:
        conv_section(settings, libraries, report)
    if "pool" in sections:
        pool_section(settings, libraries, report)
    if "matmul" in sections:
        matmul_section(settings, libraries, report)
    if "networks" in sections:
        networks_section(settings, libraries, report)
    if "profile" in sections:
        profile_section(settings, libraries, report)
    if "end-to-end" in sections:
        end_to_end_section(settings, libraries, report, threads)
    if "threads" in sections:
        threads_section(settings, report)


def main(argv=None, prog="python bench/run.py"):
    """Run the benchmark; returns 0, or 1 when an answer check failed."""
    parser = _parser(prog)
    args = parser.parse_args(argv)
    if args.out.is_dir():
        parser.error(f"--out {args.out} is a folder; name the report file, e.g. "
                     f"{args.out / 'results.md'}")

    settings = QUICK if args.quick else FULL
    libraries = find_libraries()
    load_at_start = machine.load_average()
    original_threads = fastcnn.get_num_threads()
    threads = args.threads or original_threads
    torch = libraries.torch
    original_torch_threads = torch.get_num_threads() if torch else None
    blas_limits, blas_threads = _blas_threads(libraries, threads)
    report = Report()
    try:
        fastcnn.set_num_threads(threads)
        if torch is not None:
            torch.set_num_threads(threads)
        with blas_limits:
            with contextlib.redirect_stdout(io.StringIO()):
                config = fastcnn.show_config()
            report.progress("peak")
            report.peak = host_peak(threads, settings, torch)
            _run_sections(args.only, settings, libraries, report, threads)
    finally:
        fastcnn.set_num_threads(original_threads)
        if torch is not None:
            torch.set_num_threads(original_torch_threads)

    chart_path = args.out.with_suffix(".png")
    if libraries.matplotlib is None:
        chart_note = "not drawn: matplotlib is not installed"
    elif not report.ratios:
        chart_note = "not drawn: no ratios were measured"
    else:
        chart_note = f"`{chart_path.name}`, beside this file\n\n![ratios]({chart_path.name})"
    header = _header(settings, threads, blas_threads, config, report.peak, load_at_start,
                     time.perf_counter() - report.started, chart_note)
    goals = goals_section(report)
    text = "\n\n".join([header, checks_section(report)] + ([goals] if goals else [])
                         + report.sections) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    if libraries.matplotlib is not None and report.ratios:
        write_chart(chart_path, report.ratios)
    print(text)
    failed = report.failed_checks
    if failed:
        print(
            f"ANSWER MISMATCH: {len(failed)} of {len(report.checks)} checks failed "
            f"(details in {args.out})",
            file=sys.stderr,
        )
        for check in failed:
            print(f"  {check.name}: {'; '.join(check.problems)}", file=sys.stderr)
        return 1
    print(
        f"{len(report.checks)} answer checks, all passed; report written to {args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
