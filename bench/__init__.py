"""Benchmarks for close-mcp; run `python bench/run.py` (see bench/RESULTS.md)."""
