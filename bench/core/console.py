"""The one place user-facing progress lines are printed from."""

from __future__ import annotations

import sys


def say(message: str, *, error: bool = False) -> None:
    """Prints ``[bench] message``, flushed so it lands before a worker's own output.

    Args:
        message: The line.
        error: Print to stderr instead of stdout.
    """
    print(f"[bench] {message}", file=sys.stderr if error else sys.stdout, flush=True)
