"""``python -m bench``: the benchmark harness (bench/README.md)."""

import sys

from bench.cli import main

sys.exit(main())
