"""Benchmark: what the feature cache saves, end to end (goals: a 10-epoch frozen run at
least 8x faster with the cache, a 12-run sweep at least 30x).

    python benchmarks/feature_cache.py [--part run|sweep|six|all] [--out DIR] [key=value ...]

Runs the real command, ``python -m bench.run``, in fresh folders and times each with the
wall clock: the run (or the sweep over heads ``linear,mlp,keras_io`` x optimizers
``adam,sgd`` x batch sizes ``16,32``) once with ``feature_cache=false``, then with the
cache: for the single run the run that fills it and a second run that hits it. The
defaults are B0 at its native 224 px, frozen, 10 epochs, the whole ``shapes`` dataset
(1,600 training, 400 validation and 400 test images), W&B as a user without an account
gets it (offline); any other run config can be passed as overrides. The backbone has
random weights (no download here), so every head scores chance: the benchmark is about
time; that the cache gives the same numbers is checked by the test suite. Prints a
table and writes it as JSON to ``<out>/feature_cache-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tensorflow_datasets as tfds

import bench.pipeline.datasets.shapes  # noqa: F401  (registers the shapes builder)

RUN = ["backbone=b0", "backbone.weights=none", "dataset=shapes", "freeze=frozen",
       "epochs=10"]  # fmt: skip
SWEEP = ["-m", "head=linear,mlp,keras_io", "optimizer=adam,sgd", "batch_size=16,32"]
SIX = ["-m", "head=linear,mlp,keras_io", "optimizer=adam,sgd"]


def bench_run(folder: Path, data_dir: Path, args: list[str]) -> dict:
    """Runs ``python -m bench.run ARGS`` in ``folder``; its wall clock and its records."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TFDS_DATA_DIR": str(data_dir), "WANDB_DIR": str(folder)}
    command = [sys.executable, "-m", "bench.run", *args, f"results_dir={folder / 'runs'}"]
    print("$", " ".join(command[1:]), flush=True)
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"bench.run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    records = [json.loads(p.read_text()) for p in sorted((folder / "runs").glob("*.json"))]
    train = sum(r["metrics"]["train_time_s"] for r in records)
    caches = sorted(r["feature_cache"]["status"] for r in records)
    fills = [r["feature_cache"]["fill_time_s"] for r in records]
    fill = sum(f for f in fills if f)
    print(f"  {wall:.1f} s wall clock, {train:.1f} s training, cache {caches}", flush=True)
    return {"wall_s": wall, "train_time_s": train, "fill_time_s": fill, "cache": caches}


def single(root: Path, data_dir: Path, overrides: list[str]) -> dict:
    """A 10-epoch frozen run without the cache, then filling it, then hitting it."""
    args = [*RUN, *overrides]
    return {
        "without": bench_run(root / "run-without", data_dir, [*args, "feature_cache=false"]),
        "filled": bench_run(root / "run-cached", data_dir, args),
        "hit": bench_run(root / "run-cached", data_dir, [*args, "force=true"]),
    }


def sweep(root: Path, data_dir: Path, overrides: list[str]) -> dict:
    """The 12-run sweep without the cache, then with it (one fill, eleven hits)."""
    args = [*SWEEP, *RUN, *overrides]
    return {
        "without": bench_run(root / "sweep-without", data_dir, [*args, "feature_cache=false"]),
        "cached": bench_run(root / "sweep-cached", data_dir, args),
    }


def six(root: Path, data_dir: Path, overrides: list[str]) -> dict:
    """One uncached run against the six runs of heads x optimizers on the cache (one
    fills it, five hit it): the sweep a cache exists for, at the same per-run settings."""
    args = [*RUN, *overrides]
    return {
        "one_without": bench_run(root / "six-without", data_dir, [*args, "feature_cache=false"]),
        "six_cached": bench_run(root / "six-cached", data_dir, [*SIX, *args]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("run", "sweep", "six", "all"), default="all")
    parser.add_argument("--out", default="results/speed")
    parser.add_argument("overrides", nargs="*", help="run config overrides, as for bench.run")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-feature-cache-"))
    data_dir = root / "tfds"
    tfds.builder("shapes", data_dir=str(data_dir)).download_and_prepare()
    result: dict = {"overrides": [*RUN, *args.overrides]}
    if args.part in ("run", "all"):
        found = result["run"] = single(root, data_dir, args.overrides)
        for case in ("filled", "hit"):
            found[f"speedup_{case}"] = found["without"]["wall_s"] / found[case]["wall_s"]
            print(f"10-epoch run, cache {case}: {found[f'speedup_{case}']:.1f}x end to end")
    if args.part in ("sweep", "all"):
        found = result["sweep"] = sweep(root, data_dir, args.overrides)
        found["speedup"] = found["without"]["wall_s"] / found["cached"]["wall_s"]
        found["speedup_training"] = (
            found["without"]["train_time_s"] / found["cached"]["train_time_s"]
        )
        print(f"12-run sweep: {found['speedup']:.1f}x end to end")
    if args.part == "six":
        found = result["six"] = six(root, data_dir, args.overrides)
        found["ratio"] = found["six_cached"]["wall_s"] / found["one_without"]["wall_s"]
        print(f"six cached runs / one uncached run: {found['ratio']:.2f} (wall clock)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"feature_cache-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
