"""Benchmarks and measurements (not part of the package; run with `python -m benchmarks.<name>`)."""
