"""``python -m bench.sweep sweeps/FILE.yaml [--check]``: see :mod:`bench.launch.sweep`."""

import sys

from bench.launch.sweep import main

if __name__ == "__main__":
    sys.exit(main())
