"""Out of memory, seen from the launcher: the kernel's OOM killer and ``oom_retry``.

A worker that the OOM killer ends gets SIGKILL and writes nothing. The memory cgroup
counts those kills (``oom_kill`` in cgroup v2's ``memory.events``, in cgroup v1's
``memory.oom_control``); a count that rose while the worker ran says which SIGKILL it was.
"""

from __future__ import annotations

from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
MIN_BATCH_SIZE = 8  # oom_retry stops here: BatchNorm statistics get noisy below it


def kill_count(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int | None:
    """OOM kills counted by this process's memory cgroup so far; None when unreadable."""
    for path in _counter_files(root, proc_cgroup):
        try:
            for line in path.read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            continue
    return None


def _counter_files(root: Path, proc_cgroup: Path) -> list[Path]:
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    found = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        if controllers == "":  # cgroup v2
            found += [root / relative / "memory.events", root / "memory.events"]
        elif "memory" in controllers.split(","):
            found += [root / "memory" / relative / "memory.oom_control"]
            found += [root / "memory" / "memory.oom_control"]  # a namespace's own root
    return found


def killed_by_oom(code: int, before: int | None, after: int | None) -> bool:
    """Whether a worker that ended with ``code`` was ended by the OOM killer."""
    return code == -9 and before is not None and after is not None and after > before


def smaller_batch(batch_size: int) -> int | None:
    """The next batch size ``oom_retry`` tries, or None when halving would go below the floor."""
    half = batch_size // 2
    return half if half >= MIN_BATCH_SIZE else None
