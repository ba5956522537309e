"""``python -m bench.worker SPEC_JSON``: the worker's entry point, one run in this fresh process."""

from __future__ import annotations

import sys
from pathlib import Path

import bench  # noqa: F401  (sets TF_USE_LEGACY_KERAS first)
from bench.core.spec import RunSpec
from bench.pipeline.execute import execute


def main(argv: list[str]) -> int:
    """Runs the spec file named by ``argv[0]``; exit code 1 when the run failed."""
    spec = RunSpec.from_json(Path(argv[0]).read_text())
    return 0 if execute(spec).completed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
