"""Atomic file writes: a reader sees the old file or the new one, never a partial one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def write(target: Path, fill: Callable[[IO[Any]], None], binary: bool = False) -> Path:
    """Writes ``target`` through a temporary file in its folder, renamed over it.

    Two writers of one target both succeed; the last rename wins whole.

    Args:
        target: The file to write.
        fill: Writes the content to the open temporary file.
        binary: Open the temporary file in binary mode.
    """
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as handle:
            fill(handle)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
