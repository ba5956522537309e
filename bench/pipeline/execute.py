"""One run in this process, step by step: strategy, tracking, seed, data, model, features,
train, record.

``python -m bench.worker`` calls :func:`execute` in a fresh process per job; the launcher
calls it in its own process only with ``isolate=false``.
"""

from __future__ import annotations

import logging
import traceback

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
    features,
    keep,
    measure,
    model,
    serve,
    stop,
    strategy,
    train,
)
from bench.pipeline.checkpoint import RunCheckpoint
from bench.pipeline.tracker import Tracker

log = logging.getLogger("bench")


def execute(spec: RunSpec) -> Record:
    """Runs one job in this process and writes its record.

    Any exception after the strategy was chosen becomes a ``failed`` record (with the
    epochs that did finish).

    Raises:
        UserError: before anything is written, when the strategy cannot be had or the
            batch does not divide among its replicas.

    Returns:
        The record as written to ``<results_dir>/<run_id>.json``.
    """
    started_at = record.now()
    tracker = Tracker(spec)
    checkpoint = RunCheckpoint(spec.cfg.results_dir, spec.run_id)
    result, error, resumes, dataset = train.TrainResult(), None, 0, None
    cache, kept = FeatureCacheInfo(), ModelInfo()
    # Before anything is written: a strategy the machine lacks, or a batch the replicas
    # cannot share, is the user's to fix (UserError, exit 2).
    strat = strategy.select(spec.cfg.strategy)
    strategy.check_batch(spec.batch_size, strat)
    facts = strategy.describe(strat)
    devices = compute.detect(facts)
    settings = {**compute.settings(spec.cfg, devices), "workers": cluster.role().workers}
    settings["not_deterministic"] = compute.not_deterministic(
        settings["deterministic"], devices, settings["workers"]
    )
    policy, jit = settings["precision"], settings["jit_compile"]
    try:
        resumes = checkpoint.start()
        tracker.start()
        seeded(spec.cfg.seed, settings["deterministic"])
        measure.reset_device_memory(facts["devices"])
        on_tpu = devices.kind == "TPU"
        dataset = data.load(spec, drop_remainder=on_tpu, cache_dir=checkpoint.scratch / "input")
        stop.check()  # between steps too: a stop can be lost inside a library (stop.py)
        settings["input_cache"] = dataset.input_cache
        spec.cfg.dataset.num_classes = dataset.num_classes
        tracker.update_config({"dataset": spec.config_dict()["dataset"]})
        entry = features.lookup(spec, dataset, policy)
        stored = entry.head_input() if entry and head_only(spec) else None
        with strat.scope():
            if stored:  # every phase trains on cached features: no backbone to build
                built = model.build_head(spec, dataset.num_classes, *stored, policy)
            else:
                built = model.build(spec, dataset.num_classes, policy, on_tpu)
        stop.check()
        cached, cache = features.prepare(spec, dataset, entry, built)
        train.run(built, dataset, spec, strat, tracker.log_epoch, result, checkpoint, cached, jit)
        if spec.cfg.keep_model:
            kept = keeping(spec, built, dataset.num_classes, policy, strat)
            kept.artifact = tracker.artifact_name("model") if kept.path else None
    except tf.errors.ResourceExhaustedError as exc:
        error = OutOfMemory(
            f"out of memory at batch_size={spec.batch_size}, image_size="
            f"{spec.cfg.image_size} ({exc.message.splitlines()[0][:200]}); lower batch_size or "
            "image_size"
        )
        log.error("run %s ran out of memory:\n%s", spec.run_id, traceback.format_exc())
    except Exception as exc:  # noqa: BLE001  (a failed run is recorded, not lost)
        error = exc
        log.error("run %s failed:\n%s", spec.run_id, traceback.format_exc())
    if error is not None and stop.requested():  # whatever surfaced, the run was stopped
        error = stop.interrupted()
    written = Record(
        run_id=spec.run_id,
        status=Status.failed if error else Status.completed,
        started_at=started_at,
        finished_at=record.now(),
        config=spec.config_dict(),
        env=environment.collect({**facts, **settings}),
        metrics=metrics(result, facts),
        history=result.history,
        wandb=tracker.info(),
        error=ErrorInfo.from_exception(error) if error else None,
        job=spec.job_dict(),
        resumes=resumes,
        skipped_files=SkippedFiles.of(dataset.skipped_files if dataset else []),
        effective_batch_size=spec.batch_size,
        feature_cache=cache,
        model=kept,
        splits=dataset.splits if dataset else {},
    )
    path = record.save(written, spec.cfg.results_dir)
    if written.completed:
        checkpoint.clear()
        written = served(written, path, spec)
    tracker.finish(written, path)
    return written


def keeping(spec: RunSpec, built, num_classes: int, policy: str, strat) -> ModelInfo:
    """The kept model; a model that cannot be saved leaves the trained run completed,
    without one (the record's ``model`` stays empty, the log says why)."""
    try:
        return keep.kept(spec, built, num_classes, policy, strat)
    except (tf.errors.ResourceExhaustedError, Interrupted):  # the run's own outcomes
        raise
    except Exception:  # noqa: BLE001  (a save that fails is the model's loss, not the run's)
        log.error("the model of %s was not kept:\n%s", spec.run_id, traceback.format_exc())
        return ModelInfo()


def served(written: Record, path, spec: RunSpec) -> Record:
    """With ``serve=true``, the completed record with its kept model's serving figures. A
    serve that fails or is stopped leaves the run completed, with what it measured."""
    if not (spec.cfg.serve and written.model.path):
        return written
    try:
        return serve.serve(path, spec.cfg.serving)
    except Exception:  # noqa: BLE001  (the run is done: its serving can be measured later)
        log.error("serving %s failed (python -m bench.serve measures it again):\n%s",
                  spec.run_id, traceback.format_exc())  # fmt: skip
        return record.read(path)


def seeded(seed: int, deterministic: bool) -> None:
    """Seeds Python, NumPy and TensorFlow; with ``deterministic``, TensorFlow's ops too.

    Each epoch's order and augmentation are drawn from the seed statelessly
    (bench.pipeline.data), the initial weights right after seeding (model.seeded_head).
    Dropout and stochastic depth draw from ``tf.random.Generator`` objects instead of
    Keras' legacy stateful ops: their state is a variable of the model, so Keras' backup
    saves it and a resumed run draws the masks the uncut run would have drawn.
    """
    keras.utils.set_random_seed(seed)
    keras.backend.experimental.enable_tf_random_generator()
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def head_only(spec: RunSpec) -> bool:
    """Whether a feature-cache hit lets the run build only its head: every phase keeps the
    backbone frozen, and the run is one process (the workers of a multi-worker run must
    build the same variables, and each finds the cache entry or not on its own)."""
    return not train.backbone_trains(spec) and cluster.role().workers == 1


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
