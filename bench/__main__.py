"""``python -m bench``: the benchmark harness (bench/README.md)."""

import sys

from bench.saga import main

sys.exit(main())
