"""The record contract: one typed definition, atomic writes, schema checks, old versions read."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from bench.core import record
from bench.core.record import ErrorInfo, HistoryRow, Metrics, Record, Status


def _record(**overrides) -> Record:
    base = Record(
        run_id="abc123def456",
        status=Status.completed,
        started_at=record.now(),
        finished_at=record.now(),
        config={"backbone": {"name": "b0"}, "seed": 1},
        metrics=Metrics(best_val_accuracy=0.5),
        history=[HistoryRow(epoch=1, phase="train", loss=1.2, accuracy=0.4, lr=1e-3)],
    )
    return dataclasses.replace(base, **overrides)


def test_written_record_reads_back_equal_and_leaves_no_temp_files(tmp_path):
    written = _record()
    path = record.write(written, tmp_path / "runs")
    assert path.name == "abc123def456.json"
    assert record.read(path) == written
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [path.name]
    assert json.loads(path.read_text())["status"] == "completed"


def test_rewrite_replaces_the_record(tmp_path):
    record.write(_record(), tmp_path)
    failed = _record(status=Status.failed, error=ErrorInfo("X", "y"))
    path = record.write(failed, tmp_path)
    assert record.read(path).status == Status.failed


def test_non_finite_numbers_are_written_as_null(tmp_path):
    diverged = _record(
        metrics=Metrics(best_val_accuracy=math.inf),
        history=[HistoryRow(epoch=1, phase="train", loss=math.nan)],
    )
    data = json.loads(record.write(diverged, tmp_path).read_text())
    assert data["metrics"]["best_val_accuracy"] is None
    assert data["history"][0]["loss"] is None


def test_valid_record_has_no_problems():
    assert record.problems(_record().to_dict()) == []


def test_problems_name_what_is_wrong():
    broken = _record().to_dict()
    broken["status"] = "weird"
    del broken["metrics"]["train_time_s"]
    found = record.problems(broken)
    assert "status 'weird' not in ('completed', 'failed')" in found
    assert "metrics lacks 'train_time_s'" in found
    assert record.problems({"run_id": "x"})[0] == "missing key 'status'"
    with_error = _record(error=ErrorInfo("X", "m")).to_dict()
    assert record.problems(with_error) == ["error must be set exactly when status is 'failed'"]


def test_a_broken_file_raises_a_record_error_listing_its_problems(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({**_record().to_dict(), "schema_version": 99}))
    with pytest.raises(record.RecordError, match="schema_version 99"):
        record.read(path)


def test_failed_record_from_an_exception():
    failed = _record(status=Status.failed, error=ErrorInfo.from_exception(ValueError("boom")))
    data = failed.to_dict()
    assert set(data["metrics"]) == {f.name for f in dataclasses.fields(Metrics)}
    assert data["error"] == {"type": "ValueError", "message": "boom"}


def test_a_version_1_record_written_by_an_earlier_bench_still_reads():
    """tests/data/record_v1.json was written by bench before metrics.phases existed."""
    path = Path(__file__).parent / "data" / "record_v1.json"
    assert json.loads(path.read_text())["schema_version"] == 1
    old = record.read(path)
    assert old.schema_version == 1 and old.completed
    assert old.metrics.phases == {} and old.metrics.epochs_trained is None
    assert old.metrics.best_val_accuracy is not None and len(old.history) == 1


def test_a_record_before_version_3_trained_at_the_batch_it_asked_for(tmp_path):
    from bench.analysis import load

    shutil.copy(Path(__file__).parent / "data" / "record_v1.json", tmp_path)
    runs = load.from_records(tmp_path).runs
    assert runs["effective_batch_size"].tolist() == runs["batch_size"].tolist()
    assert runs["effective_batch_size"].notna().all()


def test_a_version_3_record_keeps_its_phases_and_effective_batch(tmp_path):
    two = _record(
        metrics=Metrics(epochs_trained=3, phases={"head": record.PhaseMetrics(1, 2.0, 2.0, 50.0)})
    )
    two.effective_batch_size = 16
    again = record.read(record.write(two, tmp_path))
    assert again.metrics.phases["head"] == record.PhaseMetrics(1, 2.0, 2.0, 50.0)
    assert again.effective_batch_size == 16
    assert again.schema_version == record.SCHEMA_VERSION == 3


def test_every_record_field_gets_its_own_column_beside_the_config_keys(tmp_path):
    """The env's resolved settings share names with config keys (precision, input_cache...):
    the tidy frame keeps both, under distinct names."""
    from bench.analysis import load
    from tests.conftest import compose

    config = OmegaConf.to_container(compose(), resolve=False)
    config.pop("hydra", None)
    env = record.Env(precision="float32", jit_compile=False, steps_per_execution=1,
                     input_cache="memory")  # fmt: skip
    record.write(_record(config=config, env=env, effective_batch_size=32), tmp_path)
    runs = load.from_records(tmp_path).runs
    assert runs.columns.is_unique
    assert runs.loc[0, "input_cache_used"] == "memory" and runs.loc[0, "input_cache"] == "auto"
    assert runs.loc[0, "precision_used"] == "float32" and runs.loc[0, "precision"] == "auto"
