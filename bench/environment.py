"""The conditions of a run: library versions, host, strategy, git commit."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
from pathlib import Path

_PACKAGES = {
    "tensorflow": "tensorflow",
    "keras": "tf-keras",
    "tensorflow_hub": "tensorflow-hub",
    "tensorflow_datasets": "tensorflow-datasets",
    "wandb": "wandb",
    "hydra": "hydra-core",
    "bench": "bench",
}
_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def versions() -> dict[str, str | None]:
    """Installed versions of the stack, by record key."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for key, dist in _PACKAGES.items():
        try:
            found[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[key] = None
    return found


def git_commit() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the project checkout, or (None, None) outside git."""
    try:
        commit = _git("rev-parse", "HEAD")
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return commit, dirty


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=_PROJECT_ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


def collect(strategy_facts: dict | None = None) -> dict:
    """The record's ``env`` block.

    Args:
        strategy_facts: ``bench.strategy.describe`` output; absent when the run failed
            before a strategy existed.
    """
    commit, dirty = git_commit()
    facts = strategy_facts or {
        "strategy": None,
        "replicas": None,
        "devices": [],
        "device_kinds": [],
    }
    return {
        **versions(),
        **facts,
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "pid": os.getpid(),
        "git_commit": commit,
        "git_dirty": dirty,
    }
