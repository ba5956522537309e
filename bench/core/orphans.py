"""No process of bench's outlives the one that started it."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal


def die_with_parent() -> None:
    """Asks Linux to send this process SIGTERM when its parent dies (a launcher killed with
    SIGKILL forwards nothing), so none is left running on its own."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: the parent still forwards the signals it receives
    if os.getppid() == 1:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
