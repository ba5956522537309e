"""The run's W&B run: initialised with the resolved config, fed each epoch, closed with the record.

Its id is the record's ``run_id``, so a re-launched run resumes its W&B run instead of
creating a twin; under a sweep agent the agent's run is used instead. The tracker prints
nothing: what a user should read goes through ``bench.core.console``.
"""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import wandb

from bench.core.console import say
from bench.core.record import HistoryRow, Record, WandbInfo
from bench.core.spec import RunSpec
from bench.core.wandb_mode import in_sweep


def run_name(spec: RunSpec) -> str:
    """A readable name from the axes, e.g. ``b0-cats_vs_dogs-frozen-adam-bs32``."""
    cfg = spec.cfg
    return (
        f"{cfg.backbone.name}-{cfg.dataset.name}-{cfg.freeze.name}-"
        f"{cfg.optimizer.name.value}-bs{cfg.batch_size}"
    )


def tags(spec: RunSpec) -> list[str]:
    """The configured tags plus the experiment preset's name."""
    found = list(spec.cfg.wandb.tags)
    if spec.job.experiment and spec.job.experiment not in found:
        found.append(spec.job.experiment)
    return found


class Tracker:
    """A W&B run (or none, when disabled) fed with epochs, then the record.

    Nothing happens until :meth:`start`, which the run calls inside its guarded part; W&B
    then starts in the background, and the run waits for it, still inside that part, before
    it trains. So a W&B failure becomes part of the run's record instead of a lost run.
    """

    def __init__(self, spec: RunSpec):
        self.spec = spec
        self.mode = spec.site.wandb_mode  # may go offline if online cannot start
        self.run = None
        self._starting: Future | None = None

    def start(self) -> None:
        """Starts the W&B run in the background, while the run loads its data and builds its
        model (W&B's start took about 0.8 s offline here, more online); the next call
        (:meth:`update_config`) waits for it. In ``auto`` mode a failed online start goes
        on offline.
        """
        if self.mode == "disabled":
            return
        config = self._config()  # read now: the run fills in values while W&B starts
        starting = ThreadPoolExecutor(1, thread_name_prefix="wandb-start")
        self._starting = starting.submit(self._start, config)
        starting.shutdown(wait=False)  # the thread ends with its one task

    def _start(self, config: dict):
        try:
            run = self._init(config)
        except Exception as error:  # noqa: BLE001  (wandb raises several types here)
            if self.spec.cfg.wandb.mode.value != "auto" or self.mode == "offline":
                raise
            say(f"W&B could not start online ({type(error).__name__}: {error}); going on offline")
            wandb.teardown()  # the service still holds the failed run's id
            self.mode = "offline"
            run = self._init(config)
        # The epoch is every metric's x-axis, so a resumed run can log its epochs again.
        run.define_metric("epoch")
        # W&B's summary keeps each metric's last value: val_accuracy is the last epoch's, that
        # of the weights that are tested and kept. (A maximum over epochs, summary="max",
        # would be chosen on the data it reports, and a sweep would select on it.)
        run.define_metric("*", step_metric="epoch")
        return run

    def _wait(self, quiet: bool = False) -> None:
        """Waits for :meth:`start`. A stop that lands while waiting (bench.pipeline.stop
        raises it here) leaves the start to be waited for again, by :meth:`finish`, which
        then closes the W&B run with the record.

        Raises:
            Exception: whatever ``wandb.init`` raised, when the mode was asked for
                explicitly (once; with ``quiet``, said instead: the run failed first).
        """
        starting = self._starting
        if starting is None:
            return
        wait([starting])
        self._starting = None
        error = starting.exception()
        if error is None:
            self.run = starting.result()
        elif not quiet:
            raise error
        else:
            say(f"W&B did not start either ({type(error).__name__}: {error})")

    def _config(self) -> dict:
        spec = self.spec
        config = {**spec.config_dict(), "run_id": spec.run_id}
        if in_sweep():
            # An agent's parameters replace nested keys with flat ones (backbone: b1); the
            # whole config under its own key lets readers rebuild the multirun layout.
            config["bench_config"] = spec.config_dict()
        return config

    def _init(self, config: dict):
        spec, settings, sweep = self.spec, self.spec.cfg.wandb, in_sweep()
        return wandb.init(
            project=settings.project,
            entity=settings.entity,
            mode=self.mode,
            id=None if sweep else spec.run_id,
            resume=None if sweep else "allow",
            reinit="finish_previous",
            name=run_name(spec),
            group=None if sweep else settings.group or spec.job.group,
            tags=tags(spec),
            job_type="train",
            config=config,
        )

    def update_config(self, values: dict) -> None:
        """Adds values resolved during the run (e.g. the dataset's class count), once W&B
        has started (raising what its start raised)."""
        self._wait()
        if self.run is not None:
            self.run.config.update(values, allow_val_change=True)

    def log_epoch(self, row: HistoryRow) -> None:
        """Logs one history row."""
        self._wait()
        if self.run is not None:
            self.run.log(dataclasses.asdict(row))

    def artifact_name(self, kind: str) -> str | None:
        """The name this run's ``kind`` artifact gets (None when W&B is off)."""
        return f"{kind}-{self.spec.run_id}" if self.mode != "disabled" else None

    def info(self) -> WandbInfo:
        """The record's ``wandb`` block."""
        self._wait(quiet=True)
        if self.run is None:
            return WandbInfo(mode=self.mode)
        return WandbInfo(
            mode=self.mode,
            id=self.run.id,
            url=self.run.url if self.mode == "online" else None,
            dir=os.path.dirname(self.run.dir),
        )

    def finish(self, record: Record, record_path: Path) -> None:
        """Puts the record's metrics in the summary, attaches the record, closes the run, and
        ends this process's W&B session.

        W&B reads its environment (``WANDB_BASE_URL``, ``WANDB_INIT_TIMEOUT``, ...) once, when
        the first run of a process sets it up, and keeps it for every later run: a second run
        in the same process (``isolate=false``, ``bench.speed``, a test) would start with the
        first one's settings (seen: an unreachable server waited out the default 90 s init
        timeout instead of the 5 s its environment asked for). Each run's W&B session is
        therefore its own, as its process is.
        """
        self._wait(quiet=True)
        if self.run is not None:
            self._close(record, record_path)
        if self.mode != "disabled":
            shutdown()

    def _close(self, record: Record, record_path: Path) -> None:
        metrics = dataclasses.asdict(record.metrics)
        summary = {k: v for k, v in metrics.items() if v is not None}
        summary["status"] = record.status.value
        summary.update(record.serving.figures() if record.serving else {})
        summary.update(_model_figures(record))
        if record.error:
            summary.update(error_type=record.error.type, error=record.error.message)
        self.run.summary.update(summary)
        splits = {role: dataclasses.asdict(info) for role, info in record.splits.items()}
        self.run.config.update(
            {"env": dataclasses.asdict(record.env), "splits": splits}, allow_val_change=True
        )
        self.run.log_artifact(record_artifact(record, record_path))
        if record.model.path and record.model.artifact:
            self.run.log_artifact(model_artifact(record))
        run_dir = os.path.dirname(self.run.dir)
        if record.error and record.error.type == "Interrupted":
            self.run.mark_preempting()  # W&B shows it as pre-empted, to be resumed
        self.run.finish(exit_code=0 if record.completed else 1)
        if self.mode == "offline":
            say(f"W&B run saved offline; upload it with: wandb sync {run_dir}")


