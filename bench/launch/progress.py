"""What a user watches: a line per job as it starts, a table of scores at the end."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tabulate import tabulate

from bench.core.console import say
from bench.core.record import Record
from bench.core.spec import RunSpec

# (header, summary key, number format)
COLUMNS = (
    ("job", "job", "d"),
    ("backbone", "backbone", ""),
    ("dataset", "dataset", ""),
    ("freeze", "freeze", ""),
    ("status", "status", ""),
    ("train_acc", "final_train_accuracy", ".3f"),
    ("val_acc", "final_val_accuracy", ".3f"),  # the tested weights' (chooses; test reports)
    ("test_acc", "test_accuracy", ".3f"),
    ("train_s", "train_time_s", ".1f"),
    ("img/s", "train_images_per_s", ".1f"),
    ("MMACs", "macs_millions", ".0f"),
    ("int8_MB", "serving.int8.size_mb", ".2f"),  # with serve=true
    ("int8_ms", "serving.int8.p50_ms", ".2f"),
    ("run_id", "run_id", ""),
)

# Set in each job's process by the multirun callback's on_job_start (launch.multirun).
_multirun_total: int | None = None


class RunFailed(RuntimeError):
    """Raised by a job whose run failed; carries the job's summary row."""

    def __init__(self, message: str, summary: dict):
        super().__init__(message)
        self.summary = summary

    def __reduce__(self):  # crosses a process boundary intact (the joblib launcher's)
        return (type(self), (str(self), self.summary))


def set_multirun_total(total: int | None) -> None:
    """Tells this process how many jobs its multirun has (called by the callback)."""
    global _multirun_total
    _multirun_total = total


def multirun_total() -> int | None:
    """Jobs in the current multirun, when the callback could count them."""
    return _multirun_total


def announce(spec: RunSpec) -> None:
    """The line that says which job of how many is starting."""
    cfg, job = spec.cfg, spec.job
    of = f"/{job.total}" if job.total else ""
    say(
        f"job {job.num + 1}{of}: {cfg.backbone.name} on {cfg.dataset.name} "
        f"({cfg.freeze.name}, {cfg.optimizer.name.value}, bs {cfg.batch_size}, "
        f"{cfg.image_size}px, {cfg.epochs} epochs) run_id={spec.run_id}"
    )


class Summary(dict):
    """A job's row. ``float(row)`` is what the run scores for a sweeper that reads one number
    per job (Hydra's Optuna sweeper): the validation accuracy of its tested weights, or
    chance for a run that diverged. Never the test split's."""

    def __float__(self) -> float:
        value = self.get("selects")
        if value is None:
            raise TypeError(f"run {self.get('run_id')} has no validation accuracy to score")
        return float(value)


def selects(record: Record) -> float | None:
    """The number a tuner chooses on: final validation accuracy; chance when diverged."""
    if record.completed:
        return record.metrics.final_val_accuracy
    classes = (record.config.get("dataset") or {}).get("num_classes")
    if record.error and record.error.type == "Diverged" and classes:
        return 1.0 / classes
    return None


def summary(record: Record, spec: RunSpec) -> dict[str, Any]:
    """A job's one-line summary: axes, status, headline metrics, where the record is."""
    metrics = record.metrics
    return Summary(
        {
            "job": spec.job.num + 1,
            "backbone": spec.cfg.backbone.name,
            "dataset": spec.cfg.dataset.name,
            "freeze": spec.cfg.freeze.name,
            "status": record.status.value,
            "final_train_accuracy": record.history[-1].accuracy if record.history else None,
            "final_val_accuracy": metrics.final_val_accuracy,
            "test_accuracy": metrics.test_accuracy,
            "train_time_s": metrics.train_time_s,
            "train_images_per_s": metrics.train_images_per_s,
            "macs_millions": macs / 1e6 if (macs := record.model.macs_per_image) else None,
            **serving_cells(record),
            "run_id": spec.run_id,
            "record": str(spec.record_path),
            "error": None
            if record.error is None
            else f"{record.error.type}: {record.error.message}",
            "selects": selects(record),
        }
    )


def serving_cells(record: Record) -> dict[str, Any]:
    """The serving figures of a run served at its end (``serve=true``), sizes in MB."""
    figures = record.serving.figures() if record.serving else {}
    for key in [k for k in figures if k.endswith(".size_bytes")]:
        figures[key.replace(".size_bytes", ".size_mb")] = figures.pop(key) / 1e6
    return figures


def outcome(record: Record, spec: RunSpec, scored: bool = False) -> dict[str, Any]:
    """The job's return value; raises RunFailed so Hydra marks the job (and exit code) failed.

    Args:
        record: The run's record.
        spec: The run.
        scored: A sweeper reads one number per job and stops at a failed one (Optuna): a
            diverged run returns its score, chance, instead of failing the job.
    """
    row = summary(record, spec)
    say(f"job {row['job']} {row['status']}: record {row['record']}")
    if not record.completed and not (scored and row["selects"] is not None):
        raise RunFailed(f"run {spec.run_id} failed: {row['error']}", row)
    return row


def skipped(done: Record, spec: RunSpec) -> dict[str, Any]:
    """The row of a point whose record is already completed (nothing is trained)."""
    say(
        f"job {_place(spec)}: {spec.cfg.backbone.name} on {spec.cfg.dataset.name} "
        f"run_id={spec.run_id} already completed ({spec.record_path}); skipped, "
        "force=true trains it again"
    )
    return summary(done, spec)


def elsewhere(holder: dict, spec: RunSpec) -> dict[str, Any]:
    """The row of a point another launcher or agent is training right now."""
    who = f"{holder.get('host')} pid {holder.get('pid')} since {holder.get('started_at')}"
    say(f"job {_place(spec)}: run_id={spec.run_id} is being trained by {who}; skipped")
    return {**summary_of(spec), "status": "running elsewhere"}


def _place(spec: RunSpec) -> str:
    return f"{spec.job.num + 1}/{spec.job.total}" if spec.job.total else str(spec.job.num + 1)


def summary_of(spec: RunSpec) -> dict[str, Any]:
    """A row for a job that has no record of its own."""
    return {
        "job": spec.job.num + 1, "backbone": spec.cfg.backbone.name,
        "dataset": spec.cfg.dataset.name, "freeze": spec.cfg.freeze.name,
        "run_id": spec.run_id, "record": str(spec.record_path),
    }  # fmt: skip


def counts(rows: list[dict]) -> str:
    """``5 jobs: 4 completed, 1 failed`` (and any other status, e.g. running elsewhere)."""
    found = Counter(row.get("status") or "failed" for row in rows)
    others = {s: n for s, n in found.items() if s not in ("completed", "running elsewhere")}
    text = f"{len(rows)} jobs: {found['completed']} completed, {sum(others.values())} failed"
    if found["running elsewhere"]:
        text += f", {found['running elsewhere']} running elsewhere"
    return text


def format_table(rows: list[dict]) -> str:
    """A plain fixed-width table of job summaries (missing numbers as ``-``)."""
    headers = [header for header, _, _ in COLUMNS]
    cells = [
        [_cell(row.get(key), fmt) for _, key, fmt in COLUMNS]
        for row in sorted(rows, key=lambda r: r.get("job", 0))
    ]
    return tabulate(cells, headers=headers, tablefmt="plain", disable_numparse=True)


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    return format(value, fmt) if fmt and isinstance(value, (int, float)) else str(value)
