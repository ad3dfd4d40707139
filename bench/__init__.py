"""Benchmarks: the notebook-style baseline, the comparison harness, scale and dashboard load."""
