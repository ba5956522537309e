"""``python -m bench.serve [--runs DIR] [--group G] [--tag T] [--run-id ID ...]``: what each
kept model costs to serve; see :mod:`bench.launch.serve_all`."""

from __future__ import annotations

import sys
from pathlib import Path

import bench  # noqa: F401  (sets TF_USE_LEGACY_KERAS first)
from bench.launch import serve_all

arguments = serve_all.arguments  # the documentation is built from it


def main(argv: list[str] | None = None) -> int:
    """The launcher's serve, with the worker room's steps (they run in child processes)."""
    return serve_all.main(argv, serve_all.Steps(_export, _measure, _publish))


def _export(path: str, settings, staging: str) -> list[str]:
    from bench.pipeline import exports  # TensorFlow loads here, in the child process

    return exports.convert(Path(path), settings, Path(staging))


def _measure(path: str, settings, staging: str | None) -> None:
    from bench.pipeline import exports  # TensorFlow loads here, in the child process

    exports.measure(Path(path), settings, Path(staging) if staging else None)


def _publish(done) -> None:
    """The figures and the model into the run's W&B run, when it had one; a W&B failure is
    reported and the serve goes on (the record has every figure)."""
    from bench.core.console import say
    from bench.pipeline import tracker

    try:
        if tracker.publish_serving(done):
            say(f"  W&B run {done.wandb.id} ({done.wandb.mode}): serving figures and model logged")
    except Exception as error:  # noqa: BLE001  (wandb raises several types)
        say(f"  W&B run {done.wandb.id} not updated: {type(error).__name__}: {error}", error=True)


if __name__ == "__main__":
    sys.exit(serve_all.command(main))
