"""``python -m bench.agents SWEEP``: one W&B agent per GPU; see :mod:`bench.launch.agents`."""

import sys

from bench.launch.agents import main

if __name__ == "__main__":
    sys.exit(main())
