"""What a run produced, and its record: the last step of a run (bench.pipeline.execute).

A run that raises after its place was chosen still ends here: its error becomes a
``failed`` record with the epochs that did finish. The files the run holds in memory (a
feature-cache entry it filled, a kept head's weights) are written here, before the record
that points at them. A completed run's checkpoint is cleared, and its W&B run closed with
the record attached. (With ``serve=true`` the launcher serves the record once the worker
has ended: bench.launch.serve_all.)
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import tensorflow as tf

from bench.core import environment, record
from bench.core.errors import Interrupted, OutOfMemory
from bench.core.record import (
    ErrorInfo,
    FeatureCacheInfo,
    Metrics,
    Record,
    SkippedFiles,
    Status,
)
from bench.core.spec import RunSpec
from bench.pipeline import keep, measure, stop, store, strategy, train
from bench.pipeline.data import Data
from bench.pipeline.features import FeatureData
from bench.pipeline.place import Place

log = logging.getLogger("bench")


@dataclass
class Outcome:
    """What the run produced so far; the record is written from it, completed or not."""

    result: train.TrainResult = field(default_factory=train.TrainResult)
    data: Data | None = None
    features: FeatureData | None = None  # the cached features it trains on
    feature_cache: FeatureCacheInfo = field(default_factory=FeatureCacheInfo)
    kept: keep.Kept = field(default_factory=keep.Kept)
    resumes: int = 0
    error: BaseException | None = None


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
    """Writes the run's files and its record (a failed attempt never replaces a completed
    one), clears the checkpoint of a completed run, and closes its W&B run."""
    tracker, checkpoint = trackers
    write_files(outcome)  # a stop while it writes the head is the run's error
    loaded, error = outcome.data, outcome.error
    if outcome.kept.info.path:  # a kept head gets its artifact when served
        outcome.kept.info.artifact = tracker.artifact_name("model")
    written = Record(
        run_id=spec.run_id,
        status=Status.failed if error else Status.completed,
        started_at=started_at,
        finished_at=record.now(),
        config=spec.config_dict(),
        env=environment.collect(
            {
                **where.facts.record(),
                **where.compute.record(),
                **_cached(loaded),
                "job_in_process": where.job_in_process,
            }  # fmt: skip
        ),
        metrics=metrics(outcome.result, where.facts),
        history=outcome.result.history,
        wandb=tracker.info(),
        error=ErrorInfo.from_exception(error) if error else None,
        job=spec.job_dict(),
        resumes=outcome.resumes,
        skipped_files=SkippedFiles.of(loaded.skipped_files if loaded else []),
        effective_batch_size=spec.batch_size,
        feature_cache=outcome.feature_cache,
        model=outcome.kept.info,
        splits=loaded.splits if loaded else {},
    )
    path = record.save(written, spec.cfg.results_dir)
    if written.completed:
        checkpoint.clear()
    tracker.finish(written, path)
    return written


def write_files(outcome: Outcome) -> None:
    """Writes what the run holds in memory, before the record that points at it: the
    feature-cache entry it filled and a kept head's weights (a SavedModel is written by
    :mod:`bench.pipeline.keep`). Nothing raised here stops the record from being written.
    An entry that is not stored is said in the record's ``feature_cache.reason``, and a
    later run fills it again. A head that is not written is not kept: a full disk leaves
    the run completed, as when saving a model fails; a stop makes the run ``Interrupted``,
    as a stop while keeping a whole model does, so a relaunch resumes it and keeps it."""
    filled = outcome.features.filled if outcome.features else None
    if filled is not None:
        try:
            store.write(filled.path, filled.arrays, filled.parts)
        except Exception as exc:  # noqa: BLE001  (a full disk, or a stop: the record comes first)
            log.error("the feature-cache entry was not stored:\n%s", traceback.format_exc())
            stopped = isinstance(exc, Interrupted)
            why = "the run was stopped" if stopped else f"{type(exc).__name__}: {exc}"
            outcome.feature_cache.reason = f"not stored: {why}"
    head = outcome.kept.head_weights
    if head is not None:
        try:
            store.write_arrays(Path(outcome.kept.info.head_weights), head)
        except Exception as exc:  # noqa: BLE001  (as above)
            log.error("the kept head was not written:\n%s", traceback.format_exc())
            outcome.kept = keep.Kept()
            if isinstance(exc, Interrupted):
                outcome.error = outcome.error or exc


def _cached(loaded: Data | None) -> dict:
    """Where the data step kept the decoded images (the record's ``env.input_cache``)."""
    return {"input_cache": loaded.input_cache} if loaded else {}


def metrics(result: train.TrainResult, facts: strategy.Facts | None) -> Metrics:
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
        peak_device_memory_bytes=measure.peak_device_memory(list(facts.devices) if facts else []),
        peak_host_rss_bytes=measure.peak_host_rss(),
        params_total=result.params_total or None,
        params_trainable=result.params_trainable if result.params_total else None,
        epochs_trained=len(result.history),
        phases=result.phases,
    )
