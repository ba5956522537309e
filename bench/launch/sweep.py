"""``python -m bench.sweep sweeps/FILE.yaml``: check a W&B sweep file, create the sweep.

A sweep file drives ``python -m bench.run`` through ``wandb agent`` with Hydra overrides
(``command: [${env}, ${interpreter}, -m, bench.run, ${args_no_hyphens}]``). Before anything
is created, every parameter value it can take is composed into the real config and
validated, so a typo fails here and not on the agents.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import wandb
import yaml

from bench.core import schema
from bench.core.errors import EXIT_CONFIG_ERROR
from bench.core.spec import build
from bench.core.wandb_mode import has_credentials

_COMMAND = ["${env}", "${interpreter}", "-m", "bench.run", "${args_no_hyphens}"]
_GRID_LIMIT = 256  # beyond this, values are checked one parameter at a time


def candidates(spec: dict) -> list:
    """The values of one sweep parameter worth checking (all, or a distribution's bounds)."""
    if "value" in spec:
        return [spec["value"]]
    if "values" in spec:
        return list(spec["values"])
    return [spec[bound] for bound in ("min", "max") if bound in spec]


def overrides(assignment: dict) -> list[str]:
    """Hydra overrides as the agent writes them: ``name=str(value)``."""
    return [f"{name}={value}" for name, value in assignment.items()]


def assignments(parameters: dict) -> list[dict]:
    """Every combination for small grids, else each value with the others at their first."""
    names = list(parameters)
    options = [candidates(parameters[name]) for name in names]
    total = 1
    for values in options:
        total *= len(values)
    if total <= _GRID_LIMIT:
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*options)]
    first = {name: values[0] for name, values in zip(names, options, strict=True)}
    return [
        {**first, name: value}
        for name, values in zip(names, options, strict=True)
        for value in values
    ]


def problems(sweep: dict) -> list[str]:
    """What is wrong with a sweep file; empty when every value composes and validates."""
    found = []
    if sweep.get("command") != _COMMAND:
        found.append(f"command must be {_COMMAND} (got {sweep.get('command')})")
    if sweep.get("method") not in ("grid", "random", "bayes"):
        found.append(f"method {sweep.get('method')!r} is not grid, random or bayes")
    if not sweep.get("metric", {}).get("name"):
        found.append("metric.name is missing")
    for assignment in assignments(sweep.get("parameters", {})):
        try:
            build(schema.compose(overrides(assignment)))
        except Exception as error:  # noqa: BLE001  (every failure is reported by value)
            cause = error.__cause__ or error
            found.append(f"{' '.join(overrides(assignment))}: {cause}")
    return found


def parser() -> argparse.ArgumentParser:
    """``python -m bench.sweep``'s options (the documentation is built from them)."""
    found = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__)
    found.add_argument("file", type=Path, help="a sweep YAML, e.g. sweeps/wandb_report.yaml")
    found.add_argument("--project", default=None, help="W&B project (default: file or bench)")
    found.add_argument("--entity", default=None, help="W&B entity (default: your default)")
    found.add_argument("--check", action="store_true", help="only check the file, offline")
    return found


def main(argv: list[str] | None = None) -> int:
    """Checks the sweep file, creates the sweep on W&B and prints the agent command."""
    args = parser().parse_args(argv)
    sweep = yaml.safe_load(args.file.read_text())
    found = problems(sweep)
    if found:
        print(f"{args.file}: {len(found)} problem(s)", *found, sep="\n  ", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    print(f"{args.file}: every parameter value composes into a valid config")
    if args.check:
        return 0
    if not has_credentials():
        print("W&B sweeps need the W&B server: run `wandb login` (or set WANDB_API_KEY).")
        return EXIT_CONFIG_ERROR
    project = args.project or sweep.get("project") or "bench"
    sweep_id = wandb.sweep(sweep=sweep, project=project, entity=args.entity)
    path = "/".join(p for p in (args.entity or sweep.get("entity"), project, sweep_id) if p)
    print(f"created sweep {sweep_id}; start an agent with:\n  wandb agent {path}")
    print(f"one agent per GPU of this machine:\n  python -m bench.agents {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
