"""Entry point: ``python -m bench.run [-m] key=value ...``.

Hydra composes the config; each job is validated into a RunSpec here, then executed in a
fresh worker process (``isolate=true``, the default) so that its memory, time and Keras
state belong to it alone. ``execute`` is the run itself, step by step.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import bench  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)
from bench import config, environment, isolate, progress, records
from bench.spec import JobInfo, RunSpec, build

config.register()
log = logging.getLogger("bench")


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict:
    """One Hydra job: validate, announce, execute (isolated), report."""
    spec = build(cfg, job_info())
    progress.announce(spec)
    record = isolate.run(spec) if spec.cfg.isolate else execute(spec)
    return progress.outcome(record, spec)


def job_info() -> JobInfo:
    """The job's place in its launch, read from Hydra."""
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    return JobInfo(
        num=hc.job.num if multirun else 0,
        total=progress.multirun_total() if multirun else 1,
        output_dir=hc.runtime.output_dir,
        group=Path(hc.sweep.dir).name if multirun else None,
        experiment=hc.runtime.choices.get("experiment"),
        overrides=list(hc.overrides.task),
        attempt=uuid.uuid4().hex,
    )


def execute(spec: RunSpec) -> dict:
    """Runs one job in this process and writes its record.

    Steps: tracking, seed, strategy, data, model, train, record. Any exception after the
    spec was built becomes a ``failed`` record (with the epochs that did finish).

    Returns:
        The record as written to ``<results_dir>/<run_id>.json``.
    """
    # TensorFlow loads here, not at import: the Hydra process that launches workers stays light.
    import tf_keras as keras

    from bench import data, measure, model, strategy, track, train

    started_at = records.now()
    tracker = track.Tracker(spec)
    result, facts, dataset, error = train.TrainResult(), None, None, None
    try:
        keras.utils.set_random_seed(spec.cfg.seed)
        strat = strategy.select(spec.cfg.strategy)
        facts = strategy.describe(strat)
        measure.reset_device_memory(facts["devices"])
        on_tpu = "TPU" in type(strat).__name__
        dataset = data.load(spec, drop_remainder=on_tpu)
        spec.cfg.dataset.num_classes = dataset.num_classes
        tracker.update_config({"dataset": spec.config_dict()["dataset"]})
        with strat.scope():
            built = model.build(spec, dataset.num_classes, on_tpu)
        train.run(built, dataset, spec, strat, tracker.log_epoch, result)
    except Exception as exc:  # noqa: BLE001  (a failed run is recorded, not lost)
        error = exc
        log.error("run %s failed:\n%s", spec.run_id, traceback.format_exc())
    record = records.build(
        run_id=spec.run_id,
        status="failed" if error else "completed",
        started_at=started_at,
        config=spec.config_dict(),
        env=environment.collect(facts),
        metrics=metrics(result, dataset, facts),
        history=result.history,
        wandb=tracker.info(),
        error=error,
        job=spec.job_dict(),
    )
    path = records.write(record, spec.cfg.results_dir)
    tracker.finish(record, path)
    return record


def metrics(result, dataset, facts: dict | None) -> dict:
    """The record's metrics from what training measured."""
    from bench import measure

    val = [row["val_accuracy"] for row in result.history if row["val_accuracy"] is not None]
    return {
        "best_val_accuracy": max(val) if val else None,
        "final_val_accuracy": val[-1] if val else None,
        "test_accuracy": result.test_accuracy,
        "train_time_s": result.train_time_s if result.history else None,
        "epoch_time_s": measure.median_epoch_time(result.history),
        "train_images_per_s": measure.images_per_second(
            dataset.train_examples if dataset else None, result.train_seconds
        ),
        "peak_device_memory_bytes": measure.peak_device_memory(facts["devices"] if facts else []),
        "peak_host_rss_bytes": measure.peak_host_rss(),
        "params_total": result.params_total or None,
        "params_trainable": result.params_trainable if result.params_total else None,
    }


if __name__ == "__main__":
    main()
