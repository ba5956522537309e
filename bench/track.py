"""Weights & Biases: one W&B run per job, the only module that imports wandb."""

from __future__ import annotations

import netrc
import os
from urllib.parse import urlparse

import wandb

from bench.config import WandbMode
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


def run_name(spec: RunSpec) -> str:
    """A readable name from the axes, e.g. ``b0-cats_vs_dogs-frozen-adam-bs32``."""
    cfg = spec.cfg
    return (
        f"{cfg.backbone.name}-{cfg.dataset.name}-{cfg.freeze.name}-"
        f"{cfg.optimizer.name.value}-bs{cfg.batch_size}"
    )


class Tracker:
    """A W&B run (or none, when disabled) fed with epochs, then the record's metrics."""

    def __init__(self, spec: RunSpec):
        self.mode = resolve_mode(spec.cfg.wandb.mode)
        self.run = None
        if self.mode == "disabled":
            return
        settings = spec.cfg.wandb
        self.run = wandb.init(
            project=settings.project,
            entity=settings.entity,
            mode=self.mode,
            id=spec.run_id,
            resume="allow",
            reinit="finish_previous",
            name=run_name(spec),
            group=settings.group or spec.job.group,
            tags=list(settings.tags),
            config={**spec.config_dict(), "run_id": spec.run_id},
        )
        # The epoch is the x-axis of every metric, so a resumed run can log its epochs again.
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

    def finish(self, record: dict) -> None:
        """Puts the record's metrics in the summary and closes the run."""
        if self.run is None:
            return
        summary = {k: v for k, v in record["metrics"].items() if v is not None}
        self.run.summary.update({**summary, "status": record["status"]})
        self.run.finish(exit_code=0 if record["status"] == "completed" else 1)
