"""``python -m bench.serve``'s body, and ``serve=true``'s: measure what every selected kept
model costs to serve.

For every completed record in ``--runs`` (narrowed by the multirun group, a W&B tag or run
ids) whose kept model has formats not yet measured (a kept head is first assembled into its
SavedModel, :func:`bench.pipeline.keep.assemble`), the worker room exports the model to
LiteRT (float32, float16, dynamic-range int8, full-integer int8), measures each export and
the SavedModel (size, accuracy, batch-1 latency at 1 thread and all cores, throughput) and
writes the figures into the record's ``serving`` section (:mod:`bench.pipeline.exports`).
Formats already measured are skipped, so a second serve measures nothing again.

The converter uses one core and is most of a serve's time, so with two or more records and
usable cores the exports are converted first, one record per core at a time, with nothing
timed, into a folder in the temporary directory ($TMPDIR); then each record is measured
alone, in a process that does nothing else meanwhile. With ``serve=true`` a job serves its
own record this way once its worker has ended (:func:`serve_run`, called by
:mod:`bench.launch.job`). This room never imports the worker room: the command hands in
the worker's steps (:class:`Steps`), which run in child processes
(:class:`bench.launch.children.Recycled`).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.core import environment
from bench.core import record as records
from bench.core.console import say
from bench.core.pending import formats as pending
from bench.core.pending import unstaged
from bench.core.schema import ServingConfig, ServingFormat
from bench.launch.children import Recycled, stopped_by_sigterm

_DEFAULTS = ServingConfig()

#: Calls one process takes before a fresh one replaces it. Starting a process that imports
#: TensorFlow costs ~6 s here; the converter keeps ~0.6 GB per B0 record it converted, and
#: measuring ~0.09 GB per record (loaded SavedModels are not all given back).
CONVERSIONS_PER_PROCESS = 4
RECORDS_PER_PROCESS = 8


@dataclass(frozen=True)
class Steps:
    """The worker room's part, handed in by the command. ``export`` and ``measure`` run in a
    spawned process, so they are functions at the top level of a module.

    Attributes:
        export: ``(record path, settings, staging folder)``: converts the pending exports
            into the staging folder; the names converted.
        measure: ``(record path, settings, staging folder or None)``: measures and writes
            the figures into the record.
        publish: ``(record path, the served record)``: its figures into its W&B run, in
            the command's process; False when the run had no W&B run.
    """

    export: Callable[[str, ServingConfig, str], list[str]]
    measure: Callable[[str, ServingConfig, str | None], None]
    publish: Callable[[str, records.Record], bool]


def main(argv: list[str] | None, steps: Steps) -> int:
    """Serves every selected record that has something pending; 0 when all went through,
    1 when a record could not be served (the others still are)."""
    parser = arguments()
    args = parser.parse_args(argv)
    settings = ServingConfig(
        formats=formats(parser, args.formats),
        calibration_images=args.calibration_images,
        timed_calls=args.timed_calls,
    )
    selected = select(Path(args.runs), args.group, args.tag, set(args.run_id or ()))
    todo = [(path, rec) for path, rec in selected if pending(rec, settings, path)]
    say(f"{len(selected)} records selected, {len(todo)} with formats to measure")
    started = time.perf_counter()
    with stopped_by_sigterm(), tempfile.TemporaryDirectory(prefix="bench-serve-") as staging:
        stage(todo, settings, staging, steps)
        failed = measure_each(todo, settings, staging, steps)
    say(f"served {len(todo) - failed} of {len(todo)} records in "
        f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    return 1 if failed else 0


def measure_each(todo: list, settings: ServingConfig, staging: str, steps: Steps) -> int:
    """Measures the records one at a time, each alone in its process; how many failed."""
    failed = 0
    with Recycled(RECORDS_PER_PROCESS) as worker:
        for number, (path, rec) in enumerate(todo, 1):
            say(f"[{number}/{len(todo)}] {rec.run_id} ({rec.config['backbone']['name']}): "
                f"{', '.join(pending(rec, settings, path))}")  # fmt: skip
            failed += not measure_one(worker, (path, rec), settings, staging, steps)
    return failed


def serve_run(path: Path, settings: ServingConfig, steps: Steps) -> bool:
    """``serve=true``: the record of a run that just completed, served in a process of its
    own as ``python -m bench.serve`` serves one (no staging: nothing to convert ahead).

    Returns:
        Whether it was served; when not, the line says why and the run stays completed.
    """
    try:
        rec = records.read(path)
        say(f"serving {rec.run_id}: {', '.join(pending(rec, settings, path))}")
    except (OSError, ValueError) as error:  # the record moved or was damaged meanwhile
        say(f"  {path} not served: {type(error).__name__}: {error}", error=True)
        return False
    with Recycled(1) as worker:
        return measure_one(worker, (path, rec), settings, None, steps)


def measure_one(
    worker: Recycled, found: tuple, settings: ServingConfig, staging: str | None, steps: Steps
) -> bool:
    """Measures one record in ``worker``, prints its figures and publishes them to W&B.

    Args:
        worker: The process to measure in.
        found: The record's path, and the record.
        settings: What to measure and how.
        staging: Where :func:`stage` converted ahead, or None.
        steps: The worker room's part.

    Returns:
        Whether it was served (a failure is said, and the next record goes on).
    """
    path, rec = found
    converts = staging is None or bool(unstaged(rec, settings, path, staging))
    try:
        worker(steps.measure, str(path), settings, staging)
        done = records.read(path)
    except Exception as error:  # noqa: BLE001  (one record's data or model; the rest go on)
        say(f"  not served: {type(error).__name__}: {error}", error=True)
        return False
    if converts:  # the converter's memory stays with its process: a fresh one next
        worker.close()
    for name, result in done.serving.formats.items():
        say(f"  {line(name, result)}")
    publish(path, done, steps)
    return True


def publish(path: Path, done: records.Record, steps: Steps) -> None:
    """The figures and the model into the run's W&B run, when it had one; a W&B failure is
    reported and the serve goes on (the record has every figure)."""
    try:
        if steps.publish(str(path), done):
            say(f"  W&B run {done.wandb.id} ({done.wandb.mode}): serving figures and model logged")
    except Exception as error:  # noqa: BLE001  (wandb raises several types)
        say(f"  W&B run {done.wandb.id} not updated: {type(error).__name__}: {error}", error=True)


def stage(todo: list, settings: ServingConfig, staging: str, steps: Steps) -> None:
    """Converts the pending exports of every record in ``todo`` into ``staging``, one
    record per usable core at a time, in processes of their own; nothing is timed while
    they run. A record that fails here is converted again, and reported, when measured."""
    workers = min(environment.usable_cores(), len(todo))
    if workers < 2:  # nothing to gain: the measuring pass converts as it goes
        return
    say(f"converting the exports of {len(todo)} records, {workers} at a time")
    started, queue = time.perf_counter(), list(reversed(todo))
    converters = [Recycled(CONVERSIONS_PER_PROCESS) for _ in range(workers)]
    with ThreadPoolExecutor(workers) as threads:
        futures = [threads.submit(_drain, w, queue, settings, staging, steps) for w in converters]
        try:
            for future in futures:
                future.result()
        except BaseException:  # a stop: no record more, and the conversions under way end now
            queue.clear()
            for worker in converters:
                worker.terminate()
            raise
    say(f"converted in {time.perf_counter() - started:.0f} s; now each record is measured alone")


def _drain(worker: Recycled, queue: list, settings, staging: str, steps: Steps) -> None:
    """One converter's thread: takes records off ``queue`` until it is empty."""
    with worker:
        while True:
            try:
                path, rec = queue.pop()  # atomic: each record goes to one thread
            except IndexError:
                return
            try:
                names = worker(steps.export, str(path), settings, staging)
                say(f"  converted {rec.run_id}: {', '.join(names) or 'nothing'}")
            except Exception as error:  # noqa: BLE001  (measuring converts it again, and says why)
                if queue or not worker.stopped:
                    say(f"  {rec.run_id} not converted ahead: {type(error).__name__}: "
                        f"{error}", error=True)  # fmt: skip


