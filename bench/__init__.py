"""Load and throughput harnesses (measured by a harness, never by a timed test). Run ``python -m bench.saga --help``."""
