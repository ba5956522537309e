"""The conditions of a run: library versions, host, strategy, git commit (core room)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
from pathlib import Path

from bench.core.record import Env

_PACKAGES = {
    "tensorflow": "tensorflow",
    "keras": "tf-keras",
    "tensorflow_hub": "tensorflow-hub",
    "tensorflow_datasets": "tensorflow-datasets",
    "wandb": "wandb",
    "hydra": "hydra-core",
    "bench": "bench",
}
# bench/core/environment.py -> the checkout's root (only meaningful in a source checkout).
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


def versions(packages: dict[str, str] | None = None) -> dict[str, str | None]:
    """Installed versions of the stack (or of ``packages``: record key to distribution)."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for key, dist in (packages or _PACKAGES).items():
        try:
            found[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[key] = None
    return found


def cpu_model() -> str | None:
    """The host CPU's model name (Linux' /proc/cpuinfo; else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def usable_cores() -> int:
    """The cores this process may run on (its affinity, which a cluster job may narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def git_commit() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the project checkout, or (None, None) when bench is installed.

    Installed from a wheel, bench's folder is site-packages, which may sit inside some other
    repository: only a checkout of bench itself (``.git`` beside ``bench/``) is asked.
    """
    if not (_PROJECT_ROOT / ".git").exists():
        return None, None
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


def collect(strategy_facts: dict | None = None) -> Env:
    """The record's ``env`` block.

    Args:
        strategy_facts: ``bench.pipeline.strategy.describe`` output (strategy, replicas,
            devices, device_kinds); absent when the run failed before a strategy existed.
    """
    commit, dirty = git_commit()
    return Env(
        **versions(),
        **(strategy_facts or {}),
        hostname=socket.gethostname(),
        platform=platform.platform(),
        pid=os.getpid(),
        git_commit=commit,
        git_dirty=dirty,
    )
