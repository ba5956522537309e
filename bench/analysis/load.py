"""Runs into one tidy pandas frame: one row per run, and one row per epoch.

Sources: result records (``results/runs/*.json``, the default) or the W&B API
(``--wandb ENTITY/PROJECT``); both become :class:`bench.core.record.Record` objects first,
so they give the same columns. The inputs are only read, never rewritten. A damaged
record is reported by name and skipped; failed runs stay in the table with their error.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.core import record
from bench.core.record import (
    ErrorInfo,
    HistoryRow,
    Metrics,
    ModelInfo,
    Record,
    SplitInfo,
    Status,
    WandbInfo,
)
from bench.core.schema import Config
from bench.core.spec import NOT_IDENTITY

# Short column names for the axes and conditions of a run (the rest keep dotted names).
RENAMES = {
    "config.backbone.name": "backbone",
    "config.backbone.source": "source",
    "config.backbone.weights": "weights",
    "config.dataset.name": "dataset",
    "config.head.name": "head",
    "config.freeze.name": "freeze",
    "config.optimizer.name": "optimizer",
    "config.optimizer.lr": "lr",
    "config.augment.name": "augment",
    "error.type": "error_type",
    "error.message": "error",
    "wandb.id": "wandb_id",
    "wandb.url": "wandb_url",
    "wandb.mode": "wandb_mode",
    "job.group": "group",
    "env.strategy": "strategy_used",  # the class; config.strategy is what was asked for
    "env.precision": "precision_used",  # the policy; config.precision may say auto
    # What the worker resolved, beside the config keys of the same names.
    "env.jit_compile": "jit_compile_used",
    "env.steps_per_execution": "steps_per_execution_used",
    "env.input_cache": "input_cache_used",
    "env.deterministic": "deterministic_used",
}
_VERSIONS = ("python", "tensorflow", "keras", "tensorflow_hub", "tensorflow_datasets", "wandb")
RENAMES.update({f"env.{name}": f"{name}_version" for name in (*_VERSIONS, "hydra", "bench")})
AXES = [
    "experiment", "backbone", "source", "weights", "dataset", "head", "freeze", "optimizer",
    "lr", "augment", "batch_size", "epochs", "image_size", "precision", "seed",
]  # fmt: skip
METRICS = [f.name for f in dataclasses.fields(Metrics) if f.name != "phases"]
HISTORY = [f.name for f in dataclasses.fields(HistoryRow)]
# Where and on what a run ran: runs that differ in these are never averaged together.
CONDITIONS = [
    "effective_batch_size", "precision_used", "device_kinds", "strategy_used",
    "tensorflow_version",
]  # fmt: skip
_CONFIG_FIELDS = {f.name for f in dataclasses.fields(Config)} | {"experiment"}
_GROUPS = ("backbone", "dataset", "head", "freeze", "optimizer", "augment")
_DROPPED = ("history", "schema_version", "wandb.dir", "serving")  # serving: as its figures


def config_columns(runs: pd.DataFrame) -> list[str]:
    """The columns that came from the run's config (axes under their short names)."""
    short = {new for old, new in RENAMES.items() if old.startswith("config.")}
    return [c for c in runs.columns if c in short or c.split(".")[0] in _CONFIG_FIELDS]


def identity_columns(runs: pd.DataFrame) -> list[str]:
    """What makes two runs the same experiment: every config key but ``seed`` and where the
    run's outputs went (``NOT_IDENTITY``), plus the conditions it ran under."""
    ignored = [RENAMES.get(f"config.{key}", key) for key in NOT_IDENTITY]
    keys = [
        c for c in config_columns(runs)
        if c != "seed" and not any(c == k or c.startswith(f"{k}.") for k in ignored)
    ]  # fmt: skip
    return keys + [c for c in CONDITIONS if c in runs]


def phase_columns(runs: pd.DataFrame) -> list[str]:
    """Per-phase figures of multi-phase runs (``phases.head.epoch_time_s`` ...)."""
    return [
        c for c in runs.columns if c.startswith("phases.") and not c.startswith("phases.train.")
    ]


@dataclass
class Loaded:
    """What was read: the runs, their epochs, and the inputs that had to be skipped."""

    runs: pd.DataFrame
    history: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def failed(self) -> pd.DataFrame:
        """The runs that did not complete, with their errors."""
        return self.runs[self.runs["status"] != "completed"]


def from_records(results_dir: str | Path) -> Loaded:
    """Reads every ``*.json`` record under ``results_dir`` (not recursively)."""
    found, skipped = record.scan(results_dir)
    return build([(rec, str(path)) for path, rec in found],
                 [(str(path), why) for path, why in skipped])  # fmt: skip


