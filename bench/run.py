"""Run fastcnn's benchmark: python bench/run.py [--quick] [--out bench/results.md] ...

A thin wrapper around fastcnn.bench.main (see `python bench/run.py --help` and
bench/README.md). Without --out the report is written beside this script.
"""

import sys
from pathlib import Path

from fastcnn.bench import main

if __name__ == "__main__":
    arguments = sys.argv[1:]
    if not any(argument == "--out" or argument.startswith("--out=") for argument in arguments):
        arguments += ["--out", str(Path(__file__).resolve().with_name("results.md"))]
    sys.exit(main(arguments))
