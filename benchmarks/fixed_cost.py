"""Where a short run's time goes besides its epochs: the fixed cost of a worker.

``python benchmarks/fixed_cost.py backbone=b0 experiment=demo`` runs one run the way a
worker does (a fresh process: importing TensorFlow, then bench.pipeline.execute), with a
timer around each step, and prints, as JSON, the worker's wall time, its epochs (the
median and the first), the fixed cost (wall time minus the epochs at the median: the
issue's measure), and how long each step took: importing TensorFlow, W&B, loading the
data, building the model, training (fit, every phase), keeping the model (saving it and
counting its multiply-adds) and writing the record; and how often each phase's train step
was traced. Any arguments are run overrides; W&B
stays in whatever mode they give (the demo's is auto: offline without credentials).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

STARTED = time.perf_counter()


def main(argv: list[str]) -> int:
    import bench  # noqa: F401  (sets TF_USE_LEGACY_KERAS first)

    clock = time.perf_counter()
    import tensorflow  # noqa: F401

    steps = {"python and bench imports": clock - STARTED,
             "import tensorflow": time.perf_counter() - clock}  # fmt: skip
    from bench.core import schema
    from bench.core.spec import build
    from bench.pipeline import data, execute, keep, model, tracker, train

    timed = [(tracker.Tracker, "start", "W&B start"), (tracker.Tracker, "finish", "W&B finish"),
             (data, "load", "load the data"), (model, "build", "build the model"),
             (train.Trainer, "run", "train (fit, every phase, and the test split)"),
             (train, "prepare_phase", "  of which: compile, create the variables"),
             (train, "evaluate_test", "  of which: the test split"),
             (keep, "save_on_chief", "keep the model (save, multiply-adds)"),
             (keep, "multiply_adds", "  of which: count multiply-adds"),
             (tensorflow.saved_model, "save", "  of which: tf.saved_model.save"),
             (execute.record, "save", "write the record")]  # fmt: skip
    for owner, name, label in timed:
        setattr(owner, name, _timer(getattr(owner, name), label, steps))
    traces = _count_traces(train.Trainer)
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


def _count_traces(trainer) -> dict:
    """Afterwards holds how often each fitted model's train step was traced."""
    traces, prepare = {}, trainer.__init__.__globals__["prepare_phase"]

    def counted(training, fitted, phase, steps):
        prepare(training, fitted, phase, steps)
        traces[phase.name] = fitted  # read after training, below

    trainer.__init__.__globals__["prepare_phase"] = counted
    run = trainer.run

    def read(self):
        try:
            return run(self)
        finally:
            for name, fitted in list(traces.items()):
                function = fitted.train_function
                traces[name] = function.experimental_get_tracing_count() if function else 0

    trainer.run = read
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
