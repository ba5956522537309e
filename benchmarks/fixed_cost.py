"""Where a short run's time goes besides its epochs: the fixed cost of a worker.

``python benchmarks/fixed_cost.py backbone=b0 experiment=demo`` runs one run the way a
worker does (a fresh process: importing TensorFlow, then bench.pipeline.execute), with a
timer around each step, and prints, as JSON, the worker's wall time, its epochs (the
median and the first), the fixed cost (wall time minus the epochs at the median: the
issue's measure), how long each step took (importing TensorFlow, W&B, loading the data,
building the model, training, keeping the model, writing the record) and how often each
phase's train step was traced. Any arguments are run overrides; W&B stays in whatever
mode they give (the demo's is auto: offline without credentials).

To measure an older commit the same way, put a worktree of it first on ``PYTHONPATH``,
with its ``conf/`` linked into its package (``ln -s ../conf bench/conf``: the editable
install maps ``bench.conf`` to this checkout's ``conf/`` otherwise); steps that commit
lacks are not timed.
"""

from __future__ import annotations

import importlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

STARTED = time.perf_counter()


#: (module, attribute, label): the steps timed, where the code has them (older commits of
#: bench lack some: the script also measures them, with PYTHONPATH on a worktree).
TIMED = [
    ("bench.pipeline.tracker", "Tracker.start", "W&B start (in the background since 7b87162)"),
    ("bench.pipeline.tracker", "Tracker._wait", "  waiting for W&B to have started"),
    ("bench.pipeline.tracker", "Tracker.finish", "W&B finish"),
    ("bench.pipeline.data", "load", "load the data"),
    ("bench.pipeline.model", "build", "build the model"),
    ("bench.pipeline.train", "Trainer.run", "train (fit, every phase, and the test split)"),
    ("bench.pipeline.train", "prepare_phase", "  of which: compile, create the variables"),
    ("bench.pipeline.train", "evaluate_test", "  of which: the test split"),
    ("bench.pipeline.keep", "save_on_chief", "keep the model (save, multiply-adds)"),
    ("bench.pipeline.keep", "multiply_adds", "  of which: count multiply-adds"),
    ("tensorflow.saved_model", "save", "  of which: tf.saved_model.save"),
    ("bench.pipeline.outcome", "write_files", "write the cache entry and a kept head (f69cdd5)"),
    ("bench.core.record", "save", "write the record"),
]


def main(argv: list[str]) -> int:
    import bench  # noqa: F401  (sets TF_USE_LEGACY_KERAS first)

    clock = time.perf_counter()
    import tensorflow  # noqa: F401

    steps = {"python and bench imports": clock - STARTED,
             "import tensorflow": time.perf_counter() - clock}  # fmt: skip
    from bench.core import schema
    from bench.core.spec import build
    from bench.pipeline import execute

    for module, name, label in TIMED:
        owner = _found(module, name)
        if owner is not None:  # a step that this commit of bench has
            attribute = name.rsplit(".", 1)[-1]
            setattr(owner, attribute, _timer(getattr(owner, attribute), label, steps))
    traces = _count_traces()
    folder = Path(tempfile.mkdtemp(prefix="bench-fixed-"))
    spec = build(schema.compose([*argv, f"results_dir={folder / 'runs'}"]))
    written = execute.execute(spec)
    wall = time.perf_counter() - STARTED
    epochs = [row.epoch_time_s for row in written.history if row.epoch_time_s]
    median = statistics.median(epochs)
    print(json.dumps({
        "overrides": argv, "status": written.status.value, "worker_wall_s": round(wall, 1),
        "epochs": len(epochs), "median_epoch_s": round(median, 2),
        "first_epoch_s": round(epochs[0], 2),
        "fixed_cost_s": round(wall - median * len(epochs), 1),
        "final_val_accuracy": written.metrics.final_val_accuracy,
        "test_accuracy": written.metrics.test_accuracy,
        "train_step_traces": traces,
        "steps_s": {k: round(v, 2) for k, v in steps.items()},
    }, indent=2))  # fmt: skip
    return 0


def _found(module: str, name: str):
    """The object that holds ``name`` (``Class.method`` or ``function``), or None."""
    try:
        owner = importlib.import_module(module)
    except ImportError:
        return None
    *classes, attribute = name.split(".")
    for part in classes:
        owner = getattr(owner, part, None)
    return owner if owner is not None and hasattr(owner, attribute) else None


def _count_traces() -> dict:
    """Afterwards holds how often each phase's train step was traced, read as its ``fit``
    ends (a two-phase run compiles the same model twice); empty for a commit without
    ``Trainer._fit``."""
    traces: dict[str, int] = {}
    trainer = _found("bench.pipeline.train", "Trainer._fit")
    if trainer is None:
        return traces
    fit = trainer._fit

    def counted(self, fitted, source, phase, *rest):
        try:
            return fit(self, fitted, source, phase, *rest)
        finally:
            function = fitted.train_function
            traces[phase.name] = function.experimental_get_tracing_count() if function else 0

    trainer._fit = counted
    return traces


def _timer(function, label: str, steps: dict):
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            steps[label] = steps.get(label, 0.0) + time.perf_counter() - start

    return timed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
