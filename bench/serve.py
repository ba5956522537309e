"""``python -m bench.serve [--runs DIR] [--group G] [--tag T] [--run-id ID ...]``: what each
kept model costs to serve.

For every completed record in ``--runs`` (narrowed by the multirun group, a W&B tag or run
ids) whose kept model has formats not yet measured, it exports the model to LiteRT
(float32, float16, dynamic-range int8, full-integer int8), measures each export and the
SavedModel (size, accuracy, batch-1 latency at 1 thread and all cores, throughput) and
writes the figures into the record's ``serving`` section (:mod:`bench.pipeline.serve`).
Formats already measured are skipped, so a second serve measures nothing again.

The converter uses one core and is most of a serve's time, so with two or more records and
usable cores the exports are converted first, one record per core at a time, with nothing
timed, into a folder in the temporary directory ($TMPDIR); then each record is measured
alone, in a process that does nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import bench  # noqa: F401  (sets TF_USE_LEGACY_KERAS first)
from bench.core import record as records
from bench.core.console import say
from bench.core.orphans import die_with_parent
from bench.core.schema import ServingConfig, ServingFormat
from bench.core.served import pending, unstaged

_DEFAULTS = ServingConfig()


def main(argv: list[str] | None = None) -> int:
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
    started, failed = time.perf_counter(), 0
    with (
        stopped_by_sigterm(),
        tempfile.TemporaryDirectory(prefix="bench-serve-") as staging,
        Recycled(RECORDS_PER_PROCESS) as worker,
    ):
        stage(todo, settings, staging)
        for number, (path, rec) in enumerate(todo, 1):
            say(f"[{number}/{len(todo)}] {rec.run_id} ({rec.config['backbone']['name']}): "
                f"{', '.join(pending(rec, settings, path))}")  # fmt: skip
            converts = bool(unstaged(rec, settings, path, staging))
            try:
                worker(_serve_one, str(path), settings, staging)
                done = records.read(path)
            except Exception as error:  # noqa: BLE001  (one record's data or model; the rest go on)
                failed += 1
                say(f"  not served: {type(error).__name__}: {error}", error=True)
                continue
            else:
                if converts:  # the converter's memory stays with its process: a fresh one next
                    worker.close()
            for name, result in done.serving.formats.items():
                say(f"  {line(name, result)}")
            publish(done)
    say(f"served {len(todo) - failed} of {len(todo)} records in "
        f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    return 1 if failed else 0


@contextlib.contextmanager
def stopped_by_sigterm() -> Iterator[None]:
    """SIGTERM ends the command as Ctrl-C does (its processes end with it and the staging
    folder is removed), instead of at once with orphans left behind."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stage(todo: list, settings: ServingConfig, staging: str) -> None:
    """Converts the pending exports of every record in ``todo`` into ``staging``, one
    record per usable core at a time, in processes of their own; nothing is timed while
    they run. A record that fails here is converted again, and reported, when measured."""
    from bench.core import environment

    workers = min(environment.usable_cores(), len(todo))
    if workers < 2:  # nothing to gain: the measuring pass converts as it goes
        return
    say(f"converting the exports of {len(todo)} records, {workers} at a time")
    started, queue = time.perf_counter(), list(reversed(todo))
    converters = [Recycled(CONVERSIONS_PER_PROCESS) for _ in range(workers)]

    def drain(worker: Recycled) -> None:
        with worker:
            while True:
                try:
                    path, rec = queue.pop()  # atomic: each record goes to one thread
                except IndexError:
                    return
                try:
                    names = worker(_export_one, str(path), settings, staging)
                    say(f"  converted {rec.run_id}: {', '.join(names) or 'nothing'}")
                except Exception as error:  # noqa: BLE001  (measuring converts it again, and says why)
                    if queue or not worker.stopped:
                        say(f"  {rec.run_id} not converted ahead: {type(error).__name__}: "
                            f"{error}", error=True)  # fmt: skip

    with ThreadPoolExecutor(workers) as threads:
        futures = [threads.submit(drain, worker) for worker in converters]
        try:
            for future in futures:
                future.result()
        except BaseException:  # a stop: no record more, and the conversions under way end now
            queue.clear()
            for worker in converters:
                worker.terminate()
            raise
    say(f"converted in {time.perf_counter() - started:.0f} s; now each record is measured alone")


