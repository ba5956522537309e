"""``python -m bench.aggregate``: tidy tables from runs; see :mod:`bench.analysis.tables`."""

import sys

from bench.analysis.tables import main

if __name__ == "__main__":
    sys.exit(main())
