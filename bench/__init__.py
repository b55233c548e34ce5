"""Formica's benchmarks: `make bench` (``python -m bench.run``) runs them all; see bench/README.md."""
