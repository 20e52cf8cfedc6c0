"""Read LeakSanitizer reports and print the leaks of memory fastcnn._core allocated.

Usage: python .ci/lsan_report.py REPORT...   (exit status 1 if there is any)

Python and numpy leave memory unreleased at exit by design, so a report always
lists leaks; the ones that count are direct leaks with a frame in _core (its
code or the csrc/ sources), less the allocations pybind11 makes once when the
module is imported and keeps for the life of the process.
"""

import re
import sys

OURS = re.compile(r"fastcnn/_core\.|fastcnn::|/csrc/")
# pybind11 builds each function's record and its internals once, at import.
IMPORT_TIME = re.compile(r"PyInit__core|pybind11_init__core|pybind11::detail::get_internals"
                         r"|pybind11::cpp_function::make_function_record")


def leaks(text):
    """Each direct leak of a report: its first line and its stack."""
    for block in re.split(r"\n(?=(?:Direct|Indirect) leak of )", text):
        if block.startswith("Direct leak of "):
            lines = block.strip().splitlines()
            yield lines[0], [line for line in lines[1:] if line.strip().startswith("#")]


def main(paths):
    found = 0
    total = 0
    for path in paths:
        with open(path, errors="replace") as report:
            for title, stack in leaks(report.read()):
                total += 1
                frames = "\n".join(stack)
                if OURS.search(frames) and not IMPORT_TIME.search(frames):
                    found += 1
                    print(title)
                    print(frames)
                    print()
    print(f"LeakSanitizer: {total} direct leaks reported, {found} of them from fastcnn._core")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
