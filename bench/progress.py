"""What a user watches: a line per job as it starts, a table of scores at the end.

``MultirunProgress`` is a Hydra callback (``hydra.callbacks`` in conf/config.yaml): it
counts the jobs of a basic-sweeper multirun when it starts, and prints the summary table
when the last job has ended (Hydra skips ``on_multirun_end`` when a job failed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback

from bench.spec import RunSpec

_TOTAL_ENV = "BENCH_MULTIRUN_TOTAL"
# (header, summary key, format for numbers)
_COLUMNS = (
    ("job", "job", "{}"),
    ("backbone", "backbone", "{}"),
    ("dataset", "dataset", "{}"),
    ("freeze", "freeze", "{}"),
    ("status", "status", "{}"),
    ("train_acc", "final_train_accuracy", "{:.3f}"),
    ("best_val_acc", "best_val_accuracy", "{:.3f}"),
    ("test_acc", "test_accuracy", "{:.3f}"),
    ("train_s", "train_time_s", "{:.1f}"),
    ("img/s", "train_images_per_s", "{:.1f}"),
    ("run_id", "run_id", "{}"),
)


class RunFailed(RuntimeError):
    """Raised by a job whose run failed; carries the job's summary row."""

    def __init__(self, message: str, summary: dict):
        super().__init__(message)
        self.summary = summary


def say(message: str) -> None:
    """Prints a progress line (flushed, so it lands before the worker's output)."""
    print(f"[bench] {message}", flush=True)


def multirun_total() -> int | None:
    """Jobs in the current multirun, when the callback could count them."""
    value = os.environ.get(_TOTAL_ENV)
    return int(value) if value else None


def count_jobs(config) -> int | None:
    """Jobs the basic sweeper will launch for this config; None for other sweepers."""
    sweeper = config.hydra.sweeper
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    arguments = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
    arguments += list(config.hydra.overrides.task)
    try:
        overrides = OverridesParser.create().parse_overrides(arguments)
        (jobs,) = BasicSweeper.split_arguments(overrides, max_batch_size=None)
    except Exception:  # noqa: BLE001  (counting is a nicety; Hydra reports bad overrides)
        return None
    return len(jobs)


def announce(spec: RunSpec) -> None:
    """The line that says which job of how many is starting."""
    cfg, job = spec.cfg, spec.job
    of = f"/{job.total}" if job.total else ""
    say(
        f"job {job.num + 1}{of}: {cfg.backbone.name} on {cfg.dataset.name} "
        f"({cfg.freeze.name}, {cfg.optimizer.name.value}, bs {cfg.batch_size}, "
        f"{cfg.image_size}px, {cfg.epochs} epochs) run_id={spec.run_id}"
    )


def summary(record: dict, spec: RunSpec) -> dict[str, Any]:
    """A job's one-line summary: axes, status, headline metrics, where the record is."""
    history = record.get("history") or []
    return {
        "job": spec.job.num + 1,
        "backbone": spec.cfg.backbone.name,
        "dataset": spec.cfg.dataset.name,
        "freeze": spec.cfg.freeze.name,
        "status": record["status"],
        "final_train_accuracy": history[-1]["accuracy"] if history else None,
        **{k: record["metrics"].get(k) for k in ("best_val_accuracy", "test_accuracy")},
        **{k: record["metrics"].get(k) for k in ("train_time_s", "train_images_per_s")},
        "run_id": spec.run_id,
        "record": str(spec.record_path),
        "error": record.get("error"),
    }


def outcome(record: dict, spec: RunSpec) -> dict[str, Any]:
    """The job's return value; raises RunFailed so Hydra marks the job (and exit code) failed."""
    row = summary(record, spec)
    say(f"job {row['job']} {record['status']}: record {row['record']}")
    if record["status"] != "completed":
        error = record["error"]
        raise RunFailed(f"run {spec.run_id} failed: {error['type']}: {error['message']}", row)
    return row


def format_table(rows: list[dict]) -> str:
    """A plain fixed-width table of job summaries."""
    cells = [[header for header, _, _ in _COLUMNS]]
    for row in rows:
        cells.append(
            ["-" if row.get(key) is None else fmt.format(row[key]) for _, key, fmt in _COLUMNS]
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells
    )


class MultirunProgress(Callback):
    """Counts a multirun's jobs at the start and prints their scores at the end."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.total: int | None = None
        self.printed = False
        self.config = None

    def on_multirun_start(self, config, **kwargs: Any) -> None:
        self.config = config
        self.total = count_jobs(config)
        if self.total:
            os.environ[_TOTAL_ENV] = str(self.total)
            say(f"multirun of {self.total} jobs; output in {config.hydra.sweep.dir}")

    def on_job_end(self, config, job_return, **kwargs: Any) -> None:
        value = job_return._return_value  # noqa: SLF001  (the public getter re-raises)
        if isinstance(value, RunFailed):
            self.rows.append(value.summary)
        elif isinstance(value, dict):
            self.rows.append(value)
        elif isinstance(value, BaseException):
            self.rows.append({"job": config.hydra.job.num + 1, "status": f"error: {value}"})
        if self.total and len(self.rows) == self.total:
            self._print()

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        if self.rows and not self.printed:
            self._print()

    def _print(self) -> None:
        self.printed = True
        done = sum(row.get("status") == "completed" for row in self.rows)
        say(f"{len(self.rows)} jobs: {done} completed, {len(self.rows) - done} failed")
        rows = sorted(self.rows, key=lambda r: r.get("job", 0))
        print(format_table(rows), flush=True)
        if self.config is not None:
            from bench import track  # wandb loads only now, once the jobs are done

            group = self.config.wandb.group or Path(self.config.hydra.sweep.dir).name
            columns = [key for _, key, _ in _COLUMNS] + ["record"]
            track.log_table(rows, columns, self.config.wandb, group)
