"""``python -m salt``: the pipeline's command line."""

import sys

from salt.cli import main

sys.exit(main())
