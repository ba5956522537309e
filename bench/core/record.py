"""The result record (docs/outputs.md): one typed definition that builds, writes and reads it.

Every writer (the worker, the isolation fallback) builds a :class:`Record`; every reader
(the launcher's summary, the W&B summary, the aggregator) gets one from :func:`read` or
:meth:`Record.from_dict`. The JSON keys are the dataclass fields, so no other module keeps
a copy of them. A field added after schema version 1 carries ``since`` in its metadata:
older records lack it and still read.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

from bench.core import atomic

# 2 added metrics.epochs_trained and metrics.phases; 3 added effective_batch_size,
# feature_cache, the env's compute settings and phases' first_epoch_time_s; 4 env's
# determinism; 5 the kept model and its serving figures; 6 the split behind each role.
# Records of every earlier version still read.
SCHEMA_VERSION = 6
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6)


class Status(str, Enum):
    """How a run ended."""

    completed = "completed"
    failed = "failed"


class RecordError(ValueError):
    """A record file that does not follow the schema; the message lists what is wrong."""


@dataclass
class HistoryRow:
    """One epoch. Epochs are numbered from 1 and continue across phases."""

    #: The epoch, from 1, continuing across phases.
    epoch: int
    #: ``train``, or ``head`` then ``finetune`` for a two-phase run.
    phase: str
    #: Training loss.
    loss: float | None = None
    #: Training accuracy.
    accuracy: float | None = None
    #: Validation loss at the epoch's end.
    val_loss: float | None = None
    #: Validation accuracy at the epoch's end.
    val_accuracy: float | None = None
    #: The learning rate the epoch ended at.
    lr: float | None = None
    #: The epoch's wall-clock time, validation included.
    epoch_time_s: float | None = None


@dataclass
class PhaseMetrics:
    """One phase's figures (``head``, ``finetune``, or the single ``train``).

    ``train_images_per_s`` is the training images of one epoch over the median training
    part of the phase's epochs after its first (which traces the graph again after every
    compile); the first counts only when it is the only one.
    """

    #: Epochs the phase trained.
    epochs: int
    #: The phase's wall-clock time.
    train_time_s: float | None = None
    #: The median epoch of the phase.
    epoch_time_s: float | None = None
    #: Training images per second (see the class docstring).
    train_images_per_s: float | None = None
    #: The first epoch on its own: it traces the graph and fills the input cache.
    first_epoch_time_s: float | None = field(default=None, metadata={"since": 3})


@dataclass
class Metrics:
    """The run's figures; every one may be null (not measured, or the run failed early).

    ``train_time_s`` covers all phases; ``epoch_time_s`` and ``train_images_per_s`` are
    those of the run's last phase (the one that trains the final model: ``train`` or
    ``finetune``), and ``phases`` holds each phase's own.
    """

    #: The highest validation accuracy of any epoch: chosen on the data it reports and kept by no
    #: model, so no table or verdict shows it.
    best_val_accuracy: float | None = None
    #: The last epoch's validation accuracy: that of the weights that are kept and tested.
    #: Validation chooses on it.
    final_val_accuracy: float | None = None
    #: The final model's test accuracy: what is reported. Null without a test split.
    test_accuracy: float | None = None
    #: Wall-clock time of training, every phase.
    train_time_s: float | None = None
    #: The last phase's median epoch.
    epoch_time_s: float | None = None
    #: The last phase's training images per second.
    train_images_per_s: float | None = None
    #: The accelerator's peak memory (null on CPUs).
    peak_device_memory_bytes: int | None = None
    #: The worker process's peak resident memory during the run (Linux: since its job
    #: started; env.job_in_process says whether earlier jobs' memory is in it).
    peak_host_rss_bytes: int | None = None
    #: Parameters of the model.
    params_total: int | None = None
    #: Parameters the last phase trained.
    params_trainable: int | None = None
    #: Epochs that completed, every phase.
    epochs_trained: int | None = field(default=None, metadata={"since": 2})
    #: Each phase's own figures, by phase name.
    phases: dict[str, PhaseMetrics] = field(default_factory=dict, metadata={"since": 2})


@dataclass
class Env:
    """The conditions of the run: versions, strategy and devices, host, project commit."""

    #: Python's version.
    python: str | None = None
    #: TensorFlow's version.
    tensorflow: str | None = None
    #: tf_keras' version.
    keras: str | None = None
    #: tensorflow-hub's version.
    tensorflow_hub: str | None = None
    #: tensorflow-datasets' version.
    tensorflow_datasets: str | None = None
    #: wandb's version.
    wandb: str | None = None
    #: hydra-core's version.
    hydra: str | None = None
    #: bench's version.
    bench: str | None = None
    #: The tf.distribute strategy's class.
    strategy: str | None = None
    #: Replicas in sync.
    replicas: int | None = None
    #: The devices the strategy used.
    devices: list[str] = field(default_factory=list)
    #: Their kinds (CPU, GPU model, TPU).
    device_kinds: list[str] = field(default_factory=list)
    #: The host the worker ran on.
    hostname: str | None = None
    #: The operating system and machine.
    platform: str | None = None
    #: The worker's process id.
    pid: int | None = None
    #: bench's git commit, when run from a checkout.
    git_commit: str | None = None
    #: Whether that checkout had uncommitted changes.
    git_dirty: bool | None = None
    # How the run computed (config keys resolved for the device; see pipeline.compute).
    #: Hosts in the run.
    workers: int | None = field(default=None, metadata={"since": 3})
    #: The precision policy used (config.precision may say auto).
    precision: str | None = field(default=None, metadata={"since": 3})
    #: Whether the train step was compiled with XLA.
    jit_compile: bool | None = field(default=None, metadata={"since": 3})
    #: Train steps per call into the compiled graph.
    steps_per_execution: int | None = field(default=None, metadata={"since": 3})
    #: Where decoded images were kept: memory, disk or none.
    input_cache: str | None = field(default=None, metadata={"since": 3})
    #: TensorFlow's op determinism was on, and what the seed still does not pin down.
    deterministic: bool | None = field(default=None, metadata={"since": 4})
    #: What the seed does not pin down on these devices.
    not_deterministic: list[str] = field(default_factory=list, metadata={"since": 4})
    #: The run's place among the jobs its process ran: 1 in a fresh worker; more in a
    #: shared worker (shared_worker) or with isolate=false, where the peak host RSS starts
    #: from what the jobs before it left and TensorFlow's start-up is already paid.
    job_in_process: int | None = field(default=None, metadata={"since": 6})


@dataclass
class FeatureCacheInfo:
    """Whether the run trained on cached backbone features (pipeline.features).

    ``status``: ``hit`` (read an entry), ``filled`` (computed it, taking ``fill_time_s``,
    and stored it at the run's end), ``unused`` (``reason`` says why).
    """

    #: ``hit``, ``filled`` or ``unused``.
    status: str = "unused"
    #: Why it was unused, or why a filled entry was not stored.
    reason: str | None = None
    #: The entry's key: a hash of everything its features depend on.
    key: str | None = None
    #: The entry's file.
    path: str | None = None
    #: How long filling it took.
    fill_time_s: float | None = None


@dataclass
class SplitInfo:
    """The examples behind one role (``train`` fits, ``val`` selects, ``test`` reports).

    ``split`` is the source split; ``share`` and ``seed`` say what was carved out of it
    (bench.core.splits), both null when the role is the whole split.
    """

    #: The source split: a TFDS split string, or ``files`` for a folder.
    split: str
    #: The share of ``split`` carved for this role; null when the role is all of it.
    share: float | None = None
    #: The carving's seed (dataset.split_seed); null when not carved.
    seed: int | None = None
    #: Examples in the role; null when the source does not say.
    examples: int | None = None


@dataclass
class WandbInfo:
    """Where the run's W&B run is: mode, id, URL (null offline), local folder."""

    #: The mode the run logged in.
    mode: str | None = None
    #: The W&B run id.
    id: str | None = None
    #: The run's page (null offline).
    url: str | None = None
    #: The local W&B folder of the run (``wandb sync`` it).
    dir: str | None = None


@dataclass
class ErrorInfo:
    """Why a run failed: the exception's type name and message."""

    #: The exception's type name (``Diverged``, ``OutOfMemory``, ``Interrupted``, ...).
    type: str
    #: Its message.
    message: str

    @classmethod
    def from_exception(cls, error: BaseException) -> ErrorInfo:
        """The error block for ``error``."""
        return cls(type=type(error).__name__, message=str(error))


@dataclass
class SkippedFiles:
    """Input files left out because they could not be decoded (a ``folder`` dataset)."""

    #: How many files were left out.
    count: int = 0
    #: The first few, relative to dataset.path.
    first: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, paths: list[str], shown: int = 10) -> SkippedFiles:
        return cls(count=len(paths), first=list(paths[:shown]))


