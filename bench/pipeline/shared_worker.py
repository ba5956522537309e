"""The loop of a shared worker, ``python -m bench.worker --jobs FD``
(:class:`bench.launch.children.Shared` is its launcher's side).

It runs the spec files named on its stdin one after another, and answers each with the
job's exit code on the pipe ``FD``. Between jobs it starts Keras' names and graph afresh,
gives freed memory back to the system and starts the peak RSS again, so that a job's
figures come as close to a fresh process's as one process allows (the record's
``env.job_in_process`` says where they cannot).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import os
import sys
from collections.abc import Callable
from pathlib import Path

import tf_keras as keras

from bench.core.errors import Interrupted
from bench.pipeline import measure, stop


def loop(reply_fd: int, run: Callable[[Path], int]) -> int:
    """Runs the spec files named on stdin, one per line, answering each with its exit code
    (``run``'s) on ``reply_fd``.

    Args:
        reply_fd: The pipe the launcher reads the exit codes from.
        run: Runs one spec file and returns its exit code (``bench.worker.run``).

    Returns:
        0, at the end of stdin or after the job a stop signal reached. An error that
        escapes a run ends the worker as it would end a fresh one.
    """
    os.set_inheritable(reply_fd, False)  # a process a job starts must not hold the pipe open
    with open(reply_fd, "w", buffering=1) as replies:
        while not stop.requested() and (line := _next_job()):
            keras.backend.clear_session()  # Keras' names and graph start as in a new process
            _give_back_memory()
            measure.reset_peak_host_rss()  # the run's peak starts at what is still held
            replies.write(f"{run(Path(line))}\n")
    return 0


def _next_job() -> str:
    """The next spec file named on stdin; empty at its end, or when a stop arrives while
    waiting (a stop during a job is the job's, recorded as Interrupted)."""
    try:
        return sys.stdin.readline().strip()
    except Interrupted:
        return ""


def _give_back_memory() -> None:
    """Frees what the jobs before left unreferenced and returns the heap's free pages to
    the system (glibc's ``malloc_trim``), so a job's peak starts near a new process's."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
