"""One run in this process, step by step: place (strategy, compute, seeds), tracking, data,
model on cached features or images, training, keeping the model, the record. What the
config settles was decided once, in the run's plan (bench.core.plan), and where it writes
and logs in its site (bench.core.site): the steps read those decisions.

``python -m bench.worker`` calls :func:`execute` in a fresh process per job, or in one
shared worker for a multirun's runs on cached features; the launcher calls it in its own
process only with ``isolate=false``.
"""

from __future__ import annotations

from bench.core import record
from bench.core.record import Record
from bench.core.spec import RunSpec
from bench.pipeline import data, features, keep, outcome, place, stop, train
from bench.pipeline.checkpoint import RunCheckpoint
from bench.pipeline.tracker import Tracker


def execute(spec: RunSpec) -> Record:
    """Runs one job in this process and writes its record: place, data, model (on cached
    features or images), training, keeping the model, the record.

    Any exception after the place was chosen becomes a ``failed`` record (with the
    epochs that did finish).

    Raises:
        UserError: before anything is written, when the strategy cannot be had or the
            batch does not divide among its replicas.
    """
    started_at, where = record.now(), place.settle(spec)
    tracker, checkpoint, done = Tracker(spec), RunCheckpoint(spec.site), outcome.Outcome()
    try:
        done.resumes = checkpoint.start()
        tracker.start()
        done.data = data.load(spec, where.devices.kind == "TPU", checkpoint.scratch / "input")
        stop.check()  # between steps too: a stop can be lost inside a library (stop.py)
        spec.cfg.dataset.num_classes = done.data.num_classes
        built, done.features, done.feature_cache = features.build_model(spec, done.data, where)
        tracker.update_config({"dataset": spec.config_dict()["dataset"]})  # W&B has started
        trainer = train.Trainer(train.Training(built, done.data, spec, where.strategy,
            spec.plan.phases_at(where.strategy.num_replicas_in_sync), done.features, checkpoint,
            tracker.log_epoch, where.compute.jit_compile))  # fmt: skip
        done.result = trainer.result  # the finished epochs, if training raises
        trainer.run()
        done.kept = keep.keep_model(spec, built, where, done.features and done.features.backbone)
    except Exception as exc:  # noqa: BLE001  (a failed run is recorded, not lost)
        done.error = outcome.failure(spec, exc)
    return outcome.finish(spec, started_at, where, done, (tracker, checkpoint))
