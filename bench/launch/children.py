"""Child processes, the one way the launcher room runs work that loads TensorFlow.

Training starts one fresh ``python -m bench.worker`` per job (:func:`start`, :func:`wait`):
its memory, time and Keras state are its own, and a signal to the launcher reaches it.
Jobs that train only a head on cached features, which take seconds where a fresh process
costs several, go to one worker that takes them one after another (:class:`Shared`).
Serving calls functions in a spawned process that is recycled every few calls
(:class:`Recycled`): starting a process that imports TensorFlow costs seconds, and the
converter's memory is only given back when its process ends. Both kinds die with the
command (:func:`bench.core.orphans.die_with_parent`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from bench.core.orphans import die_with_parent


def start(module: str, *args: str) -> subprocess.Popen:
    """``python -m module args`` in a new process of this process group, unbuffered so
    its progress reaches a pipe or log file as it happens. A signal to the group
    (``scancel``, a terminal's Ctrl-C) reaches both; one to this process alone is
    forwarded by :func:`wait`."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", module, *args], env=env)


def wait(
    child: subprocess.Popen, grace_s: float, finished: Callable[[], int | None] | None = None
) -> tuple[int, list[int]]:
    """Waits for ``child``, forwarding SIGTERM and SIGINT to it; after a signal it has
    ``grace_s`` seconds to finish before it is killed.

    Args:
        child: The process.
        grace_s: Its time to finish after a signal.
        finished: Polled about once a second: the job's exit code once it is done, else
            None. By default the job is the process, done when it exits.

    Returns:
        The job's exit code, and the signals this process received meanwhile.
    """
    received: list[int] = []
    finished = finished or (lambda: _exited(child, 1.0))

    def forward(signum, frame) -> None:
        received.append(signum)
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    deadline = None
    try:
        while (code := finished()) is None:
            if received and deadline is None:
                deadline = time.monotonic() + grace_s
            if deadline is not None and time.monotonic() > deadline:
                child.kill()
        return code, received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _exited(child: subprocess.Popen, timeout: float) -> int | None:
    try:
        return child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


class Shared:
    """One ``python -m bench.worker --jobs FD`` that runs jobs one after another: each
    job's spec file goes to its stdin, its exit code comes back on the pipe ``FD``.

    It is replaced after ``jobs`` jobs, after a job that did not complete (the next job,
    an out-of-memory retry say, starts afresh), after it dies, and when a job's settings
    differ from the previous job's. It ends when :meth:`close` closes its stdin, or with
    the command.

    Args:
        jobs: How many jobs one process takes.
    """

    def __init__(self, jobs: int):
        self.jobs = jobs
        self._child: subprocess.Popen | None = None
        self._replies = None
        self._taken = 0
        self._settings: object = None

    def run(self, spec_file: str, grace_s: float, settings: object) -> tuple[int, list[int]]:
        """Runs one job, waiting for it as :func:`wait` does for a fresh worker.

        Args:
            spec_file: The job's spec.
            grace_s: Its time to finish after a signal.
            settings: What the worker keeps from its first job; a job whose settings
                differ gets a new worker.

        Returns:
            The job's exit code (negative: the signal that killed the worker during the
            job), and the signals this process received meanwhile.
        """
        received: list[int] = []
        for _ in range(2):  # a worker that was leaving when it was asked hands the job on
            if self._stale(settings):
                self._start(settings)
            code, signals = self._ask(spec_file, grace_s)
            received += signals
            if code != _LEFT or received:  # after a stop, the job is not handed on
                break
            self.close()
        if code == _LEFT:  # two workers in a row, or a stop, ended before taking the job
            code = 1
        if code != 0:
            self.close()
        return code, received

    def _stale(self, settings: object) -> bool:
        old = self._child is None or self._taken == self.jobs or self._child.poll() is not None
        return old or settings != self._settings

    def _ask(self, spec_file: str, grace_s: float) -> tuple[int, list[int]]:
        """The job's exit code, :data:`_LEFT` when the worker ended before taking it, and
        the signals this process received meanwhile."""
        try:
            self._taken += 1
            self._child.stdin.write(f"{spec_file}\n")
            self._child.stdin.flush()
        except BrokenPipeError:  # it died since it was last asked
            return _LEFT, []
        return wait(self._child, grace_s, self._reply)

    def _start(self, settings: object) -> None:
        self.close()
        read, write = os.pipe()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "bench.worker", "--jobs", str(write)]
        try:
            self._child = subprocess.Popen(
                command, env=env, stdin=subprocess.PIPE, text=True, pass_fds=(write,)
            )
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        self._replies, self._settings = os.fdopen(read, "r"), settings

    def _reply(self) -> int | None:
        """The job's exit code once the worker answered or ended (:data:`_LEFT` when it
        ended with exit code 0 without answering: it never took the job); else None."""
        ready, _, _ = select.select([self._replies], [], [], 1.0)
        if ready and (line := self._replies.readline()).strip():
            return int(line)
        code = _exited(self._child, 1.0) if ready else self._child.poll()
        if code is not None and not ready:  # it may have answered just before it ended
            ready, _, _ = select.select([self._replies], [], [], 0)
            if ready and (line := self._replies.readline()).strip():
                return int(line)
        return _LEFT if code == 0 else code

    def close(self) -> None:
        """Ends the worker once it is idle: its stdin closes, and it exits."""
        if self._child is not None:
            with contextlib.suppress(BrokenPipeError):
                self._child.stdin.close()
            if _exited(self._child, 30.0) is None:  # stuck: it has nothing left to write
                self._child.kill()
                self._child.wait()
            self._replies.close()
        self._child, self._replies, self._taken, self._settings = None, None, 0, None


_LEFT = 256  # not an exit code: a shared worker that ended without taking the job it was sent


class Stopped(KeyboardInterrupt):
    """SIGTERM, raised as Ctrl-C's KeyboardInterrupt is, naming its signal."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    def __reduce__(self):  # copied or pickled whole, with its signal
        return (type(self), (self.signum,))


@contextlib.contextmanager
def stopped_by_sigterm() -> Iterator[None]:
    """SIGTERM ends the command as Ctrl-C does (its processes end with it and its
    temporary folders are removed), instead of at once with orphans left behind."""

    def interrupt(signum, frame):
        raise Stopped(signum)

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