@dataclass
class ModelInfo:
    """The trained model a completed run kept (``keep_model``): a SavedModel whose
    ``serving_default`` signature takes ``image`` (as ``input`` describes) and returns
    class probabilities. A single-worker run that trained only its head on cached features
    (in every phase; the run that filled the entry as well as those that hit it, when the
    entry describes its backbone) keeps the head's weights (``head_weights``); its
    SavedModel is assembled from them when first
    served (``python -m bench.serve``), and ``path`` is null until then."""

    #: The SavedModel folder: <results_dir>/models/<run_id>/saved_model.
    path: str | None = None
    #: A head trained on cached features: <results_dir>/models/<run_id>/head_weights.npz.
    head_weights: str | None = None
    #: What the signature takes (pipeline.keep.INPUT).
    input: str | None = None
    #: The SavedModel's size on disk.
    size_bytes: int | None = None
    #: Its parameters.
    params: int | None = None
    #: Multiply-adds of one image (convolutions, matmuls).
    macs_per_image: int | None = None
    #: The W&B artifact, when W&B was on.
    artifact: str | None = None


@dataclass
class Latency:
    """Batch-1 latency over ``calls`` timed calls after warm-up, in milliseconds."""

    #: Median latency.
    p50_ms: float | None
    #: 90th percentile.
    p90_ms: float | None
    #: 99th percentile.
    p99_ms: float | None
    #: Timed calls.
    calls: int


