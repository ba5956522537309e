"""What a serve of a record would measure, and where its kept model is: read without
TensorFlow, so that ``python -m bench.serve`` can choose its records before loading it."""

from __future__ import annotations

import os
from pathlib import Path

from bench.core import environment
from bench.core.record import Record
from bench.core.schema import ServingConfig

SAVED_MODEL = "saved_model"
HEAD_WEIGHTS = "head_weights.npz"  # in the order Keras lists them (get_weights)


def model_dir(results_dir: str | os.PathLike, run_id: str) -> Path:
    """Where a run's SavedModel lives: ``<results_dir>/models/<run_id>/saved_model``."""
    return Path(results_dir) / "models" / run_id / "saved_model"


def formats(rec: Record, settings: ServingConfig, record_path: Path | None = None) -> list[str]:
    """The formats (``saved_model`` first) ``rec`` has no result for yet: what a serve of
    it would measure. Empty for a run without a kept model or kept head (whose SavedModel
    the serve assembles first). A ``failed`` format is tried again, and every format is
    pending when the record was served on another CPU (its latencies would not be
    comparable with this host's)."""
    if not rec.completed or not (kept_model(rec, record_path) or kept_head(rec, record_path)):
        return []
    done = {} if elsewhere(rec) else (rec.serving.formats if rec.serving else {})
    wanted = [SAVED_MODEL, *(f.value if hasattr(f, "value") else f for f in settings.formats)]
    return [n for n in wanted if n not in done or done[n].status == "failed"]


def kept_model(rec: Record, record_path: Path | None = None) -> Path | None:
    """The record's SavedModel folder: where the record says, or beside the record
    (``<folder>/models/<run_id>/saved_model``) when the results were moved; None if absent."""
    beside = model_dir(Path(record_path).parent, rec.run_id) if record_path else None
    return _found(rec.model.path, beside, Path.is_dir)


def kept_head(rec: Record, record_path: Path | None = None) -> Path | None:
    """The head weights of a run that trained on cached features: where the record says,
    or beside the record when the results were moved; None if absent."""
    folder = model_dir(Path(record_path).parent, rec.run_id).parent if record_path else None
    return _found(rec.model.head_weights, folder / HEAD_WEIGHTS if folder else None, Path.is_file)


def _found(recorded: str | None, beside: Path | None, exists) -> Path | None:
    """``recorded`` if it ``exists``, else ``beside`` if it does; None when nothing was
    recorded (a path beside the record counts only for what the record says it kept)."""
    if not recorded:
        return None
    return next((p for p in (Path(recorded), beside) if p is not None and exists(p)), None)


def elsewhere(rec: Record) -> bool:
    """Whether ``rec`` was served on another CPU than this host's."""
    return bool(rec.serving and rec.serving.host_cpu not in (None, environment.cpu_model()))


def staged(staging: str | os.PathLike, run_id: str, name: str) -> Path:
    """Where a serve stages the ``name`` export of run ``run_id`` before measuring it."""
    return Path(staging) / run_id / f"{name}.tflite"


def refusal(staging: str | os.PathLike, run_id: str, name: str) -> Path:
    """The file that holds the converter's reason when it refused ``name`` at staging."""
    return staged(staging, run_id, name).with_suffix(".unsupported")


def unstaged(rec: Record, settings: ServingConfig, record_path: Path, staging) -> list[str]:
    """The pending exports of ``rec`` that nothing was staged for: what measuring converts."""
    names = [n for n in formats(rec, settings, record_path) if n != SAVED_MODEL]
    return [n for n in names if not (staged(staging, rec.run_id, n).is_file()
                                     or refusal(staging, rec.run_id, n).is_file())]  # fmt: skip
