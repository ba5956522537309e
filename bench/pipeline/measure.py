"""Measuring a run: per-epoch wall-clock, throughput, device and host memory, parameters."""

from __future__ import annotations

import contextlib
import math
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import tensorflow as tf
import tf_keras as keras

from bench.core.errors import Diverged
from bench.core.record import HistoryRow, PhaseMetrics
from bench.pipeline import optim


class EpochRecorder(keras.callbacks.Callback):
    """Builds one history row per epoch and times it.

    ``epoch_time_s`` is the whole epoch (training and validation); the training part alone
    (up to the first validation batch) is kept for throughput. ``lr`` is the rate the
    epoch's first step used (a plateau schedule changes it only after the epoch). Epochs
    are numbered from 1 and continue across phases, because Keras is given ``initial_epoch``.
    """

    def __init__(
        self,
        phase: str,
        on_row: Callable[[HistoryRow], None] | None = None,
        on_saved: Callable[[HistoryRow, float], None] | None = None,
    ):
        super().__init__()
        self.phase = phase
        self.on_row = on_row
        self.on_saved = on_saved
        self.rows: list[HistoryRow] = []
        self.train_seconds: list[float] = []
        self._start = self._train_end = 0.0
        self._lr: float | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self._lr = optim.current_lr(self.model.optimizer)
        self._start = time.perf_counter()
        self._train_end = 0.0

    def on_test_begin(self, logs=None):
        if not self._train_end:
            self._train_end = time.perf_counter()

    def restore(self, rows: list[tuple[HistoryRow, float]]) -> float:
        """Starts from epochs an earlier attempt finished; returns their seconds."""
        self.rows = [row for row, _ in rows]
        self.train_seconds = [seconds for _, seconds in rows]
        return sum(row.epoch_time_s or 0.0 for row in self.rows)

    def phase_metrics(self, train_examples: int | None, wall_s: float) -> PhaseMetrics:
        """This phase's figures (see :class:`bench.core.record.PhaseMetrics`)."""
        return PhaseMetrics(
            epochs=len(self.rows),
            train_time_s=wall_s,
            epoch_time_s=median_epoch_time(self.rows),
            train_images_per_s=images_per_second(train_examples, self.train_seconds),
            first_epoch_time_s=self.rows[0].epoch_time_s if self.rows else None,
        )

    def diverged(self) -> Diverged | None:
        """The error to raise when the last epoch's loss is not finite, else None."""
        if not self.rows or self.rows[-1].loss is None or math.isfinite(self.rows[-1].loss):
            return None
        last = self.rows[-1]
        return Diverged(
            f"training diverged: the loss became {last.loss} in epoch {last.epoch} "
            f"(phase {last.phase}); lower optimizer.lr or set optimizer.clipnorm"
        )

    def on_epoch_end(self, epoch, logs=None):
        end = time.perf_counter()
        logs = logs or {}
        self.train_seconds.append((self._train_end or end) - self._start)
        row = HistoryRow(
            epoch=epoch + 1,
            phase=self.phase,
            loss=_float(logs.get("loss")),
            accuracy=_float(logs.get("accuracy")),
            val_loss=_float(logs.get("val_loss")),
            val_accuracy=_float(logs.get("val_accuracy")),
            lr=self._lr,
            epoch_time_s=end - self._start,
        )
        # A resumed epoch that was logged but not backed up runs again: keep the new one.
        kept = [i for i, old in enumerate(self.rows) if old.epoch != row.epoch]
        self.rows = [self.rows[i] for i in kept] + [row]
        self.train_seconds = [self.train_seconds[i] for i in kept] + [self.train_seconds[-1]]
        if self.on_saved:
            self.on_saved(row, self.train_seconds[-1])
        if self.on_row:
            self.on_row(row)


def _float(value) -> float | None:
    return None if value is None else float(value)


def median_epoch_time(rows: list[HistoryRow]) -> float | None:
    """Median wall-clock of an epoch (robust to the first epoch's tracing)."""
    times = [row.epoch_time_s for row in rows]
    return statistics.median(times) if times else None


def images_per_second(train_examples: int | None, train_seconds: list[float]) -> float | None:
    """Training images per second in the median epoch's training part.

    The first epoch also traces and compiles the graph, so it only counts when it is the
    only one.
    """
    if not train_examples or not train_seconds:
        return None
    steady = train_seconds[1:] or train_seconds
    return train_examples / statistics.median(steady)


def reset_device_memory(devices: list[str]) -> None:
    """Starts a new peak for each accelerator (``GPU:0``...)."""
    for device in devices:
        try:
            tf.config.experimental.reset_memory_stats(device)
        except (ValueError, tf.errors.OpError):
            pass  # not every device kind keeps allocator stats


def peak_device_memory(devices: list[str]) -> int | None:
    """Highest per-device allocator peak since the reset, in bytes; None without accelerators."""
    peaks = []
    for device in devices:
        try:
            peaks.append(int(tf.config.experimental.get_memory_info(device)["peak"]))
        except (ValueError, tf.errors.OpError):
            continue
    return max(peaks) if peaks else None


def peak_host_rss() -> int:
    """This process's peak resident set size in bytes, since it started or since
    :func:`reset_peak_host_rss` (Linux: ``VmHWM``; elsewhere the lifetime peak)."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) * 1024  # reported in kB
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB; macOS: bytes
        return int(peak if sys.platform == "darwin" else peak * 1024)


def reset_peak_host_rss() -> None:
    """Starts a new peak at the current resident set size (Linux, ``clear_refs``), for a
    process that runs one job after another."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
