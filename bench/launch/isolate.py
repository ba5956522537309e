"""A fresh worker process per job.

Hydra's basic launcher runs every job of a multirun in one process, where device memory,
the process's peak RSS and Keras' global state would carry over from job to job. Each job
therefore runs ``python -m bench.worker SPEC`` and waits for it: the worker's figures are
its own, its output streams to this terminal, and a worker that dies (out of memory,
killed) still leaves a ``failed`` record instead of taking the sweep down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.core import environment, record
from bench.core.errors import WorkerDied
from bench.core.record import ErrorInfo, Record, Status
from bench.core.spec import RunSpec


def run(spec: RunSpec) -> Record:
    """Executes ``spec`` in a new Python process and returns its record."""
    directory = Path(spec.job.output_dir or tempfile.mkdtemp(prefix="bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    spec_file = directory / f"spec-{spec.run_id}.json"
    spec_file.write_text(spec.to_json())
    started_at = record.now()
    # Unbuffered, so progress reaches a pipe or log file as it happens.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    code = subprocess.call([sys.executable, "-m", "bench.worker", str(spec_file)], env=env)
    written = _this_attempt(spec)
    if written is None:
        written = _died(spec, code, started_at)
        record.write(written, spec.cfg.results_dir)
    return written


def _this_attempt(spec: RunSpec) -> Record | None:
    try:
        found = record.read(spec.record_path)
    except (FileNotFoundError, ValueError):
        return None
    return found if found.job.get("attempt") == spec.job.attempt else None


def _died(spec: RunSpec, code: int, started_at: str) -> Record:
    how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    hint = " (SIGKILL usually means the machine ran out of memory)" if code == -9 else ""
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
    )