#: Calls one process takes before a fresh one replaces it. Starting a process that imports
#: TensorFlow costs ~6 s here; the converter keeps ~0.6 GB per B0 record it converted, and
#: measuring ~0.09 GB per record (loaded SavedModels are not all given back).
CONVERSIONS_PER_PROCESS = 4
RECORDS_PER_PROCESS = 8


class Recycled:
    """Runs calls one at a time in a spawned process of its own (never the command's, which
    may have loaded anything), replaced every ``calls`` calls and after a crash. The
    process dies with the command, and with the context when it is left on an error.

    Args:
        calls: How many calls one process takes.
    """

    def __init__(self, calls: int):
        self.calls = calls
        self.stopped = False
        self._pool: ProcessPoolExecutor | None = None
        self._taken = 0

    def __call__(self, function: Callable, *args):
        """``function(*args)`` in the process; its result, or its error raised here."""
        if self.stopped:
            raise RuntimeError("stopped")
        if self._pool is None or self._taken == self.calls:
            self.close()
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(1, mp_context=context, initializer=die_with_parent)
        self._taken += 1
        try:
            return self._pool.submit(function, *args).result()
        except BrokenProcessPool:
            self.close()
            raise

    def terminate(self) -> None:
        """Ends the process at once, abandoning its call (a stop), and takes no more."""
        self.stopped = True
        if self._pool is not None:
            for process in list(self._pool._processes.values()):  # no public way to end one
                process.terminate()

    def close(self) -> None:
        """Ends the process once its call is done."""
        if self._pool is not None:
            self._pool.shutdown()
        self._pool, self._taken = None, 0

    def __enter__(self) -> Recycled:
        return self

    def __exit__(self, kind, *rest) -> None:
        if kind is not None:
            self.terminate()
        self.close()


def _export_one(path: str, settings: ServingConfig, staging: str) -> list[str]:
    from bench.pipeline import serve

    return serve.export(Path(path), settings, Path(staging))


def _serve_one(path: str, settings: ServingConfig, staging: str | None) -> None:
    from bench.pipeline import serve

    serve.serve(Path(path), settings, Path(staging) if staging else None)


def publish(done: records.Record) -> None:
    """The figures and the model artifact into the run's W&B run, when it had one; a W&B
    failure is reported and the serve goes on (the record has every figure)."""
    from bench.pipeline import tracker

    try:
        if tracker.publish_serving(done):
            say(f"  W&B run {done.wandb.id} ({done.wandb.mode}): serving figures and model logged")
    except Exception as error:  # noqa: BLE001  (wandb raises several types)
        say(f"  W&B run {done.wandb.id} not updated: {type(error).__name__}: {error}", error=True)


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
    found = []
    for path in sorted(runs.glob("*.json")):
        try:
            rec = records.read(path)
        except (OSError, ValueError) as error:
            say(f"skipped {path}: {error}", error=True)
            continue
        if group and rec.job.get("group") != group:
            continue
        if tag and tag not in (rec.config.get("wandb") or {}).get("tags", []):
            continue
        if run_ids and rec.run_id not in run_ids:
            continue
        found.append((path, rec))
    return found


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


def command() -> int:
    """``main`` as the command runs it: a stop (Ctrl-C, SIGTERM) is a line, not a traceback."""
    try:
        return main()
    except KeyboardInterrupt as stop:
        say(f"{stop or 'stopped'}: what was measured is in the records; run again to go on",
            error=True)  # fmt: skip
        return 130


if __name__ == "__main__":
    sys.exit(command())
