"""``python -m bench.run [-m] key=value ...``: the launcher's entry point.

Hydra composes the config (``pkg://bench.conf``, plus any ``--config-dir``); each job is
validated and handed to a fresh worker process by :mod:`bench.launch.job`. This process
never loads TensorFlow.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import bench  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)
from bench.core import schema
from bench.launch import job

schema.register()


@hydra.main(config_path=schema.CONFIG_PATH, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict:
    """One Hydra job: validate, announce, run in a worker, report."""
    return job.run(cfg)


if __name__ == "__main__":
    main()
