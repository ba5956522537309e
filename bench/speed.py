"""``python -m bench.speed [--rounds N] [--out DIR] key=value ...``: what the harness costs.

Composes the run config from the overrides exactly as ``bench.run`` does, measures the
harness, a plain Keras loop, synthetic on-device data and the input pipeline alone in this
process (:mod:`bench.pipeline.speed`), prints images/s and the ratios, and writes them as
JSON under ``results/speed/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import bench  # noqa: F401  (sets TF_USE_LEGACY_KERAS first)
from bench.core import schema
from bench.core.console import say
from bench.core.errors import EXIT_CONFIG_ERROR, UserError
from bench.core.spec import build


def parser() -> argparse.ArgumentParser:
    """``python -m bench.speed``'s options (the documentation is built from them)."""
    found = argparse.ArgumentParser(prog="python -m bench.speed", description=__doc__)
    found.add_argument("--rounds", type=int, default=3, help="measured rounds (default: 3)")
    found.add_argument("--out", default="results/speed", help="folder for the JSON")
    found.add_argument("overrides", nargs="*", help="run config overrides, as for bench.run")
    return found


def main(argv: list[str] | None = None) -> int:
    """Parses the options, measures, prints and writes the JSON; 2 for a config error."""
    args = parser().parse_args(argv)
    try:
        spec = build(schema.compose(args.overrides))
    except UserError as error:
        say(f"config error: {error}", error=True)
        return EXIT_CONFIG_ERROR
    from bench.pipeline import speed  # TensorFlow loads here, once the config is valid

    speed.write(speed.measure_speed(spec, rounds=args.rounds), spec, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
