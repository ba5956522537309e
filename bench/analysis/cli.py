"""The command-line options and input handling ``bench.aggregate`` and ``bench.report`` share."""

from __future__ import annotations

import argparse
import sys

from bench.analysis import load as sources
from bench.analysis.load import Loaded


def load(args: argparse.Namespace) -> Loaded:
    """Runs from the source the command line names."""
    if args.wandb:
        return sources.from_wandb(args.wandb, args.group, args.tag)
    return sources.from_records(args.runs)


def report_inputs(loaded: Loaded) -> None:
    """Says what was read, what was skipped and which runs failed."""
    done = int((loaded.runs["status"] == "completed").sum())
    print(f"read {len(loaded.runs)} runs: {done} completed, {len(loaded.failed)} failed")
    for path, reason in loaded.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    for _, run in loaded.failed.iterrows():
        print(f"failed run {run['run_id']} ({run.get('backbone')}): {run.get('error')}")


def arguments(prog: str, description: str, default_out: str) -> argparse.ArgumentParser:
    """The command-line options bench.aggregate and bench.report share."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--runs", default="results/runs", help="folder of records (default: %(default)s)"
    )
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read runs from W&B instead")
    parser.add_argument("--group", help="with --wandb: only this group (a multirun)")
    parser.add_argument("--tag", help="with --wandb: only runs with this tag")
    parser.add_argument(
        "--rows", default="backbone", help="axes for rows, comma-separated (default: %(default)s)"
    )
    parser.add_argument(
        "--cols", default="", help="axes for columns, comma-separated (default: none)"
    )
    parser.add_argument("--out", default=default_out, help="output folder (default: %(default)s)")
    return parser


def split(value: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]``."""
    return [part for part in value.split(",") if part]