def publish_serving(record: Record, record_path: Path) -> bool:
    """Adds a later serve's figures, the ``model`` artifact (SavedModel and exports) and the
    served record to the record's W&B run, resumed by its id in the mode it ran in (each
    artifact gets a new version).

    Returns:
        False when the run had no W&B run (``wandb.mode=disabled``).
    """
    info, settings = record.wandb, record.config.get("wandb") or {}
    if info.mode in (None, "disabled") or not info.id:
        return False
    record.model.artifact = record.model.artifact or f"model-{record.run_id}"
    try:
        _publish(record, record_path, settings, info)
    finally:
        wandb.teardown()  # W&B reads its environment once per session: end it, as finish does
    return True


def _publish(record: Record, record_path: Path, settings: dict, info: WandbInfo) -> None:
    with wandb.init(
        project=settings.get("project"), entity=settings.get("entity"), mode=info.mode,
        id=info.id, resume="allow", reinit="finish_previous", job_type="train",
    ) as run:  # fmt: skip
        run.summary.update({**record.serving.figures(), **_model_figures(record)})
        run.log_artifact(record_artifact(record, record_path))
        if record.model.path:
            run.log_artifact(model_artifact(record))
        run_dir = os.path.dirname(run.dir)
    if info.mode == "offline":  # a second folder of the same run: sync uploads it too
        say(f"W&B serving figures saved offline; upload them with: wandb sync {run_dir}")


def record_artifact(record: Record, record_path: Path) -> wandb.Artifact:
    """The record file as the ``record-<run_id>`` artifact."""
    artifact = wandb.Artifact(f"record-{record.run_id}", type="result-record")
    artifact.add_file(str(record_path), name="record.json")
    return artifact


def _model_figures(record: Record) -> dict:
    return {
        f"model.{k}": v
        for k in ("size_bytes", "macs_per_image", "params")
        if (v := getattr(record.model, k)) is not None
    }


def model_artifact(record: Record) -> wandb.Artifact:
    """The kept SavedModel and its LiteRT exports (when served) as one ``model`` artifact."""
    model = wandb.Artifact(
        record.model.artifact, type="model", metadata=dataclasses.asdict(record.model)
    )
    model.add_dir(record.model.path, name="saved_model")
    for name, result in (record.serving.formats if record.serving else {}).items():
        if result.path and result.path.endswith(".tflite"):
            model.add_file(result.path, name=f"{name}.tflite")
    return model


def shutdown() -> None:
    """Stops W&B's service process, for a worker that ends without the interpreter's
    teardown (which would otherwise stop it)."""
    wandb.teardown()