@dataclass
class FormatResult:
    """One serving format of the kept model (``saved_model`` or a LiteRT export).

    ``status``: ``measured``; ``unsupported`` (the converter refused it: ``reason`` is its
    message) or ``failed`` (it converted but did not run). ``latency`` maps a thread count
    (as a string: JSON keys) to its figures.
    """

    #: ``measured``, ``unsupported`` or ``failed``.
    status: str
    #: Why a format is unsupported or failed.
    reason: str | None = None
    #: The export's file (the SavedModel's folder for ``saved_model``).
    path: str | None = None
    #: Its size on disk.
    size_bytes: int | None = None
    #: Its accuracy on the evaluation split.
    accuracy: float | None = None
    #: Images it classified right.
    correct: int | None = None
    #: Batch-1 latency by thread count (as a string).
    latency: dict[str, Latency] = field(default_factory=dict)
    #: Images per second at ``ServingInfo.batch``, all threads.
    images_per_s: float | None = None
    #: The largest probability gap to the SavedModel's.
    max_abs_diff: float | None = None


@dataclass
class ServingInfo:
    """What the kept model costs to serve on the host that measured it (``bench.serve``)."""

    #: When it was measured (UTC, ISO 8601).
    measured_at: str
    #: The CPU that measured it.
    host_cpu: str | None = None
    #: Thread counts latency was timed at.
    threads: list[int] = field(default_factory=list)
    #: The throughput's batch.
    batch: int = 32
    #: The split accuracy was measured on.
    eval_split: str | None = None
    #: Images accuracy was measured on.
    eval_images: int | None = None
    #: Training images the full-integer export was calibrated on.
    calibration_images: int | None = None
    #: Converter and interpreter versions.
    versions: dict[str, str | None] = field(default_factory=dict)
    #: Each format's figures, by format.
    formats: dict[str, FormatResult] = field(default_factory=dict)

    def figures(self) -> dict[str, float | int | str]:
        """Each measured format's headline figures under flat keys (W&B's summary, the
        runs table): ``serving.<format>.<field>`` for the fields of :data:`FIGURES`, latency
        at the fewest threads measured (one, for LiteRT; ``p50_ms_all`` at the most), and
        ``serving.host_cpu``. :func:`serving_from_figures` reads them back."""
        found: dict[str, float | int | str] = {}
        for name, result in self.formats.items():
            if result.status != "measured" or not result.latency:
                continue
            fewest, most = min(result.latency, key=int), max(result.latency, key=int)
            values = {
                "size_bytes": result.size_bytes,
                "accuracy": result.accuracy,
                "threads": int(fewest),
                "p50_ms": result.latency[fewest].p50_ms,
                "p99_ms": result.latency[fewest].p99_ms,
                "threads_all": int(most),
                "p50_ms_all": result.latency[most].p50_ms,
                "images_per_s": result.images_per_s,
            }
            found.update({f"serving.{name}.{k}": v for k, v in values.items() if v is not None})
        if found and self.host_cpu:
            found["serving.host_cpu"] = self.host_cpu
        return found


