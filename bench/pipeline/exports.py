"""What a kept model costs to serve: its LiteRT exports, each one's size, accuracy, batch-1
latency and throughput, written into the run's record (``serving``) format by format.

One pass over the evaluation split runs every format on the same batches, so accuracy is
measured on exactly the images the run's test accuracy was, and each export's
probabilities are compared with the SavedModel's. A format the converter refuses is
recorded ``unsupported`` with its reason and the others go on. The record is rewritten
after each format, so a serve that is cut loses nothing it measured.

Converting is most of a serve's time and the converter uses one core, so ``bench.serve``
first converts several records at once (:func:`convert`, timing nothing) into a staging
folder of its own, then measures each record alone (:func:`measure`), taking the staged
files instead of converting again.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf

from bench.core import atomic, environment, pending
from bench.core import record as records
from bench.core.errors import Interrupted
from bench.core.pending import SAVED_MODEL, elsewhere, kept_model
from bench.core.record import FormatResult, Latency, Record, ServingInfo
from bench.core.schema import ServingConfig
from bench.core.spec import RunSpec
from bench.pipeline import data as pipeline
from bench.pipeline import keep, litert, stop
from bench.pipeline.keep import folder_size

log = logging.getLogger("bench")

_PACKAGES = {"tensorflow": "tensorflow", "ai-edge-litert": "ai-edge-litert"}


def convert(record_path: Path, settings: ServingConfig, staging: Path) -> list[str]:
    """Converts the record's pending LiteRT formats into ``staging/<run_id>/<format>.tflite``
    and measures nothing, so that several records can convert at once. A format the
    converter refuses gets its reason staged instead, for :func:`measure` to record.

    Returns:
        The formats staged.
    """
    rec = keep.assemble(record_path)  # a kept head becomes a SavedModel first
    names = [n for n in pending.formats(rec, settings, record_path) if n != SAVED_MODEL]
    if not names:
        return []
    model = kept_model(rec, record_path)
    calibration = _calibration(RunSpec.of(rec.config, rec.run_id), settings)
    (staging / rec.run_id).mkdir(parents=True, exist_ok=True)
    done = []
    for name in names:
        stop.check()
        try:
            flat = litert.convert(model, name, calibration)
        except litert.Unsupported as error:
            pending.refusal(staging, rec.run_id, name).write_text(str(error))
            continue
        target = pending.staged(staging, rec.run_id, name)
        atomic.write(target, lambda f, flat=flat: f.write(flat), binary=True)
        done.append(name)
    return done


def _calibration(
    spec: RunSpec, settings: ServingConfig, found: pipeline.Data | None = None
) -> Callable[[], Iterator]:
    """The int8 converter's representative dataset; the run's data (``found`` when it is
    loaded already) is loaded only when the converter first asks for it."""
    loaded: list[pipeline.Data] = [found] if found is not None else []

    def sample() -> Iterator[list[np.ndarray]]:
        if not loaded:
            loaded.append(pipeline.load(spec))
        return calibration_sample(loaded[0], spec, settings.calibration_images)

    return sample


def measure(record_path: Path, settings: ServingConfig, staging: Path | None = None) -> Record:
    """Measures every pending format of the record at ``record_path`` and writes each
    result into it as soon as it is measured.

    Args:
        record_path: The run's record.
        settings: What to measure and how.
        staging: Where :func:`convert` staged this serve's conversions, if it ran; a
            format staged there is moved beside the model instead of converted again.

    Returns:
        The record with its ``serving`` section.
    """
    rec = keep.assemble(record_path)  # a kept head becomes a SavedModel first
    todo = pending.formats(rec, settings, record_path)
    if not todo:
        return rec
    rec.model.path = str(kept_model(rec, record_path))
    spec = RunSpec.of(rec.config, rec.run_id)
    found = pipeline.load(spec)  # once: the evaluation split and the calibration sample
    split, batches = evaluation(found, settings.batch)
    threads = sorted({1, environment.usable_cores()})
    fresh = elsewhere(rec) or not rec.serving  # another host's figures are replaced whole
    info = ServingInfo(measured_at=records.now()) if fresh else rec.serving
    info.host_cpu, info.threads, info.batch = environment.cpu_model(), threads, settings.batch
    info.versions = environment.versions(_PACKAGES)
    info.eval_split = split
    saved = tf.saved_model.load(rec.model.path).signatures[keep.SIGNATURE]
    reference = _probabilities(lambda x: saved(image=tf.constant(x))["probabilities"], batches)
    info.eval_images = len(reference.labels)
    rec.serving = info
    calibration = _calibration(spec, settings, found)
    for name in todo:
        stop.check()  # a stopped serve keeps what it measured, and measures nothing more
        if name == SAVED_MODEL:
            result = _measure_saved_model(saved, rec.model.path, batches, settings, reference)
        else:
            result = _exported(rec, name, calibration, staging)
            if not isinstance(result, FormatResult):  # converted: measure it
                result = _measure_export(result, batches, settings, threads, reference)
            if name == "int8" and result.status == "measured":
                info.calibration_images = settings.calibration_images
        info.formats[name] = result
        info.measured_at = records.now()
        records.write(rec, record_path.parent)
        log.info("served %s as %s: %s", rec.run_id, name, result.status)
    return rec


def evaluation(found: pipeline.Data, batch: int) -> tuple[str, tf.data.Dataset]:
    """The split accuracy is measured on (test, else validation) as batches of float32
    0..255 images, resized as in training, in a fixed order: each format reads it afresh,
    so no split is ever held in memory whole."""
    split = "test" if found.images.get("test") is not None else "val"
    return split, found.images[split].batch(batch).prefetch(1)


def calibration_sample(
    found: pipeline.Data, spec: RunSpec, count: int
) -> Iterator[list[np.ndarray]]:
    """A seeded sample of ``count`` training images, one per batch (the converter's
    representative dataset): the same images for every export of the same run.

    The images are picked among the first ``shuffle_buffer`` by NumPy from the run's seed,
    not by TensorFlow, whose op seeds also depend on the process's global seed: a run's
    own worker and a later ``bench.serve`` process pick the same ones.
    """
    pool = spec.cfg.dataset.shuffle_buffer
    if found.train_examples is not None:
        pool = min(pool, found.train_examples)
    rng = np.random.default_rng(spec.cfg.seed)
    chosen = set(rng.choice(pool, min(count, pool), replace=False).tolist())
    for index, (image, _) in enumerate(found.images["train"].take(pool)):
        if index in chosen:
            yield [image.numpy()[None]]


@dataclasses.dataclass
class _Predictions:
    probabilities: np.ndarray
    labels: np.ndarray

    def against(self, reference: _Predictions) -> dict:
        correct = int((self.probabilities.argmax(-1) == self.labels).sum())
        gap = float(np.abs(self.probabilities - reference.probabilities).max())
        return {"correct": correct, "accuracy": correct / len(self.labels), "max_abs_diff": gap}


def _probabilities(call: Callable, batches: tf.data.Dataset) -> _Predictions:
    found, labels = [], []
    for x, y in batches.as_numpy_iterator():
        found.append(np.asarray(call(x)))
        labels.append(y)
    return _Predictions(np.concatenate(found), np.concatenate(labels))


def _measure_saved_model(saved, path, batches, settings, reference) -> FormatResult:
    """The SavedModel in TensorFlow: its thread pools are fixed when TensorFlow starts, so
    it is timed at the process's threads (all usable cores) only."""
    one = tf.constant(_batch_of(batches, 1))
    many = tf.constant(_batch_of(batches, settings.batch))
    cores = environment.usable_cores()
    return FormatResult(
        status="measured",
        path=str(path),
        size_bytes=folder_size(path),
        **reference.against(reference),
        latency={str(cores): _latency(lambda: saved(image=one), settings)},
        images_per_s=_throughput(lambda: saved(image=many), settings.batch),
    )


