"""The result record (DESIGN.md, schema_version 1): build, check, write atomically, read."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
STATUSES = ("completed", "failed")
REQUIRED_KEYS = (
    "schema_version", "run_id", "status", "started_at", "finished_at",
    "config", "env", "metrics", "history", "wandb", "error",
)  # fmt: skip
METRIC_KEYS = (
    "best_val_accuracy", "final_val_accuracy", "test_accuracy", "train_time_s",
    "epoch_time_s", "train_images_per_s", "peak_device_memory_bytes",
    "peak_host_rss_bytes", "params_total", "params_trainable",
)  # fmt: skip
HISTORY_KEYS = (
    "epoch", "phase", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "epoch_time_s",
)  # fmt: skip
ENV_KEYS = (
    "python", "tensorflow", "keras", "tensorflow_hub", "tensorflow_datasets", "wandb",
    "strategy", "replicas", "device_kinds", "hostname", "git_commit",
)  # fmt: skip
WANDB_KEYS = ("mode", "id", "url", "dir")
CONFIG_AXES = (
    "backbone", "dataset", "head", "freeze", "optimizer", "batch_size", "epochs",
    "image_size", "precision", "seed",
)  # fmt: skip


def now() -> str:
    """The current UTC time in ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def empty_metrics() -> dict[str, Any]:
    """Every metric key, unmeasured."""
    return dict.fromkeys(METRIC_KEYS)


def build(
    *,
    run_id: str,
    status: str,
    started_at: str,
    config: dict,
    env: dict,
    metrics: dict,
    history: list[dict],
    wandb: dict,
    error: BaseException | None = None,
    job: dict | None = None,
) -> dict[str, Any]:
    """Assembles a record; ``finished_at`` is now."""
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "status": status,
        "started_at": started_at,
        "finished_at": now(),
        "config": config,
        "env": env,
        "metrics": {**empty_metrics(), **metrics},
        "history": history,
        "wandb": wandb,
        "error": None if error is None else {"type": type(error).__name__, "message": str(error)},
        "job": job or {},
    }


def problems(record: Any) -> list[str]:
    """Ways ``record`` breaks the schema; empty when it is valid."""
    if not isinstance(record, dict):
        return ["record is not a JSON object"]
    found = [f"missing key {key!r}" for key in REQUIRED_KEYS if key not in record]
    if found:
        return found
    if record["schema_version"] != SCHEMA_VERSION:
        found.append(f"schema_version {record['schema_version']!r} != {SCHEMA_VERSION}")
    if record["status"] not in STATUSES:
        found.append(f"status {record['status']!r} not in {STATUSES}")
    for block, keys in (
        ("metrics", METRIC_KEYS),
        ("env", ENV_KEYS),
        ("wandb", WANDB_KEYS),
        ("config", CONFIG_AXES),
    ):
        found += [f"{block} lacks {key!r}" for key in keys if key not in record[block]]
    for index, row in enumerate(record["history"]):
        found += [f"history[{index}] lacks {key!r}" for key in HISTORY_KEYS if key not in row]
    if (record["status"] == "failed") != (record["error"] is not None):
        found.append("error must be set exactly when status is 'failed'")
    return found


def write(record: dict, results_dir: str | os.PathLike) -> Path:
    """Writes ``<results_dir>/<run_id>.json`` atomically (temp file + rename)."""
    directory = Path(results_dir)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{record['run_id']}.json"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{record['run_id']}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle, indent=2, allow_nan=False, default=str)
            handle.write("\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read(path: str | os.PathLike) -> dict[str, Any]:
    """Reads one record file."""
    with open(path) as handle:
        return json.load(handle)
