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

from bench import environment, records
from bench.spec import RunSpec


class WorkerDied(RuntimeError):
    """The worker process ended without writing its record."""


def run(spec: RunSpec) -> dict:
    """Executes ``spec`` in a new Python process and returns its record."""
    directory = Path(spec.job.output_dir or tempfile.mkdtemp(prefix="bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    spec_file = directory / f"spec-{spec.run_id}.json"
    spec_file.write_text(spec.to_json())
    started_at = records.now()
    # Unbuffered, so progress reaches a pipe or log file as it happens.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    code = subprocess.call([sys.executable, "-m", "bench.worker", str(spec_file)], env=env)
    record = _this_attempt(spec)
    if record is None:
        record = _died(spec, code, started_at)
        records.write(record, spec.cfg.results_dir)
    return record


def _this_attempt(spec: RunSpec) -> dict | None:
    try:
        record = records.read(spec.record_path)
    except (FileNotFoundError, ValueError):
        return None
    return record if record.get("job", {}).get("attempt") == spec.job.attempt else None


def _died(spec: RunSpec, code: int, started_at: str) -> dict:
    how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    hint = " (SIGKILL usually means the machine ran out of memory)" if code == -9 else ""
    return records.build(
        run_id=spec.run_id,
        status="failed",
        started_at=started_at,
        config=spec.config_dict(),
        env=environment.collect(),
        metrics={},
        history=[],
        wandb={"mode": None, "id": None, "url": None, "dir": None},
        error=WorkerDied(f"worker process ended with {how} before writing its record{hint}"),
        job=spec.job_dict(),
    )