# The per-format figures ServingInfo.figures() flattens, in the runs table's order: one
# list, so the W&B summary, the runs table and serving_from_figures cannot drift apart.
FIGURES = (
    "size_bytes", "accuracy", "threads", "p50_ms", "p99_ms", "threads_all", "p50_ms_all",
    "images_per_s",
)  # fmt: skip


def serving_from_figures(summary: dict) -> ServingInfo | None:
    """The :class:`ServingInfo` a W&B summary's ``serving.*`` figures describe (its
    headline figures only: no p90, paths or reasons), or None when it has none."""
    formats: dict[str, dict] = {}
    for key, value in summary.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "serving" and parts[2] in FIGURES:
            formats.setdefault(parts[1], {})[parts[2]] = value
    if not formats:
        return None
    found = {}
    for name, v in formats.items():
        latency = {}
        if "threads" in v:
            latency[str(int(v["threads"]))] = Latency(v.get("p50_ms"), None, v.get("p99_ms"), 0)
        if "threads_all" in v:
            most = str(int(v["threads_all"]))
            latency.setdefault(most, Latency(v.get("p50_ms_all"), None, None, 0))
        found[name] = FormatResult(
            status="measured", size_bytes=v.get("size_bytes"), accuracy=v.get("accuracy"),
            latency=latency, images_per_s=v.get("images_per_s"),
        )  # fmt: skip
    return ServingInfo(measured_at="", host_cpu=summary.get("serving.host_cpu"), formats=found)