def positive(value: str) -> int:
    """An argparse type: a whole number of 1 or more."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not 1 or more")
    return number


def arguments() -> argparse.ArgumentParser:
    """The command's options: which records, which formats, how many calls."""
    parser = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__)
    parser.add_argument("--runs", default="results/runs", help="folder of records")
    parser.add_argument("--group", help="only the runs of this multirun group")
    parser.add_argument("--tag", help="only runs with this W&B tag")
    parser.add_argument("--run-id", action="append", help="only this run (repeatable)")
    parser.add_argument(
        "--formats",
        default=",".join(f.value for f in _DEFAULTS.formats),
        help="LiteRT exports, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--calibration-images", type=positive, default=_DEFAULTS.calibration_images,
        help="training images the int8 export is calibrated on (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--timed-calls", type=positive, default=_DEFAULTS.timed_calls,
        help="batch-1 calls timed per format and thread count (default: %(default)s)",
    )  # fmt: skip
    return parser


def formats(parser: argparse.ArgumentParser, value: str) -> list[ServingFormat]:
    """``--formats`` as formats; an unknown one exits 2 naming it and the allowed values."""
    allowed = [f.value for f in ServingFormat]
    unknown = [f for f in value.split(",") if f and f not in allowed]
    if unknown:
        parser.error(
            f"--formats: {', '.join(unknown)} is not a format; allowed: {', '.join(allowed)} "
            f"(comma-separated, e.g. --formats float32,int8)"
        )
    return [ServingFormat(f) for f in value.split(",") if f]


def select(runs: Path, group: str | None, tag: str | None, run_ids: set[str]):
    """The readable records of ``runs`` that match every given filter, with their paths."""
    found, skipped = records.scan(runs)
    for path, why in skipped:
        say(f"skipped {path}: {why}", error=True)
    return [
        (path, rec) for path, rec in found
        if (not group or rec.job.get("group") == group)
        and (not tag or tag in (rec.config.get("wandb") or {}).get("tags", []))
        and (not run_ids or rec.run_id in run_ids)
    ]  # fmt: skip


def line(name: str, result: records.FormatResult) -> str:
    """One format's figures in a line."""
    if result.status != "measured":
        return f"{name:>12}: {result.status} ({result.reason})"
    fewest = min(result.latency, key=int)
    p50 = result.latency[fewest].p50_ms
    return (
        f"{name:>12}: {result.size_bytes / 1e6:8.2f} MB  accuracy {result.accuracy:.3f}  "
        f"p50 {p50:7.2f} ms ({fewest} thread{'s' if fewest != '1' else ''})  "
        f"{result.images_per_s:8.1f} img/s"
    )


def command(main_: Callable[[], int]) -> int:
    """``main_`` as the command runs it: a stop (Ctrl-C, SIGTERM) is a line, not a traceback."""
    try:
        return main_()
    except KeyboardInterrupt as stop:
        say(f"{stop or 'stopped'}: what was measured is in the records; run again to go on",
            error=True)  # fmt: skip
        return 130