def record_from_wandb(run, history: list[dict] | None = None) -> Record:
    """Maps a public-API ``wandb.apis.public.Run`` to a record.

    Args:
        run: The API run (its ``id``, ``config``, ``summary``, ``state``, ``group``...).
        history: Its per-epoch rows (``run.scan_history()``), if wanted.
    """
    config = {k: v for k, v in dict(run.config).items() if not k.startswith("_")}
    run_id = config.pop("run_id", run.id)
    env = config.pop("env", {})
    splits = config.pop("splits", None) or {}
    config = config.pop("bench_config", None) or nested(config)
    summary = dict(run.summary)
    status = summary.get("status") or ("completed" if run.state == "finished" else "failed")
    error = None
    if status != Status.completed.value:
        error = ErrorInfo(summary.get("error_type") or run.state, summary.get("error") or "")
    return Record(
        run_id=run_id,
        status=Status(status),
        started_at=run.created_at,
        finished_at=None,
        config=config,
        env=record.pick(record.Env, env),
        metrics=record.metrics_from_dict(summary),
        history=latest_epochs(history or []),
        wandb=WandbInfo(mode="online", id=run.id, url=getattr(run, "url", None)),
        error=error,
        job={"group": run.group},
        model=record.pick(ModelInfo, {k[6:]: v for k, v in summary.items() if k[:6] == "model."}),
        serving=record.serving_from_figures(summary),
        splits={role: record.pick(SplitInfo, info) for role, info in splits.items()},
    )


def nested(config: dict) -> dict:
    """A sweep agent's flat config (``optimizer.lr``, ``backbone: b1``) in the multirun layout."""
    out: dict = {}
    # Dotted keys last: the agent's flat value wins over the nested one given to wandb.init.
    for key, value in sorted(config.items(), key=lambda item: "." in item[0]):
        if key in _GROUPS and not isinstance(value, dict):
            value = {"name": value}
        *parents, leaf = key.split(".")
        node = out
        for parent in parents:
            node = node.setdefault(parent, {})
        if isinstance(value, dict) and isinstance(node.get(leaf), dict):
            node[leaf].update(value)
        else:
            node[leaf] = value
    return out


def latest_epochs(rows: list[dict]) -> list[HistoryRow]:
    """One row per epoch, the last one logged (a resumed run logs its epochs again)."""
    by_epoch = {int(row["epoch"]): row for row in rows if row.get("epoch") is not None}
    return [record.pick(HistoryRow, {**by_epoch[e], "epoch": e}) for e in sorted(by_epoch)]


def from_wandb(
    path: str, group: str | None = None, tag: str | None = None, history: bool = True
) -> Loaded:
    """Reads the training runs of a W&B project through the public API.

    Args:
        path: ``ENTITY/PROJECT``.
        group: Only runs of this group (a multirun).
        tag: Only runs with this tag (e.g. an experiment preset).
        history: Also fetch every epoch (``scan_history``, unsampled).
    """
    from bench.analysis import wandb_api  # wandb loads only for this source

    filters: dict = {"jobType": "train"}
    if group:
        filters["group"] = group
    if tag:
        filters["tags"] = {"$in": [tag]}
    found = []
    for run in wandb_api.runs(path, filters):
        rows = list(run.scan_history()) if history else None
        found.append((record_from_wandb(run, rows), f"wandb:{run.entity}/{run.project}/{run.id}"))
    return build(found, [])


def build(found: list[tuple[Record, str]], skipped: list[tuple[str, str]]) -> Loaded:
    """The tidy tables from records and where each was read from."""
    runs = runs_frame(found)
    return Loaded(runs=runs, history=history_frame([r for r, _ in found], runs), skipped=skipped)


def runs_frame(found: list[tuple[Record, str]]) -> pd.DataFrame:
    """One row per run: axes, metrics, status and error, conditions; numbers stay numbers."""
    if not found:
        return pd.DataFrame(columns=["run_id", "status", *AXES, *METRICS])
    no_error = {"type": None, "message": None}
    rows = [
        {**r.to_dict(), "path": path, "error": r.error and dataclasses.asdict(r.error) or no_error,
         "serving": None, **(r.serving.figures() if r.serving else {})}
        for r, path in found
    ]  # fmt: skip
    flat = pd.json_normalize(rows, sep=".").drop(columns=list(_DROPPED), errors="ignore")
    renames = dict(RENAMES)
    for column in flat.columns:
        for prefix in ("metrics.", "env.", "config."):
            if column.startswith(prefix) and column not in renames:
                renames[column] = column[len(prefix) :]
    flat = flat.rename(columns=renames)
    flat = flat.drop(columns=[c for c in flat.columns if c.startswith("job.")])
    for column in flat.columns:
        if flat[column].map(lambda v: isinstance(v, list)).any():
            flat[column] = flat[column].map(
                lambda v: ",".join(map(str, v)) if isinstance(v, list) else v
            )
    # Records before schema 3 trained at the batch and precision they asked for.
    for used, asked in (("effective_batch_size", "batch_size"), ("precision_used", "precision")):
        if asked in flat:
            known = flat.get(used, pd.Series(index=flat.index, dtype=object))
            flat[used] = known.where(known.notna(), flat[asked])
    if "effective_batch_size" in flat:
        flat["effective_batch_size"] = flat["effective_batch_size"].astype("Int64")
    first = ["run_id", "status", *AXES, *METRICS]
    return flat[[c for c in first if c in flat] + [c for c in flat if c not in first]]


def history_frame(found: list[Record], runs: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch rows in long format, with the run's id and its axes from ``runs``."""
    rows = [{"run_id": r.run_id, **dataclasses.asdict(row)} for r in found for row in r.history]
    history = pd.DataFrame(rows, columns=["run_id", *HISTORY])
    wanted = ["status", *AXES, *identity_columns(runs)]
    keep = ["run_id", *(c for c in dict.fromkeys(wanted) if c in runs and c not in history)]
    return history.merge(runs[keep], on="run_id", how="left")
