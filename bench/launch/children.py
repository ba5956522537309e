"""Child processes, the one way the launcher room runs work that loads TensorFlow.

Training starts one fresh ``python -m bench.worker`` per job (:func:`start`, :func:`wait`):
its memory, time and Keras state are its own, and a signal to the launcher reaches it.
Serving calls functions in a spawned process that is recycled every few calls
(:class:`Recycled`): starting a process that imports TensorFlow costs seconds, and the
converter's memory is only given back when its process ends. Both kinds die with the
command (:func:`bench.core.orphans.die_with_parent`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
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


def wait(child: subprocess.Popen, grace_s: float) -> tuple[int, list[int]]:
    """Waits for ``child``, forwarding SIGTERM and SIGINT to it; after a signal it has
    ``grace_s`` seconds to finish before it is killed.

    Returns:
        Its exit code, and the signals this process received meanwhile.
    """
    received: list[int] = []

    def forward(signum, frame) -> None:
        received.append(signum)
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    deadline = None
    try:
        while True:
            try:
                return child.wait(timeout=1.0), received
            except subprocess.TimeoutExpired:
                if received and deadline is None:
                    deadline = time.monotonic() + grace_s
                if deadline is not None and time.monotonic() > deadline:
                    child.kill()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def stopped_by_sigterm() -> Iterator[None]:
    """SIGTERM ends the command as Ctrl-C does (its processes end with it and its
    temporary folders are removed), instead of at once with orphans left behind."""

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
