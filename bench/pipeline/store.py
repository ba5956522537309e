"""Arrays on disk: the feature cache's entries (one ``.npz`` per key and a ``.json``
describing it) and a kept head's weights (one ``.npz``), each written whole or not at all.

Kept apart from :mod:`bench.pipeline.features` because reading and writing an entry needs
numpy only: a process that just stores or inspects entries does not load TensorFlow.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from bench.core import atomic


def read(path: Path) -> dict[str, np.ndarray] | None:
    """The stored arrays, or None when the entry is missing or damaged."""
    try:
        with np.load(path) as stored:
            return {name: stored[name] for name in stored.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return None


def write(path: Path, arrays: dict[str, np.ndarray], parts: dict) -> None:
    """Stores an entry atomically; a concurrent writer of the same key is harmless."""
    write_arrays(path, arrays)
    shapes = {name: list(a.shape) for name, a in arrays.items()}
    description = json.dumps({**parts, "shapes": shapes}, indent=2)
    atomic.write(path.with_suffix(".json"), lambda handle: handle.write(description))


def write_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Stores ``arrays`` as one ``.npz`` atomically, making its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write(path, lambda handle: np.savez(handle, **arrays), binary=True)
