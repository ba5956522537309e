"""Where one run writes and logs from this process, decided once (``RunSpec.site``).

The run's plan (bench.core.plan) is what the config alone settles; the site adds what the
config settles together with this process's environment: its place in a multi-worker run
(``TF_CONFIG``), the W&B mode that ``auto`` resolves to (``WANDB_MODE``, credentials), and
the folders the run's checkpoint and kept model go to. The worker reads these values and
decides none of them again (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.core import cluster, pending
from bench.core.schema import WandbMode
from bench.core.wandb_mode import resolve_mode

CHECKPOINTS = "checkpoints"


@dataclass(frozen=True)
class Site:
    """The run's folders and logging as this process sees them."""

    role: cluster.Role
    wandb_mode: str  # online | offline | disabled: ``auto`` resolved
    chief_results_dir: Path  # the chief's ``results_dir``: the point's record is there
    checkpoint_dir: Path  # the chief's: every worker reads it, only the chief writes it
    scratch_dir: Path  # this process's own, for files no other worker may touch
    model_dir: Path  # where the kept SavedModel goes (its head's weights beside it)


def of(results_dir: str | Path, run_id: str, wandb_mode: WandbMode | str) -> Site:
    """The site of run ``run_id`` writing to ``results_dir`` from this process."""
    this = cluster.role()
    chief = cluster.shared_results_dir(results_dir, this)
    return Site(
        role=this,
        wandb_mode=resolve_mode(wandb_mode),
        chief_results_dir=chief,
        checkpoint_dir=chief / CHECKPOINTS / run_id,
        scratch_dir=Path(results_dir) / CHECKPOINTS / run_id,
        model_dir=pending.model_dir(results_dir, run_id),
    )
