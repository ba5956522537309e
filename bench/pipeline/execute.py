"""One run in this process, step by step: place (strategy and compute), tracking, seed,
data, model on cached features or images, training, keeping the model, the record. What the
config settles was decided once, in the run's plan (bench.core.plan).

``python -m bench.worker`` calls :func:`execute` in a fresh process per job; the launcher
calls it in its own process only with ``isolate=false``.
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from dataclasses import dataclass, field

import tensorflow as tf
import tf_keras as keras

from bench.core import cluster, environment, record
from bench.core.errors import Interrupted, OutOfMemory
from bench.core.record import (
    ErrorInfo,
    FeatureCacheInfo,
    Metrics,
    ModelInfo,
    Record,
    SkippedFiles,
    Status,
)
from bench.core.spec import RunSpec
from bench.pipeline import (
    compute,
    data,
    exports,
    features,
    keep,
    measure,
    model,
    stop,
    strategy,
    train,
)
from bench.pipeline.checkpoint import RunCheckpoint
from bench.pipeline.data import Data
from bench.pipeline.tracker import Tracker

log = logging.getLogger("bench")


@dataclass(frozen=True)
class Place:
    """Where the run computes: its strategy, the strategy's facts, and the plan's compute
    request resolved for those devices."""

    strategy: tf.distribute.Strategy
    facts: dict
    devices: compute.Devices
    compute: compute.Compute


@dataclass
class Outcome:
    """What the run produced so far; the record is written from it, completed or not."""

    result: train.TrainResult = field(default_factory=train.TrainResult)
    data: Data | None = None
    feature_cache: FeatureCacheInfo = field(default_factory=FeatureCacheInfo)
    kept: ModelInfo = field(default_factory=ModelInfo)
    resumes: int = 0
    error: BaseException | None = None


def execute(spec: RunSpec) -> Record:
    """Runs one job in this process and writes its record: place, data, model (on cached
    features or images), training, keeping the model, the record.

    Any exception after the strategy was chosen becomes a ``failed`` record (with the
    epochs that did finish).

    Raises:
        UserError: before anything is written, when the strategy cannot be had or the
            batch does not divide among its replicas.
    """
    started_at = record.now()
    tracker, checkpoint = Tracker(spec), RunCheckpoint(spec.cfg.results_dir, spec.run_id)
    where, outcome = place(spec), Outcome()
    try:
        outcome.resumes = checkpoint.start()
        tracker.start()
        seeded(spec.cfg.seed, where.compute.deterministic)
        measure.reset_device_memory(where.facts["devices"])
        where = load_data(spec, where, outcome, checkpoint, tracker)
        built, on_features = build_model(spec, where, outcome)
        fit(outcome, train.Training(built, outcome.data, spec, where.strategy,
            spec.plan.phases_at(where.strategy.num_replicas_in_sync), on_features, checkpoint,
            tracker.log_epoch, where.compute.jit_compile))  # fmt: skip
        outcome.kept = keep_model(spec, built, where, tracker)
    except Exception as exc:  # noqa: BLE001  (a failed run is recorded, not lost)
        outcome.error = failure(spec, exc)
    return finish(spec, started_at, where, outcome, (tracker, checkpoint))


def place(spec: RunSpec) -> Place:
    """The strategy and the compute it affords. A strategy the machine lacks, or a batch
    the replicas cannot share, is the user's to fix (UserError, exit 2), before anything
    is written."""
    strat = strategy.select(spec.cfg.strategy)
    strategy.check_batch(spec.batch_size, strat)
    facts = strategy.describe(strat)
    devices = compute.detect(facts)
    resolved = compute.resolve(spec.plan.compute, devices, cluster.role().workers)
    return Place(strat, facts, devices, resolved)


def load_data(spec: RunSpec, where: Place, outcome: Outcome, checkpoint, tracker) -> Place:
    """The run's splits as pipelines; the class count they reveal goes into the config."""
    on_tpu = where.devices.kind == "TPU"
    outcome.data = data.load(spec, drop_remainder=on_tpu, cache_dir=checkpoint.scratch / "input")
    stop.check()  # between steps too: a stop can be lost inside a library (stop.py)
    spec.cfg.dataset.num_classes = outcome.data.num_classes
    tracker.update_config({"dataset": spec.config_dict()["dataset"]})
    resolved = dataclasses.replace(where.compute, input_cache=outcome.data.input_cache)
    return dataclasses.replace(where, compute=resolved)


def build_model(spec: RunSpec, where: Place, outcome: Outcome):
    """The model, and the cached features it trains on where the cache applies: only the
    head when a hit makes the backbone unnecessary (the plan says when)."""
    policy, loaded = where.compute.precision, outcome.data
    entry = features.lookup(spec, loaded, policy)
    workers = where.compute.workers
    head_input = entry.head_input() if entry and spec.plan.head_only(workers) else None
    with where.strategy.scope():
        if head_input:  # every phase trains on cached features: no backbone to build
            built = model.build_head(spec, loaded.num_classes, *head_input, policy)
        else:
            built = model.build(spec, loaded.num_classes, policy, where.devices.kind == "TPU")
    stop.check()
    on_features, outcome.feature_cache = features.prepare(spec, loaded, entry, built)
    return built, on_features


