"""``python -m bench.worker SPEC_JSON``: the worker's entry point, one run in this fresh process.

``python -m bench.worker --jobs FD`` is a shared worker (bench.launch.children.Shared): it
runs the spec files named on its stdin one after another and answers each with its exit
code on the pipe ``FD``, until its stdin closes or a stop arrives.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import logging
import os
import sys
from pathlib import Path

import bench  # noqa: F401  (sets TF_USE_LEGACY_KERAS first)
from bench.core import cluster
from bench.core.console import say
from bench.core.errors import EXIT_CONFIG_ERROR, Interrupted, UserError
from bench.core.orphans import die_with_parent
from bench.core.spec import RunSpec
from bench.pipeline import measure, stop, tracker
from bench.pipeline.execute import execute


def main(argv: list[str]) -> int:
    """Runs the spec file named by ``argv[0]``, or the jobs of ``--jobs FD``.

    Returns:
        For one run: 0 when it completed, 1 when it failed (its record says why), 2 for a
        config error only the worker can see (the replica count), with nothing written.
    """
    die_with_parent()  # no worker outlives its launcher
    # TensorFlow's traceback filter raises TypeError rebuilding a traceback with a frame
    # that has no line number, which a signal landing between two lines can leave (Python
    # 3.11); the TypeError then stood in for Interrupted in the record.
    import tensorflow as tf  # not at the top: bench must be imported before TensorFlow

    tf.debugging.disable_traceback_filtering()
    stop.install()  # SIGTERM, SIGINT: record Interrupted, keep the checkpoint (a relaunch resumes)
    if argv[0] == "--jobs":
        return jobs(int(argv[1]))
    return run(Path(argv[0]))


def run(spec_file: Path) -> int:
    """Runs one spec file; its exit code (see :func:`main`)."""
    spec = RunSpec.from_json(spec_file.read_text())
    try:
        return 0 if execute(spec).completed else 1
    except UserError as error:
        say(f"config error: {error}", error=True)
        return EXIT_CONFIG_ERROR


def jobs(reply_fd: int) -> int:
    """Runs the spec files named on stdin, one per line, answering each with its exit code
    (as :func:`run`'s) on ``reply_fd``.

    Args:
        reply_fd: The pipe the launcher reads the exit codes from.

    Returns:
        0, at the end of stdin or after the job a stop signal reached. An error that
        escapes a run ends the worker as it would end a fresh one.
    """
    import tf_keras as keras

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


def exit_now(code: int) -> None:
    """Ends the worker once its run is written (record, W&B run, checkpoint state).

    The interpreter's own teardown of TensorFlow takes about 0.9 s here and has nothing
    left to save; for a run on cached features that is a seventh of its time. A worker of
    a multi-worker run ends normally: TensorFlow's shutdown waits for the other workers.
    """
    if cluster.role().workers > 1:
        sys.exit(code)
    tracker.shutdown()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main(sys.argv[1:]))
