"""One Hydra job: validate the config into a RunSpec, announce it, run it, serve it when
asked (``serve=true``), report the outcome.

A config the user can fix stops here with exit code 2 and nothing written. The run itself
happens in a worker process (``isolate=true``, the default): a fresh one, so that its
memory, time and Keras state belong to it alone, or, for a multirun's runs on cached
features, one they share (bench.launch.isolate).
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from bench.core import record
from bench.core.console import say
from bench.core.errors import EXIT_CONFIG_ERROR, UserError
from bench.core.record import Record
from bench.core.spec import JobInfo, RunSpec, build
from bench.launch import isolate, locks, oom, progress, serve_all
from bench.launch.children import stopped_by_sigterm

_started = False  # set once a job's task function runs (see started())


def started() -> bool:
    """Whether Hydra got as far as running a job (so a failure was not in composing it)."""
    return _started


def run(cfg: DictConfig, here: Callable[[RunSpec], Record], serving: serve_all.Steps) -> dict:
    """The Hydra task function's body; returns the job's summary row.

    A point whose record is completed is skipped (``force=true`` trains it again); a point
    another process is training is skipped too; otherwise the point is claimed for the time
    its worker runs and, with ``serve=true``, its serve.

    Args:
        cfg: The job's composed config.
        here: Runs a spec in this process, for ``isolate=false``; the command hands it in,
            since this room never imports the worker's.
        serving: The worker room's steps of a serve, handed in by the command too.

    Raises:
        SystemExit: with code 2 when the config is wrong.
        progress.RunFailed: when the run failed, so Hydra counts the job as failed.
    """
    global _started
    _started = True
    spec = validated(cfg, job_info())
    if (done := completed(spec)) is not None:
        return progress.skipped(done, spec)
    claim = locks.claim(spec.cfg.results_dir, spec.run_id)
    if not isinstance(claim, locks.Lock):
        return progress.elsewhere(claim, spec)
    with claim:
        if (done := completed(spec)) is not None:  # finished by another process meanwhile
            return progress.skipped(done, spec)
        progress.announce(spec)
        written = attempt(spec, here)
        while (smaller := retry_batch(written, spec)) is not None:
            say(
                f"run {spec.run_id} ran out of memory at batch_size={spec.batch_size}; "
                f"oom_retry: trying again at batch_size={smaller} in a fresh worker"
            )
            spec = spec.at_batch_size(smaller)
            written = attempt(spec, here)
        written = served(written, spec, serving)
    return progress.outcome(written, spec, scored=reads_one_number())


def jobs_one_after_another() -> bool:
    """Whether this is a multirun whose jobs Hydra's basic launcher runs one after another
    in this process (where one worker can take several; other launchers run jobs in
    processes of their own)."""
    try:
        hc = HydraConfig.get()
    except ValueError:  # not inside a Hydra app
        return False
    target = str(hc.launcher.get("_target_", ""))
    return hc.mode == RunMode.MULTIRUN and target.endswith("BasicLauncher")


def reads_one_number() -> bool:
    """Whether the sweeper reads one number per job and stops at a failed job (Optuna)."""
    try:
        target = str(HydraConfig.get().sweeper.get("_target_", ""))
    except ValueError:  # not inside a Hydra app
        return False
    return target.endswith("OptunaSweeper")


def attempt(spec: RunSpec, here: Callable[[RunSpec], Record]) -> Record:
    """One attempt at the run: in a worker process, or here with ``isolate=false``.

    Args:
        spec: The run.
        here: Runs a spec in this process (see :func:`run`).

    Returns:
        The attempt's record.
    """
    if not spec.cfg.isolate:
        return in_this_process(spec, here)
    return isolate.run(spec, may_share=jobs_one_after_another())


def served(written: Record, spec: RunSpec, steps: serve_all.Steps) -> Record:
    """With ``serve=true``, a completed run's record once its kept model is served, in a
    process of its own after the worker ended (:func:`bench.launch.serve_all.serve_run`).
    A serve that fails leaves the run completed; a stop ends the launch with 128 plus its
    signal's number, as a stop during training does.
    """
    kept = written.model.path or written.model.head_weights
    if not (spec.cfg.serve and written.completed and kept):
        return written
    try:
        with stopped_by_sigterm():
            ok = serve_all.serve_run(spec.record_path, spec.cfg.serving, steps)
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM as children.Stopped
        say(f"{stop or 'stopped by SIGINT'} while serving run {spec.run_id}; it is completed, "
            "and python -m bench.serve measures what is left", error=True)  # fmt: skip
        raise SystemExit(128 + getattr(stop, "signum", signal.SIGINT)) from None
    if not ok:
        say(f"run {spec.run_id} is completed but not served; python -m bench.serve serves it")
    try:
        return record.read(spec.record_path)
    except (OSError, ValueError):  # said by serve_run; the job's row is the worker's record
        return written


def retry_batch(written: Record, spec: RunSpec) -> int | None:
    """The batch size to retry at after an out-of-memory failure with ``oom_retry=true``."""
    if not spec.cfg.oom_retry or written.error is None or written.error.type != "OutOfMemory":
        return None
    return oom.smaller_batch(spec.batch_size)


def completed(spec: RunSpec) -> Record | None:
    """The point's completed record, unless ``force=true`` asks to train it again.

    Every worker of a multi-worker run reads the chief's record: a point the chief
    completed is done for all (one worker training alone would wait for the others).
    """
    if spec.cfg.force:
        return None
    try:
        found = record.read(record.path_for(spec.site.chief_results_dir, spec.run_id))
    except (OSError, ValueError):
        return None
    return found if found.completed else None


def validated(cfg: DictConfig, job: JobInfo | None = None) -> RunSpec:
    """The RunSpec, or exit code 2 with the error's message when the user must fix the config."""
    try:
        return build(cfg, job)
    except UserError as error:
        say(f"config error: {error}", error=True)
        raise SystemExit(EXIT_CONFIG_ERROR) from error


def in_this_process(spec: RunSpec, here: Callable[[RunSpec], Record]) -> Record:
    """Runs the spec in the launcher's own process (``isolate=false``, for debugging)."""
    try:
        return here(spec)
    except UserError as error:  # found by the worker (e.g. the replica count)
        say(f"config error: {error}", error=True)
        raise SystemExit(EXIT_CONFIG_ERROR) from error


def job_info() -> JobInfo:
    """The job's place in its launch, read from Hydra."""
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    return JobInfo(
        num=hc.job.num if multirun else 0,
        total=progress.multirun_total() if multirun else 1,
        output_dir=hc.runtime.output_dir,
        group=Path(hc.sweep.dir).name if multirun else None,
        experiment=hc.runtime.choices.get("experiment"),
        overrides=list(hc.overrides.task),
        attempt=uuid.uuid4().hex,
    )
