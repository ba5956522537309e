"""This process's place in a multi-worker run, read from ``TF_CONFIG`` (no TensorFlow).

In a MultiWorkerMirroredStrategy run every worker runs the same command. The chief (task
``chief``, or ``worker`` 0 when there is no chief, as tf.distribute decides) writes what
the run leaves behind: the record, the W&B run, the feature cache and the checkpoint
folder. Every other worker gets a private ``results_dir`` (``<results_dir>/workers/<task>``)
for its own record and lock, logs nothing to W&B, and only reads the shared feature cache
and backups (Keras' multi-worker rule: backups are read from the chief's folder, and the
other workers write theirs to temporary folders of their own).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

WORKERS_DIR = "workers"


@dataclass(frozen=True)
class Role:
    """Which task this process is, and how many workers the run has."""

    task: str = "worker-0"
    chief: bool = True
    workers: int = 1


def role(environ: dict | None = None) -> Role:
    """This process's role; a single worker (the chief) without a multi-worker TF_CONFIG."""
    environ = os.environ if environ is None else environ
    try:
        config = json.loads(environ.get("TF_CONFIG") or "{}")
    except json.JSONDecodeError:
        return Role()
    cluster, task = config.get("cluster") or {}, config.get("task") or {}
    workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    if workers <= 1 or not task:
        return Role()
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)
    return Role(task=f"{kind}-{index}", chief=chief, workers=workers)


def private_results_dir(results_dir: str, this: Role) -> str:
    """Where a non-chief worker keeps its own record: ``<results_dir>/workers/<task>``."""
    return results_dir if this.chief else str(Path(results_dir) / WORKERS_DIR / this.task)


def shared_results_dir(results_dir: str | Path, this: Role) -> Path:
    """The chief's ``results_dir``, from any worker's."""
    path = Path(results_dir)
    return path if this.chief else path.parent.parent
