"""The benchmark harness (performance is measured by a harness, never by a timed test): ``python -m bench --help``."""
