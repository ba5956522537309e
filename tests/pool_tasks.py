"""Work for the tests' process pools, in a module of its own: a spawned child imports only
what its task needs (a test module would bring pytest, pandas and TensorFlow into every
child)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.core import record
from bench.core.record import Record, Status
from bench.pipeline import store


def write_record(args: tuple[Path, int]) -> None:
    """Saves one completed record of its own point."""
    directory, index = args
    done = Record(
        run_id=f"point{index}", status=Status.completed, started_at=record.now(),
        finished_at=record.now(), config={"seed": 1}, job={"attempt": f"a{index}"},
    )  # fmt: skip
    record.save(done, directory)


def fill_entry(args: tuple[str, float]) -> None:
    """Writes one feature-cache entry five times, every array filled with ``value``."""
    path, value = args
    arrays = {"train_x": np.full((2000, 512), value, np.float32), "train_y": np.arange(2000)}
    for _ in range(5):
        store.write(Path(path), arrays, {"writer": value})
