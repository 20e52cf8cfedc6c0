"""fastcnn's benchmark harness, run from a checkout: ``python bench/run.py [--quick]``.

It lives in the repository, not in the installed package (the wheel carries no
benchmark and no copy of the write-ups' code). bench/README.md explains every section
and column; run.py assembles the report from one module per section.
"""
