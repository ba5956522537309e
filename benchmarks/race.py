"""What a race saves: a race, then the full grid of the same candidates and seeds.

``python benchmarks/race.py`` runs, in a fresh folder, with W&B off:

1. the race: ``python -m bench.run -m hydra/sweeper=race <sweep> experiment=demo`` with
   ``min_seeds`` and ``max_seeds`` (``--sweep``: the candidates, one or more swept
   overrides, default ``backbone=b0,b1,mobilenet_v2``);
2. the grid: the same points for every seed up to ``max_seeds`` (the race's completed
   points are skipped, so only the runs the race spared are trained);

and prints, as JSON: the runs and training hours each took, the race's outcome (each
surviving candidate's configuration, chosen on validation, and its test accuracy), and the
full grid's choices and verdict (each candidate at its own best) to set beside it. Any other
arguments are run overrides for both (e.g. ``epochs=2``).

``--grid-first`` trains the grid first and then races on its records, so that one grid
serves races under several rules (``--test``, ``--min-seeds``, ``--out`` again): the race
trains nothing and decides from the records it would have trained itself (a seed's run
is the same bit for bit on a CPU, README "Reproducibility"), and its runs are the points
it read.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench  # noqa: F401  (sets TF_USE_LEGACY_KERAS first)


def _run(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bench.run", *args], cwd=cwd, check=False)
    return time.perf_counter() - start


def _hours(runs_dir: Path, run_ids: set[str] | None = None) -> tuple[int, float]:
    from bench.core import record

    count, seconds = 0, 0.0
    for path in runs_dir.glob("*.json"):
        found = record.read(path)
        if found.completed and (run_ids is None or found.run_id in run_ids):
            count += 1
            seconds += found.metrics.train_time_s or 0.0
    return count, seconds / 3600


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", nargs="+", default=["backbone=b0,b1,mobilenet_v2"])
    parser.add_argument("--min-seeds", type=int, default=3)
    parser.add_argument("--max-seeds", type=int, default=8)
    parser.add_argument("--out", help="folder to run in (default: a new temporary one)")
    parser.add_argument("--test", default="blocks", help="hydra.sweeper.test")
    parser.add_argument(
        "--compare", default="backbone", help="hydra.sweeper.compare, comma-separated"
    )
    parser.add_argument("--grid-first", action="store_true")
    args, overrides = parser.parse_known_args(argv)
    root = Path(args.out or tempfile.mkdtemp(prefix="bench-race-"))
    root.mkdir(parents=True, exist_ok=True)
    runs = root / "runs"
    common = [*args.sweep, "experiment=demo", "wandb.mode=disabled",
              f"results_dir={runs}", *overrides]  # fmt: skip
    seeds = ",".join(str(s) for s in range(1, args.max_seeds + 1))
    grid_s = _run(["-m", *common, f"seed={seeds}"], root) if args.grid_first else 0.0
    before = {path.name for path in (runs / "races").glob("*.json")}
    race_s = _run(["-m", "hydra/sweeper=race", f"hydra.sweeper.min_seeds={args.min_seeds}",
                   f"hydra.sweeper.max_seeds={args.max_seeds}", f"hydra.sweeper.test={args.test}",
                   f"hydra.sweeper.compare=[{args.compare}]", *common], root)  # fmt: skip
    (race_file,) = [p for p in (runs / "races").glob("*.json") if p.name not in before]
    race = json.loads(race_file.read_text())
    if args.grid_first:
        race_runs, race_hours = race["outcome"]["runs"], race["outcome"]["training_hours"]
    else:
        race_runs, race_hours = _hours(runs)
        grid_s = _run(["-m", *common, f"seed={seeds}"], root)
    grid_runs, grid_hours = _hours(runs)

    from bench.analysis import load, select, tables, verdict

    compare = [c for c in args.compare.split(",") if c]
    (comparison,) = tables.comparisons(load.from_records(runs).runs, compare).values()
    study = select.study(comparison, compare)
    decided = verdict.decide(study)
    print(json.dumps({
        "folder": str(root),
        "race": {"runs": race_runs, "training_hours": round(race_hours, 3),
                 "wall_s": round(race_s, 1), "outcome": race["outcome"]},
        "grid": {"runs": grid_runs, "training_hours": round(grid_hours, 3),
                 "wall_s": round(grid_s, 1), "leader": decided.leader,
                 "chosen": {c.label: c.chosen.label for c in study.choices},
                 "validation": {c.label: round(c.chosen.mean_val, 4) for c in study.choices}},
        "saved": {"runs": grid_runs - race_runs,
                  "share_of_training_time": round(1 - race_hours / grid_hours, 3)},
        "grid_verdict": decided.lines,
    }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
