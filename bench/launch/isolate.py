"""A worker process per job: a fresh one, or one shared by a multirun's runs on cached features.

Hydra's basic launcher runs every job of a multirun in one process, where device memory,
the process's peak RSS and Keras' global state would carry over from job to job. Each job
therefore runs ``python -m bench.worker SPEC`` and waits for it: the worker's figures are
its own, its output streams to this terminal, and a worker that dies (out of memory,
killed) still leaves a ``failed`` record instead of taking the sweep down.

A job of a multirun that trains only a head on cached features, and serves nothing, takes
seconds, less than starting a worker (importing TensorFlow alone takes about 3 s). With
``shared_worker=true`` (the default) such jobs share one worker, which takes them one after
another (:class:`bench.launch.children.Shared`). It is replaced after :data:`SHARED_JOBS`
of them, after a job that did not complete, and when a job's process-wide settings differ
from its previous job's (:func:`_settings`: TensorFlow keeps the strategy's devices and op
determinism for the life of a process). Any other job gets a fresh worker, and the shared
one is ended first so that its memory is not held meanwhile.
"""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

from bench.core import environment, record
from bench.core.console import say
from bench.core.errors import EXIT_CONFIG_ERROR, Interrupted, OutOfMemory, WorkerDied
from bench.core.record import ErrorInfo, Record, Status
from bench.core.spec import RunSpec
from bench.launch import children, oom

GRACE_S = 60.0  # after SIGTERM: time for the worker to write its record before SIGKILL
SHARED_JOBS = 64  # jobs one shared worker takes: bounds what a leak in a library can grow to

_shared = children.Shared(SHARED_JOBS)


def run(spec: RunSpec, may_share: bool = False) -> Record:
    """Executes ``spec`` in a worker process and returns its record.

    Args:
        spec: The run.
        may_share: Whether the launcher allows a shared worker (a multirun whose jobs run
            one after another in this process); the job must also be one that shares.
    """
    directory = Path(spec.job.output_dir or tempfile.mkdtemp(prefix="bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    # The attempt id keeps two launchers in one folder (a multi-worker run) apart.
    spec_file = directory / f"spec-{spec.run_id}-{spec.job.attempt}.json"
    spec_file.write_text(spec.to_json())
    started_at = record.now()
    oom_kills = oom.kill_count()
    code, received = _worker(spec, str(spec_file), may_share)
    results_dir = spec.cfg.results_dir
    written = record.find_attempt(results_dir, spec.run_id, spec.job.attempt)
    if written is None and code == EXIT_CONFIG_ERROR:
        raise SystemExit(EXIT_CONFIG_ERROR)  # the worker printed which key to fix
    if written is None:
        by_oom_killer = oom.killed_by_oom(code, oom_kills, oom.kill_count())
        stopped_by = signal.Signals(received[0]).name if received else None
        written = _died(spec, code, started_at, by_oom_killer, stopped_by)
        record.save(written, results_dir)
    if received:
        name = signal.Signals(received[0]).name
        say(f"stopped by {name}; relaunch the same command to resume run {spec.run_id}")
        raise SystemExit(128 + received[0])
    return written


def _worker(spec: RunSpec, spec_file: str, may_share: bool) -> tuple[int, list[int]]:
    """Runs the job in the shared worker when it may share one, else in a fresh worker."""
    if may_share and shares(spec):
        return _shared.run(spec_file, GRACE_S, _settings(spec))
    _shared.close()
    return children.wait(children.start("bench.worker", spec_file), GRACE_S)


def shares(spec: RunSpec) -> bool:
    """Whether the job goes to the shared worker: it trains only a head on cached features
    and serves nothing (the serve runs beside the worker, which would sit idle holding
    what its earlier jobs left, until its next job frees it).

    Args:
        spec: The job's run.

    Returns:
        True when ``shared_worker`` is on and the run is such a job.
    """
    head_only = spec.plan.head_only(spec.site.role.workers)
    return spec.cfg.shared_worker and head_only and not spec.cfg.serve


def _settings(spec: RunSpec) -> tuple:
    """What a worker process keeps from its first job: the strategy (TensorFlow fixes the
    visible devices once), op determinism (never turned off again) and the environment
    variables it was started with."""
    return spec.cfg.strategy, spec.cfg.deterministic, tuple(sorted(os.environ.items()))


def close_shared() -> None:
    """Ends the shared worker, if one is waiting for jobs (a launch's end)."""
    _shared.close()


def _died(
    spec: RunSpec, code: int, started_at: str, by_oom_killer: bool, stopped_by: str | None
) -> Record:
    how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    if stopped_by:  # told to stop, it did not finish in time (or died on the way)
        died = Interrupted(
            f"stopped by {stopped_by}; the worker ended with {how} before writing its record "
            f"(it gets {GRACE_S:.0f} s); the checkpoint is kept, relaunch to resume"
        )
    elif by_oom_killer:
        died = OutOfMemory(
            f"the kernel's OOM killer ended the worker ({how}) at batch_size={spec.batch_size}, "
            f"image_size={spec.cfg.image_size}; lower batch_size or image_size, or oom_retry=true"
        )
    else:
        hint = " (SIGKILL often means the machine ran out of memory)" if code == -9 else ""
        died = WorkerDied(f"worker process ended with {how} before writing its record{hint}")
    return Record(
        run_id=spec.run_id,
        status=Status.failed,
        started_at=started_at,
        finished_at=record.now(),
        config=spec.config_dict(),
        env=environment.collect(),
        error=ErrorInfo.from_exception(died),
        job=spec.job_dict(),
        effective_batch_size=spec.batch_size,
    )
