"""Weights & Biases: the only module that imports wandb.

One W&B run per job (below), plus the calls other modules need from W&B: reading runs
back through the public API, creating sweeps, publishing a W&B Report.

Each run is initialised with the resolved config (plain dict, axes at the top), logs one
history row per epoch with the epoch as its x-axis, ends with the record's metrics as its
summary and the record itself as an artifact. Its id is the record's ``run_id``, so a
re-launched run resumes its W&B run instead of creating a twin; under a sweep agent the
agent's run is used instead.
"""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from urllib.parse import urlparse

import wandb

from bench.config import WandbMode
from bench.progress import say
from bench.spec import RunSpec

_ENV_MODES = {"online": "online", "offline": "offline", "disabled": "disabled", "dryrun": "offline"}


def resolve_mode(mode: WandbMode | str) -> str:
    """``auto`` becomes ``WANDB_MODE`` if set, else online with credentials, else offline."""
    mode = WandbMode(mode)
    if mode != WandbMode.auto:
        return mode.value
    from_env = _ENV_MODES.get(os.environ.get("WANDB_MODE", "").lower())
    if from_env:
        return from_env
    return "online" if has_credentials() else "offline"


def has_credentials() -> bool:
    """True when ``WANDB_API_KEY`` is set or ``~/.netrc`` has an entry for the W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def in_sweep() -> bool:
    """True inside a run started by ``wandb agent`` (it owns the run's id and config)."""
    return bool(os.environ.get("WANDB_SWEEP_ID"))


def run_name(spec: RunSpec) -> str:
    """A readable name from the axes, e.g. ``b0-cats_vs_dogs-frozen-adam-bs32``."""
    cfg = spec.cfg
    return (
        f"{cfg.backbone.name}-{cfg.dataset.name}-{cfg.freeze.name}-"
        f"{cfg.optimizer.name.value}-bs{cfg.batch_size}"
    )


def tags(spec: RunSpec) -> list[str]:
    """The configured tags plus the experiment preset's name."""
    found = list(spec.cfg.wandb.tags)
    if spec.job.experiment and spec.job.experiment not in found:
        found.append(spec.job.experiment)
    return found


class Tracker:
    """A W&B run (or none, when disabled) fed with epochs, then the record."""

    def __init__(self, spec: RunSpec):
        self.mode = resolve_mode(spec.cfg.wandb.mode)
        self.run = None
        if self.mode == "disabled":
            return
        settings, sweep = spec.cfg.wandb, in_sweep()
        self.run = wandb.init(
            project=settings.project,
            entity=settings.entity,
            mode=self.mode,
            id=None if sweep else spec.run_id,
            resume=None if sweep else "allow",
            reinit="finish_previous",
            name=run_name(spec),
            group=None if sweep else settings.group or spec.job.group,
            tags=tags(spec),
            job_type="train",
            config={**spec.config_dict(), "run_id": spec.run_id},
        )
        # The epoch is every metric's x-axis, so a resumed run can log its epochs again.
        self.run.define_metric("epoch")
        self.run.define_metric("*", step_metric="epoch")
        self.run.define_metric("val_accuracy", step_metric="epoch", summary="max")

    def update_config(self, values: dict) -> None:
        """Adds values resolved during the run (e.g. the dataset's class count)."""
        if self.run is not None:
            self.run.config.update(values, allow_val_change=True)

    def log_epoch(self, row: dict) -> None:
        """Logs one history row."""
        if self.run is not None:
            self.run.log(row)

    def info(self) -> dict:
        """The record's ``wandb`` block."""
        if self.run is None:
            return {"mode": self.mode, "id": None, "url": None, "dir": None}
        return {
            "mode": self.mode,
            "id": self.run.id,
            "url": self.run.url if self.mode == "online" else None,
            "dir": os.path.dirname(self.run.dir),
        }

    def finish(self, record: dict, record_path: Path) -> None:
        """Puts the record's metrics in the summary, attaches the record, closes the run."""
        if self.run is None:
            return
        summary = {k: v for k, v in record["metrics"].items() if v is not None}
        summary["status"] = record["status"]
        if record["error"]:
            summary.update(error_type=record["error"]["type"], error=record["error"]["message"])
        self.run.summary.update(summary)
        self.run.config.update({"env": record["env"]}, allow_val_change=True)
        artifact = wandb.Artifact(f"record-{record['run_id']}", type="result-record")
        artifact.add_file(str(record_path), name="record.json")
        self.run.log_artifact(artifact)
        run_dir = os.path.dirname(self.run.dir)
        self.run.finish(exit_code=0 if record["status"] == "completed" else 1)
        if self.mode == "offline":
            say(f"W&B run saved offline; upload it with: wandb sync {run_dir}")


def log_table(rows: list[dict], columns: list[str], settings, group: str | None) -> None:
    """Logs a multirun's comparison table as a ``wandb.Table`` in a summary run.

    Args:
        rows: One dict per job.
        columns: Which keys become the table's columns, in order.
        settings: The ``wandb`` config node (mode, project, entity).
        group: The multirun's W&B group, shared with its jobs.
    """
    mode = resolve_mode(settings.mode)
    if mode == "disabled":
        return
    data = [[row.get(column) for column in columns] for row in rows]
    with wandb.init(
        project=settings.project,
        entity=settings.entity,
        mode=mode,
        group=group,
        name=f"{group}-summary" if group else "multirun-summary",
        job_type="summary",
        reinit="finish_previous",
    ) as run:
        run.log({"comparison": wandb.Table(columns=columns, data=data)})
        run_dir = os.path.dirname(run.dir)
    if mode == "offline":
        say(f"comparison table saved offline; upload it with: wandb sync {run_dir}")


def api_runs(path: str, filters: dict):
    """The runs of ``ENTITY/PROJECT`` matching ``filters``, through the public API."""
    return wandb.Api().runs(path, filters=filters)


def create_sweep(sweep: dict, project: str, entity: str | None) -> str:
    """Creates a sweep on the W&B server and returns its id."""
    return wandb.sweep(sweep=sweep, project=project, entity=entity)


def publish_report(path: str, group: str | None, sections: dict[str, list[str]]) -> str:
    """Builds and saves a W&B Report of a project's training runs; returns its URL.

    Args:
        path: ``ENTITY/PROJECT``.
        group: Only this group's runs in the report's panels.
        sections: Per dataset, the verdict lines to show.
    """
    import wandb_workspaces.reports.v2 as wr

    entity, project = path.split("/", 1)
    blocks = [wr.H1("bench report")]
    for dataset, lines in sections.items():
        blocks += [wr.H2(dataset), wr.UnorderedList(items=lines)]
    runset = wr.Runset(
        entity=entity, project=project, filters=f"Group == '{group}'" if group else ""
    )
    panels = [
        wr.LinePlot(x="epoch", y=["val_accuracy"]),
        wr.BarPlot(metrics=["train_time_s"]),
        wr.ScatterPlot(x="train_time_s", y="best_val_accuracy"),
    ]
    blocks.append(wr.PanelGrid(runsets=[runset], panels=panels))
    report = wr.Report(entity=entity, project=project, title="bench report", blocks=blocks)
    report.save()
    return report.url