@dataclass
class Record:
    """One run's result, as written to ``<results_dir>/<run_id>.json``."""

    #: A hash of what defines the run (bench.core.spec.run_id: every config key but where and how it
    #: runs, seed included).
    run_id: str
    #: ``completed`` or ``failed``.
    status: Status
    #: When the worker started (UTC, ISO 8601).
    started_at: str
    #: When it wrote the record.
    finished_at: str | None
    #: The resolved config: every key, with values found at run time (the dataset's class count).
    config: dict[str, Any]
    #: Versions, devices, host and how the run computed.
    env: Env = field(default_factory=Env)
    #: Accuracy, time, throughput, memory and size.
    metrics: Metrics = field(default_factory=Metrics)
    #: One row per epoch.
    history: list[HistoryRow] = field(default_factory=list)
    #: Where its W&B run is.
    wandb: WandbInfo = field(default_factory=WandbInfo)
    #: Why it failed; null when completed.
    error: ErrorInfo | None = None
    #: Its place in the launch (multirun job, group, attempt).
    job: dict[str, Any] = field(default_factory=dict)
    #: The layout's version; every earlier one still reads.
    schema_version: int = SCHEMA_VERSION
    #: How many attempts the point has had (every one kept under attempts/<run_id>/).
    attempts: int = field(default=1, metadata={"since": 2})
    #: Times the run resumed from its checkpoint.
    resumes: int = field(default=0, metadata={"since": 2})
    #: Unreadable input files left out (a folder dataset).
    skipped_files: SkippedFiles = field(default_factory=SkippedFiles, metadata={"since": 2})
    #: The global batch trained at; below config.batch_size when oom_retry lowered it.
    effective_batch_size: int | None = field(default=None, metadata={"since": 3})
    #: Whether the run trained on cached backbone features.
    feature_cache: FeatureCacheInfo = field(default_factory=FeatureCacheInfo, metadata={"since": 3})
    #: The kept model (keep_model).
    model: ModelInfo = field(default_factory=ModelInfo, metadata={"since": 5})
    #: What the kept model costs to serve (bench.serve); null until served.
    serving: ServingInfo | None = field(default=None, metadata={"since": 5})
    #: Keyed by role: train, val and test (absent when asked for none).
    splits: dict[str, SplitInfo] = field(default_factory=dict, metadata={"since": 6})

    @property
    def completed(self) -> bool:
        return self.status == Status.completed

    def to_dict(self) -> dict[str, Any]:
        """The JSON layout: plain values, the status as its string."""
        data = dataclasses.asdict(self)
        data["status"] = Status(self.status).value
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Record:
        """Reads a record dict of any readable schema version.

        Raises:
            RecordError: listing every way ``data`` breaks the schema.
        """
        found = problems(data)
        if found:
            raise RecordError("; ".join(found))
        return cls(
            run_id=data["run_id"],
            status=Status(data["status"]),
            started_at=data["started_at"],
            finished_at=data["finished_at"],
            config=data["config"],
            env=pick(Env, data["env"]),
            metrics=metrics_from_dict(data["metrics"]),
            history=[pick(HistoryRow, row) for row in data["history"]],
            wandb=pick(WandbInfo, data["wandb"]),
            error=None if data["error"] is None else pick(ErrorInfo, data["error"]),
            job=data.get("job") or {},
            schema_version=data["schema_version"],
            attempts=data.get("attempts", 1),
            resumes=data.get("resumes", 0),
            skipped_files=pick(SkippedFiles, data.get("skipped_files") or {}),
            effective_batch_size=data.get("effective_batch_size"),
            feature_cache=pick(FeatureCacheInfo, data.get("feature_cache") or {}),
            model=pick(ModelInfo, data.get("model") or {}),
            serving=serving_from_dict(data.get("serving")),
            splits={k: pick(SplitInfo, v) for k, v in (data.get("splits") or {}).items()},
        )


def serving_from_dict(values: dict | None) -> ServingInfo | None:
    """A :class:`ServingInfo` from its JSON layout, or None for a record never served."""
    if not values:
        return None
    serving = pick(ServingInfo, values)
    serving.formats = {name: _format(f) for name, f in (values.get("formats") or {}).items()}
    return serving


def _format(values: dict) -> FormatResult:
    found = pick(FormatResult, values)
    found.latency = {n: pick(Latency, v) for n, v in (values.get("latency") or {}).items()}
    return found


def metrics_from_dict(values: dict) -> Metrics:
    """A :class:`Metrics` from its JSON layout (phases included), ignoring unknown keys."""
    metrics = pick(Metrics, values)
    metrics.phases = {
        name: pick(PhaseMetrics, p) for name, p in (values.get("phases") or {}).items()
    }
    return metrics


def pick(kind: type, values: dict) -> Any:
    """A ``kind`` dataclass from the keys of ``values`` it knows (others are ignored)."""
    names = {f.name for f in dataclasses.fields(kind)}
    return kind(**{k: v for k, v in values.items() if k in names})


def _required(kind: type) -> list[str]:
    """Fields every record of a readable version has (those not added later)."""
    return [f.name for f in dataclasses.fields(kind) if "since" not in f.metadata]


