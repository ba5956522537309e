"""Which W&B mode a run uses, decided without importing wandb.

The launcher, the worker and the analysis all ask this before they touch W&B, so it
lives in the core room and reads only the environment and ``~/.netrc``.
"""

from __future__ import annotations

import netrc
import os
from urllib.parse import urlparse

from bench.core.schema import WandbMode

# WANDB_MODE's values as W&B's settings accept them (case and all), and what each means here.
ENV_MODES = {
    "online": "online", "run": "online", "shared": "online",
    "offline": "offline", "dryrun": "offline", "disabled": "disabled",
}  # fmt: skip


def resolve_mode(mode: WandbMode | str) -> str:
    """``auto`` becomes ``WANDB_MODE`` if set, else online with credentials, else offline."""
    mode = WandbMode(mode)
    if mode != WandbMode.auto:
        return mode.value
    from_env = ENV_MODES.get(os.environ.get("WANDB_MODE", ""))
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
