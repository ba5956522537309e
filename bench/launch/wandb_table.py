"""The multirun's comparison table as a ``wandb.Table``, in a summary run of its group."""

from __future__ import annotations

import os

import wandb

from bench.core.console import say
from bench.core.wandb_mode import resolve_mode


def log_table(rows: list[dict], columns: list[str], settings, group: str | None) -> None:
    """Logs a multirun's comparison table in a run of job type ``summary``.

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
