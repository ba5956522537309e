"""``python -m bench.run [-m] key=value ...``: the launcher's entry point.

Hydra composes the config (``pkg://bench.conf``, plus any ``--config-dir``); each job is
validated and handed to a worker process by :mod:`bench.launch.job` (a fresh one, or
one that a multirun's runs on cached features share). This process
never loads TensorFlow.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import bench  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)
from bench.core import schema
from bench.core.errors import EXIT_CONFIG_ERROR
from bench.launch import job
from bench.serve import steps
from hydra_plugins.bench_race_sweeper import race_sweeper

schema.register()
race_sweeper.register()  # hydra/sweeper=race, also from an editable install


@hydra.main(config_path=schema.CONFIG_PATH, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict:
    """One Hydra job: validate, announce, run in a worker, serve when asked, report."""
    return job.run(cfg, here=execute_here, serving=steps())


def execute_here(spec):
    """``isolate=false``: the run in this process, for debugging (TensorFlow loads now)."""
    from bench.pipeline.execute import execute

    return execute(spec)


def cli() -> None:
    """Runs the Hydra app. Hydra exits 1 for any failure; one before any job started means
    it could not compose the config (an unknown option or key), a config error: exit 2."""
    try:
        main()
    except SystemExit as exit:
        if exit.code == 1 and not job.started():
            raise SystemExit(EXIT_CONFIG_ERROR) from None
        raise


if __name__ == "__main__":
    cli()
