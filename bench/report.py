"""``python -m bench.report``: the comparison page; see :mod:`bench.analysis.report`."""

import sys

from bench.analysis.report import main

if __name__ == "__main__":
    sys.exit(main())