def _exported(rec: Record, name: str, calibration, staging: Path | None) -> Path | FormatResult:
    """The ``name`` export beside the kept model: the staged file (or refusal) when there is
    one, else a conversion; an ``unsupported`` result when the converter refuses it."""
    target = Path(rec.model.path).parent / f"{name}.tflite"
    if staging is not None:
        found, refused = (
            pending.staged(staging, rec.run_id, name),
            pending.refusal(staging, rec.run_id, name),
        )
        if refused.is_file():
            return FormatResult(status="unsupported", reason=refused.read_text())
        if found.is_file():  # copied whole, then the staged file goes: no half export is left
            atomic.write(target, lambda f: f.write(found.read_bytes()), binary=True)
            found.unlink()
            return target
    try:
        flat = litert.convert(rec.model.path, name, calibration)
        atomic.write(target, lambda f: f.write(flat), binary=True)
    except litert.Unsupported as error:
        return FormatResult(status="unsupported", reason=str(error))
    return target


def _measure_export(target: Path, batches, settings, threads, reference) -> FormatResult:
    try:
        runner = litert.Runner(target, max(threads))
        found = _probabilities(runner, batches).against(reference)
        one = _batch_of(batches, 1)
        latency = {str(n): invoke_latency(target, n, one, settings) for n in threads}
        runner.load(_batch_of(batches, settings.batch))
        rate = _throughput(runner.invoke, settings.batch)
    except Interrupted:
        raise
    except Exception as error:  # noqa: BLE001  (an export that converts but cannot run)
        return FormatResult(status="failed", reason=f"{type(error).__name__}: {error}")
    return FormatResult(
        status="measured", path=str(target), size_bytes=target.stat().st_size, **found,
        latency=latency, images_per_s=rate,
    )  # fmt: skip


def invoke_latency(path: Path, threads: int, image: np.ndarray, settings) -> Latency:
    """Batch-1 latency of ``invoke()`` alone (the image is loaded before the clock starts)."""
    runner = litert.Runner(path, threads)
    runner.load(image)
    return _latency(runner.invoke, settings)


def _latency(call: Callable[[], object], settings: ServingConfig) -> Latency:
    for _ in range(settings.warmup_calls):
        call()
    times = np.empty(settings.timed_calls)
    for index in range(settings.timed_calls):
        start = time.perf_counter()
        call()
        times[index] = time.perf_counter() - start
    p50, p90, p99 = np.percentile(times * 1000.0, [50, 90, 99])
    return Latency(float(p50), float(p90), float(p99), settings.timed_calls)


THROUGHPUT_S = 1.0  # each throughput figure times calls for at least this long


def _throughput(call: Callable[[], object], batch: int) -> float:
    call()  # warm-up
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < THROUGHPUT_S or calls < 3:
        call()
        calls += 1
    return batch * calls / elapsed


def _batch_of(batches: tf.data.Dataset, size: int) -> np.ndarray:
    """The first ``size`` evaluation images (repeated when the split has fewer)."""
    images = next(batches.unbatch().batch(size).as_numpy_iterator())[0]
    return np.resize(images, (size, *images.shape[1:])).astype(np.float32)
