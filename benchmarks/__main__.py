"""``python -m benchmarks``: run the benchmark suite (see :mod:`benchmarks`)."""

import sys

from benchmarks.run import main

sys.exit(main())
