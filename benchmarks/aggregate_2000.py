"""Benchmark: aggregate and render 2,000 synthetic records (goal: under 10 s).

    python benchmarks/aggregate_2000.py [--runs 2000]

Writes schema-valid records (nine backbones x three datasets x three freeze policies x
seeds, ten epochs each) to a temporary folder, then times each stage of
``python -m bench.report`` on them. A benchmark, not a test: it prints seconds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.analysis import load, report, tables
from bench.core import backbones, record
from bench.core.record import HistoryRow, Metrics, Record, Status

DATASETS = ("cifar10", "cifar100", "tf_flowers")
FREEZES = ("frozen", "finetune", "two_phase")


def synthetic(index: int, rng: np.random.Generator) -> Record:
    """One plausible record; only its numbers are made up."""
    names = list(backbones.REGISTRY)
    backbone = names[index % len(names)]
    dataset = DATASETS[(index // len(names)) % len(DATASETS)]
    freeze = FREEZES[(index // (len(names) * len(DATASETS))) % len(FREEZES)]
    seed = index // (len(names) * len(DATASETS) * len(FREEZES))
    accuracy = rng.uniform(0.6, 0.95, size=10).cumsum() / np.arange(1, 11)
    history = [
        HistoryRow(epoch=e + 1, phase="train", loss=1 - a, accuracy=a, val_loss=1.1 - a,
                   val_accuracy=a - 0.02, lr=1e-3, epoch_time_s=30.0)
        for e, a in enumerate(accuracy)
    ]  # fmt: skip
    config = {
        "backbone": {"name": backbone}, "dataset": {"name": dataset}, "head": {"name": "mlp"},
        "freeze": {"name": freeze}, "optimizer": {"name": "adam", "lr": 1e-3}, "batch_size": 32,
        "epochs": 10, "image_size": backbones.get(backbone).resolution, "precision": "float32",
        "seed": seed, "experiment": None,
    }  # fmt: skip
    metrics = Metrics(
        best_val_accuracy=float(max(accuracy) - 0.02),
        final_val_accuracy=float(accuracy[-1] - 0.02),
        test_accuracy=float(accuracy[-1] - 0.03), train_time_s=float(rng.uniform(100, 900)),
        epoch_time_s=30.0, train_images_per_s=float(rng.uniform(100, 2000)),
        peak_device_memory_bytes=int(rng.uniform(1e9, 9e9)), peak_host_rss_bytes=int(3e9),
        params_total=4_000_000 + index, params_trainable=4_000_000,
    )  # fmt: skip
    return Record(
        run_id=f"{index:012x}", status=Status.completed, started_at=record.now(),
        finished_at=record.now(), config=config, metrics=metrics, history=history,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        runs_dir, out = Path(tmp) / "runs", Path(tmp) / "report"
        for index in range(args.runs):
            record.write(synthetic(index, rng), runs_dir)
        clock = time.perf_counter()
        loaded = load.from_records(runs_dir)
        read = time.perf_counter()
        tables.write_tables(loaded, out / "tables", ["backbone"], [])
        tabled = time.perf_counter()
        comparisons = tables.comparisons(loaded.runs, ["backbone"])
        found = report.sections(loaded, comparisons, out)
        overall = report.across(found, out)
        figures = time.perf_counter()
        (out / "report.html").write_text(report.render(loaded, found, overall, out, html=True))
        (out / "report.md").write_text(report.render(loaded, found, overall, out, html=False))
        done = time.perf_counter()
    print(f"{len(loaded.runs)} records, {len(loaded.history)} epochs")
    stages = {"read": read - clock, "tables": tabled - read, "figures": figures - tabled}
    stages["pages"] = done - figures
    print(", ".join(f"{name} {seconds:.2f} s" for name, seconds in stages.items()))
    print(f"total {done - clock:.2f} s (goal: under 10 s)")


if __name__ == "__main__":
    main()
