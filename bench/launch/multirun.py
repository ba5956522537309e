"""The launch callback (``hydra.callbacks.progress`` in conf/config.yaml).

A single run's config is validated before Hydra writes anything (its output folder).
Before a multirun's first job starts, the callback expands the sweep the way Hydra's basic
sweeper does (with the public override parser), composes and validates every job, and
stops with exit code 2 and every problem listed if any job's config is wrong: nothing is
trained or written. It then tells each job how many jobs there are, and prints the table
of scores at the end.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from hydra import compose
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from bench.core import record
from bench.core.console import say
from bench.core.errors import EXIT_CONFIG_ERROR, UserError
from bench.core.spec import RunSpec, build
from bench.launch import isolate, progress, wandb_table
from bench.launch.job import validated


def expand(config: DictConfig) -> list[list[str]] | None:
    """Each job's overrides, as the basic sweeper will launch them; None for other sweepers."""
    sweeper = config.hydra.sweeper
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    arguments = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
    arguments += list(config.hydra.overrides.task)
    choices = []
    for override in OverridesParser.create().parse_overrides(arguments):
        key = override.get_key_element()
        if override.is_sweep_override():
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            choices.append([f"{key}={override.get_value_element_as_str()}"])
    return [list(job) for job in itertools.product(*choices)]


def check(config: DictConfig, jobs: list[list[str]]) -> tuple[list[RunSpec], list[str]]:
    """Every job's spec, and every job whose config does not compose or validate."""
    specs, found = [], []
    for num, overrides in enumerate(jobs, start=1):
        try:
            specs.append(build(compose(config.hydra.job.config_name, overrides=overrides)))
        except (UserError, HydraException) as error:
            found.append(f"job {num} ({' '.join(overrides)}): {error}")
    return specs, found


def rows_from_records(specs: list[RunSpec]) -> list[dict]:
    """The summary rows of jobs that ran in other processes (a parallel launcher), read
    back from their records."""
    rows = []
    for num, spec in enumerate(specs):
        spec.job.num = num
        try:
            rows.append(progress.summary(record.read(spec.record_path), spec))
        except (OSError, ValueError):
            rows.append({**progress.summary_of(spec), "status": "no record"})
    return rows


class MultirunProgress(Callback):
    """Validates and counts a multirun's jobs at the start, prints their scores at the end."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.total: int | None = None
        self.config: DictConfig | None = None
        self.printed = False
        self.specs: list[RunSpec] = []

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Before Hydra makes the run's output folder: a config error leaves nothing behind.
        validated(OmegaConf.masked_copy(config, [k for k in config if k != "hydra"]))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.config = config
        jobs = expand(config)
        if jobs is None:
            return
        self.specs, found = check(config, jobs)
        if found:
            say(f"{len(found)} of {len(jobs)} jobs have config errors; nothing ran:", error=True)
            for line in found:
                say(f"  {line}", error=True)
            raise SystemExit(EXIT_CONFIG_ERROR)
        self.total = len(jobs)
        say(f"multirun of {self.total} jobs; output in {config.hydra.sweep.dir}")

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Runs in the job's own process under every launcher, with this object's state.
        progress.set_multirun_total(self.total)

    def on_job_end(self, config: DictConfig, job_return, **kwargs: Any) -> None:
        try:
            self.rows.append(job_return.return_value)
        except progress.RunFailed as failed:
            self.rows.append(failed.summary)
        except Exception as error:  # noqa: BLE001  (any other failure still gets its row)
            self.rows.append({"job": config.hydra.job.num + 1, "status": f"error: {error}"})
        if self.total and len(self.rows) == self.total:
            self._summarise()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra skips this when a job failed (the sweeper re-raises its error first), so the
        # table is printed as the last job ends; this covers sweeps that could not be
        # counted, and launchers that run jobs (and their on_job_end) in other processes.
        if not self.rows and self.specs:
            self.rows = rows_from_records(self.specs)
        if self.rows and not self.printed:
            self._summarise()

    def _summarise(self) -> None:
        self.printed = True
        isolate.close_shared()  # no job is left for it: its memory goes back now
        config = self.config
        say(progress.counts(self.rows))
        print(progress.format_table(self.rows), flush=True)
        group = config.wandb.group or Path(config.hydra.sweep.dir).name
        columns = [key for _, key, _ in progress.COLUMNS] + ["record"]
        wandb_table.log_table(self.rows, columns, config.wandb, group)
