"""``python -m bench.serve [--runs DIR] [--group G] [--tag T] [--run-id ID ...]``: what each
kept model costs to serve; see :mod:`bench.launch.serve_all` (``bench.run`` hands its
:func:`steps` in for ``serve=true``)."""

from __future__ import annotations

import sys
from pathlib import Path

import bench  # noqa: F401  (sets TF_USE_LEGACY_KERAS first)
from bench.launch import serve_all

arguments = serve_all.arguments  # the documentation is built from it


def main(argv: list[str] | None = None) -> int:
    """The launcher's serve, with the worker room's steps."""
    return serve_all.main(argv, steps())


def steps() -> serve_all.Steps:
    """The worker room's steps of a serve; they run in child processes."""
    return serve_all.Steps(_export, _measure, _publish)


def _export(path: str, settings, staging: str) -> list[str]:
    from bench.pipeline import exports  # TensorFlow loads here, in the child process

    return exports.convert(Path(path), settings, Path(staging))


def _measure(path: str, settings, staging: str | None) -> None:
    from bench.pipeline import exports  # TensorFlow loads here, in the child process

    exports.measure(Path(path), settings, Path(staging) if staging else None)


def _publish(path: str, done) -> bool:
    from bench.pipeline import tracker

    return tracker.publish_serving(done, Path(path))


if __name__ == "__main__":
    sys.exit(serve_all.command(main))