def problems(data: Any) -> list[str]:
    """Ways a record dict breaks the schema; empty when it is valid."""
    if not isinstance(data, dict):
        return ["record is not a JSON object"]
    top = [name for name in _required(Record) if name != "job"]
    found = [f"missing key {key!r}" for key in top if key not in data]
    if found:
        return found
    if data["schema_version"] not in READABLE_VERSIONS:
        found.append(f"schema_version {data['schema_version']!r} not in {READABLE_VERSIONS}")
    statuses = tuple(s.value for s in Status)
    if data["status"] not in statuses:
        found.append(f"status {data['status']!r} not in {statuses}")
    for block, kind in (("metrics", Metrics), ("env", Env), ("wandb", WandbInfo)):
        if not isinstance(data[block], dict):
            found.append(f"{block} is not an object")
            continue
        found += [f"{block} lacks {key!r}" for key in _required(kind) if key not in data[block]]
    for index, row in enumerate(data["history"]):
        found += [f"history[{index}] lacks {k!r}" for k in _required(HistoryRow) if k not in row]
    if (data["status"] == Status.failed.value) != (data["error"] is not None):
        found.append("error must be set exactly when status is 'failed'")
    return found


def now() -> str:
    """The current UTC time in ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def path_for(results_dir: str | os.PathLike, run_id: str) -> Path:
    """Where the record of ``run_id`` lives."""
    return Path(results_dir) / f"{run_id}.json"


def attempt_path(results_dir: str | os.PathLike, run_id: str, attempt: str) -> Path:
    """Where one attempt of a point is kept: ``attempts/<run_id>/<attempt>.json``."""
    return Path(results_dir) / "attempts" / run_id / f"{attempt}.json"


def save(record: Record, results_dir: str | os.PathLike) -> Path:
    """Keeps this attempt, and makes it the point's record unless that would replace a
    completed record with a failed one (a failed rerun never loses a result).

    Returns:
        ``<results_dir>/<run_id>.json``.
    """
    target = path_for(results_dir, record.run_id)
    try:
        current = read(target)
    except (OSError, ValueError):
        current = None
    attempt = record.job.get("attempt") or uuid.uuid4().hex
    folder = attempt_path(results_dir, record.run_id, attempt).parent
    folder.mkdir(parents=True, exist_ok=True)
    record.attempts = len({*folder.glob("*.json"), folder / f"{attempt}.json"})
    kept = record
    if current is not None and current.completed and not record.completed:
        current.attempts, kept = record.attempts, current
    for written, path in ((record, folder / f"{attempt}.json"), (kept, target)):
        _write_atomic(written, path)
    return target


def find_attempt(results_dir: str | os.PathLike, run_id: str, attempt: str) -> Record | None:
    """The record one attempt wrote, or None when it wrote none."""
    try:
        return read(attempt_path(results_dir, run_id, attempt))
    except (OSError, ValueError):
        return None


def write(record: Record, results_dir: str | os.PathLike) -> Path:
    """Writes ``<results_dir>/<run_id>.json`` atomically (temp file + rename)."""
    Path(results_dir).mkdir(parents=True, exist_ok=True)
    return _write_atomic(record, path_for(results_dir, record.run_id))


def _write_atomic(record: Record, target: Path) -> Path:
    def fill(handle) -> None:
        json.dump(finite(record.to_dict()), handle, indent=2, allow_nan=False, default=str)
        handle.write("\n")

    return atomic.write(target, fill)


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def read(path: str | os.PathLike) -> Record:
    """Reads one record file.

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not JSON (``json.JSONDecodeError``) or breaks the schema
            (:class:`RecordError`).
    """
    with open(path) as handle:
        data = json.load(handle)
    try:
        return Record.from_dict(data)
    except (TypeError, AttributeError, KeyError) as error:  # a section the checks do not cover
        why = f"{type(error).__name__}: {error}"
        raise RecordError(f"a section breaks the schema: {why}") from error


def scan(folder: str | os.PathLike) -> tuple[list[tuple[Path, Record]], list[tuple[Path, str]]]:
    """Every ``*.json`` record of ``folder`` (not recursively), in name order.

    Returns:
        The records read, with their paths; and the files skipped, with why (a broken
        record names what breaks the schema; an unreadable file says "unreadable").
    """
    found, skipped = [], []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            found.append((path, read(path)))
        except RecordError as error:
            skipped.append((path, str(error)))
        except (OSError, ValueError) as error:
            skipped.append((path, f"unreadable: {error}"))
    return found, skipped