def fit(outcome: Outcome, training: train.Training) -> None:
    """Trains every phase; ``outcome.result`` holds the finished epochs if it raises."""
    trainer = train.Trainer(training)
    outcome.result = trainer.result
    trainer.run()


def failure(spec: RunSpec, exc: Exception) -> BaseException:
    """What the record says went wrong: out of memory named with the fix, a stop as a
    stop whatever surfaced, anything else as raised (and logged)."""
    if isinstance(exc, tf.errors.ResourceExhaustedError):
        log.error("run %s ran out of memory:\n%s", spec.run_id, traceback.format_exc())
        found = OutOfMemory(
            f"out of memory at batch_size={spec.batch_size}, image_size="
            f"{spec.cfg.image_size} ({exc.message.splitlines()[0][:200]}); lower batch_size "
            "or image_size"
        )
    else:
        log.error("run %s failed:\n%s", spec.run_id, traceback.format_exc())
        found = exc
    return stop.interrupted() if stop.requested() else found


def finish(spec: RunSpec, started_at: str, where: Place, outcome: Outcome, trackers) -> Record:
    """Writes the record (a failed attempt never replaces a completed one), clears the
    checkpoint of a completed run, serves it when asked, and closes its W&B run."""
    tracker, checkpoint = trackers
    loaded, error = outcome.data, outcome.error
    written = Record(
        run_id=spec.run_id,
        status=Status.failed if error else Status.completed,
        started_at=started_at,
        finished_at=record.now(),
        config=spec.config_dict(),
        env=environment.collect({**where.facts, **where.compute.record()}),
        metrics=metrics(outcome.result, where.facts),
        history=outcome.result.history,
        wandb=tracker.info(),
        error=ErrorInfo.from_exception(error) if error else None,
        job=spec.job_dict(),
        resumes=outcome.resumes,
        skipped_files=SkippedFiles.of(loaded.skipped_files if loaded else []),
        effective_batch_size=spec.batch_size,
        feature_cache=outcome.feature_cache,
        model=outcome.kept,
        splits=loaded.splits if loaded else {},
    )
    path = record.save(written, spec.cfg.results_dir)
    if written.completed:
        checkpoint.clear()
        written = measure_exports(written, path, spec)
    tracker.finish(written, path)
    return written


def keep_model(spec: RunSpec, built, where: Place, tracker) -> ModelInfo:
    """The kept model (``keep_model``); a model that cannot be saved leaves the trained run
    completed, without one (the record's ``model`` stays empty, the log says why)."""
    if not spec.cfg.keep_model:
        return ModelInfo()
    classes, policy = spec.cfg.dataset.num_classes, where.compute.precision
    try:
        kept = keep.save_on_chief(spec, built, classes, policy, where.strategy)
    except (tf.errors.ResourceExhaustedError, Interrupted):  # the run's own outcomes
        raise
    except Exception:  # noqa: BLE001  (a save that fails is the model's loss, not the run's)
        log.error("the model of %s was not kept:\n%s", spec.run_id, traceback.format_exc())
        return ModelInfo()
    kept.artifact = tracker.artifact_name("model") if kept.path else None  # a head: when served
    return kept


def measure_exports(written: Record, path, spec: RunSpec) -> Record:
    """With ``serve=true``, the completed record with its kept model's serving figures. A
    serve that fails or is stopped leaves the run completed, with what it measured."""
    if not (spec.cfg.serve and (written.model.path or written.model.head_weights)):
        return written
    try:
        return exports.measure(path, spec.cfg.serving)
    except Exception:  # noqa: BLE001  (the run is done: its serving can be measured later)
        log.error("serving %s failed (python -m bench.serve measures it again):\n%s",
                  spec.run_id, traceback.format_exc())  # fmt: skip
        return record.read(path)


def seeded(seed: int, deterministic: bool) -> None:
    """Seeds Python, NumPy and TensorFlow; with ``deterministic``, TensorFlow's ops too.

    Each epoch's order and augmentation are drawn from the seed statelessly
    (bench.pipeline.data), the initial weights right after seeding (model.seeded_head).
    Dropout and stochastic depth draw from ``tf.random.Generator`` objects instead of
    Keras' legacy stateful ops; the checkpoint saves their state with each epoch
    (bench.pipeline.checkpoint: Keras' backup leaves it out), so a resumed run draws the
    masks the uncut run would have drawn.
    """
    keras.utils.set_random_seed(seed)
    keras.backend.experimental.enable_tf_random_generator()
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def metrics(result: train.TrainResult, facts: dict | None) -> Metrics:
    """The record's metrics from what training measured."""
    val = [row.val_accuracy for row in result.history if row.val_accuracy is not None]
    last = list(result.phases.values())[-1] if result.phases else None
    return Metrics(
        best_val_accuracy=max(val) if val else None,
        final_val_accuracy=val[-1] if val else None,
        test_accuracy=result.test_accuracy,
        train_time_s=result.train_time_s if result.history else None,
        # The last phase's figures: the one that trains the final model (Metrics' docstring).
        epoch_time_s=last.epoch_time_s if last else None,
        train_images_per_s=last.train_images_per_s if last else None,
        peak_device_memory_bytes=measure.peak_device_memory(facts["devices"] if facts else []),
        peak_host_rss_bytes=measure.peak_host_rss(),
        params_total=result.params_total or None,
        params_trainable=result.params_trainable if result.params_total else None,
        epochs_trained=len(result.history),
        phases=result.phases,
    )
