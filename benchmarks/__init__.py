"""Benchmarks of ImPartial for CellProfiler: accuracy against baselines, speed. Not tests: they measure.

Run everything with ``python -m benchmarks`` (see ``benchmarks/run_all.py``).
"""
