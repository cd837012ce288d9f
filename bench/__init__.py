"""Load and throughput harnesses (DESIGN.md B3). Run ``python -m bench.saga --help``."""
