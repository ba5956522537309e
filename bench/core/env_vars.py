"""The environment variables bench and W&B read, checked with the config.

W&B validates ``WANDB_MODE`` only inside ``wandb.init``, after TensorFlow has loaded and the
model is built, and a broken ``TF_CONFIG`` would quietly make a worker of a multi-worker
run train alone. Both fail here instead, with the config: exit 2, nothing written.
"""

from __future__ import annotations

import json
import os
from urllib.parse import urlparse

from bench.core.errors import ConfigError
from bench.core.wandb_mode import ENV_MODES

_WHY = "the environment variable is not one W&B accepts"


def check(environ: dict | None = None) -> None:
    """Checks ``WANDB_MODE``, ``WANDB_BASE_URL`` and ``TF_CONFIG`` where they are set.

    Raises:
        ConfigError: naming the variable, its value, the allowed values and the fix.
    """
    environ = os.environ if environ is None else environ
    mode = environ.get("WANDB_MODE")
    if mode is not None and mode not in ENV_MODES:
        raise ConfigError("WANDB_MODE", repr(mode), ENV_MODES,
                          "unset WANDB_MODE, or export WANDB_MODE=offline", why=_WHY)  # fmt: skip
    url = environ.get("WANDB_BASE_URL")
    if url is not None and not (
        urlparse(url).scheme in ("http", "https") and urlparse(url).hostname
    ):
        raise ConfigError("WANDB_BASE_URL", repr(url), "an http:// or https:// address",
                          "unset it for W&B's cloud, or export WANDB_BASE_URL=https://<host>",
                          why=_WHY)  # fmt: skip
    _check_tf_config(environ.get("TF_CONFIG"))


def _check_tf_config(value: str | None) -> None:
    if not value:
        return
    fix = 'unset TF_CONFIG, or set it to {"cluster": {"worker": [...]}, "task": {...}}'
    try:
        found = json.loads(value)
    except json.JSONDecodeError as error:
        raise ConfigError("TF_CONFIG", repr(value), "a JSON object", fix,
                          why=f"not JSON ({error.msg})") from None  # fmt: skip
    if not isinstance(found, dict) or not isinstance(found.get("cluster", {}), dict):
        raise ConfigError("TF_CONFIG", repr(value), 'a JSON object with a "cluster" object', fix)
