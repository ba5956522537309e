"""One claim per point, so that launchers and sweep agents sharing a results_dir never train
the same point twice.

A claim is ``<results_dir>/<run_id>.lock``, created atomically (``O_CREAT | O_EXCL``) and
holding the host, pid and start time of its holder. The holder touches it while its worker
runs (a heartbeat). A lock is stale, and is taken over, when its holder is a dead process
on this host, or when its heartbeat is older than ``STALE_AFTER_S`` (a holder on another
host that died). Taking over renames the stale file away first, so of two processes that
find the same stale lock only one creates the new one.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench.core.record import now

STALE_AFTER_S = 600.0  # no heartbeat for 10 minutes: the holder is gone
HEARTBEAT_S = 30.0


@dataclass
class Lock:
    """A held claim; :meth:`release` it when the point is done (``with`` does)."""

    path: Path
    _stop: threading.Event = field(default_factory=threading.Event)
    _beat: threading.Thread | None = None

    def __enter__(self) -> Lock:
        self._beat = threading.Thread(target=self._heartbeat, daemon=True)
        self._beat.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                return

    def release(self) -> None:
        """Stops the heartbeat and removes the lock file."""
        self._stop.set()
        self.path.unlink(missing_ok=True)


def path_for(results_dir: str | os.PathLike, run_id: str) -> Path:
    return Path(results_dir) / f"{run_id}.lock"


def holder(path: Path) -> dict | None:
    """Who holds a lock file (host, pid, started_at), or None when it is gone or unreadable."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def stale(info: dict | None, path: Path, stale_after_s: float = STALE_AFTER_S) -> bool:
    """A dead holder on this host, or no heartbeat for ``stale_after_s`` seconds."""
    if info and info.get("host") == socket.gethostname() and not _alive(info.get("pid")):
        return True
    try:
        return time.time() - path.stat().st_mtime > stale_after_s
    except FileNotFoundError:
        return True


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, TypeError, ValueError):
        return False
    except PermissionError:
        return True  # someone else's process, alive
    return True


def claim(results_dir: str | os.PathLike, run_id: str) -> Lock | dict:
    """Claims a point: the :class:`Lock`, or the holder's info when a live process holds it."""
    path = path_for(results_dir, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    mine = {"host": socket.gethostname(), "pid": os.getpid(), "started_at": now()}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            info = holder(path)
            if not stale(info, path):
                return info or {"host": "?", "pid": "?", "started_at": "?"}
            _take_over(path, info)
            continue
        with os.fdopen(fd, "w") as handle:
            json.dump(mine, handle)
        return Lock(path)
    return holder(path) or {"host": "?", "pid": "?", "started_at": "?"}


def _take_over(path: Path, seen: dict | None) -> None:
    """Moves a stale lock away; puts it back if it turned out to be a fresh one."""
    aside = path.with_name(f"{path.name}.stale-{uuid.uuid4().hex}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # another process took it over first
    if holder(aside) != seen:  # a fresh lock appeared between our read and the rename
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
    aside.unlink(missing_ok=True)
