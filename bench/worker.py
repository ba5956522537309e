"""``python -m bench.worker SPEC_JSON``: the worker's entry point, one run in this fresh process.

``python -m bench.worker --jobs FD`` is a shared worker (bench.pipeline.shared_worker): it
runs the spec files named on its stdin one after another and answers each with its exit
code on the pipe ``FD``, until its stdin closes or a stop arrives.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import bench  # noqa: F401  (sets TF_USE_LEGACY_KERAS first)
from bench.core import cluster
from bench.core.console import say
from bench.core.errors import EXIT_CONFIG_ERROR, UserError
from bench.core.orphans import die_with_parent
from bench.core.spec import RunSpec
from bench.pipeline import shared_worker, stop, tracker
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
        return shared_worker.loop(int(argv[1]), run)
    return run(Path(argv[0]))


def run(spec_file: Path) -> int:
    """Runs one spec file; its exit code (see :func:`main`)."""
    spec = RunSpec.from_json(spec_file.read_text())
    try:
        return 0 if execute(spec).completed else 1
    except UserError as error:
        say(f"config error: {error}", error=True)
        return EXIT_CONFIG_ERROR


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
