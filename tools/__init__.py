"""Tooling that builds and checks the report; not part of the wslab library.

Run from the repository root (``python -m tools.report ...``), as ``benchmarks`` is.
"""
