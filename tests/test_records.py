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


GOLDEN = Path(__file__).parent / "data" / "golden"  # written by hand, one per schema version


def _golden(version: int) -> dict:
    return json.loads((GOLDEN / f"v{version}.json").read_text())


def test_the_writer_writes_the_documented_layout_key_for_key(tmp_path):
    """tests/data/golden/v6.json is the contract written out by hand (README, "What a run
    leaves behind"); a record with its values must be written as exactly that JSON."""
    expected = _golden(6)
    phase = record.PhaseMetrics(epochs=1, train_time_s=2.5, epoch_time_s=2.5,
                                train_images_per_s=640.0, first_epoch_time_s=2.5)  # fmt: skip
    written = Record(
        run_id="ffffffffffff", status=Status.completed,
        started_at="2026-11-30T08:00:00+00:00", finished_at="2026-11-30T08:01:00+00:00",
        config=expected["config"],
        env=record.Env(**expected["env"]),
        metrics=Metrics(best_val_accuracy=0.5, final_val_accuracy=0.5, test_accuracy=0.4375,
                        train_time_s=2.5, epoch_time_s=2.5, train_images_per_s=640.0,
                        peak_host_rss_bytes=1048576000, params_total=6580359,
                        params_trainable=5124, epochs_trained=1, phases={"train": phase}),
        history=[HistoryRow(epoch=1, phase="train", loss=1.3, accuracy=0.4, val_loss=1.2,
                            val_accuracy=0.5, lr=0.001, epoch_time_s=2.5)],
        wandb=record.WandbInfo(mode="disabled"),
        job={"num": 0, "total": 1, "group": None, "attempt": "att3"},
        effective_batch_size=16,
        feature_cache=record.FeatureCacheInfo(status="hit", key="0123456789abcdef",
                                              path="/runs/features/0123456789abcdef.npz"),
        model=record.ModelInfo(**expected["model"]),
        serving=record.ServingInfo(
            measured_at="2026-11-30T08:02:00+00:00", host_cpu="Intel(R) Xeon(R) CPU @ 2.20GHz",
            threads=[1, 2], batch=32, eval_split="test", eval_images=32, calibration_images=200,
            versions={"tensorflow": "2.21.0", "ai-edge-litert": "2.3.0"},
            formats={
                "saved_model": record.FormatResult(
                    "measured", path="/runs/models/ffffffffffff/saved_model",
                    size_bytes=27000000, accuracy=0.4375, correct=14,
                    latency={"2": record.Latency(9.5, 10.5, 12.0, 200)}, images_per_s=600.0,
                    max_abs_diff=0.0),
                "int8": record.FormatResult(
                    "measured", path="/runs/models/ffffffffffff/int8.tflite",
                    size_bytes=7000000, accuracy=0.40625, correct=13,
                    latency={"1": record.Latency(3.0, 3.5, 4.0, 200),
                             "2": record.Latency(2.0, 2.5, 3.0, 200)},
                    images_per_s=900.0, max_abs_diff=0.03),
                "float16": record.FormatResult(
                    "unsupported", reason="Could not translate MLIR to FlatBuffer"),
            },
        ),
        splits={"train": record.SplitInfo("train", 0.7, 0, 16284),
                "val": record.SplitInfo("train", 0.15, 0, 3489),
                "test": record.SplitInfo("train", 0.15, 0, 3489)},
    )  # fmt: skip
    assert json.loads(record.write(written, tmp_path).read_text()) == expected


def test_golden_records_of_every_version_read_with_their_values():
    v1, v2, v3, v4, v5, v6 = (record.Record.from_dict(_golden(v)) for v in range(1, 7))
    assert (v1.schema_version, v1.status, v1.metrics.best_val_accuracy) == (
        1,
        Status.completed,
        0.91,
    )
    assert v1.metrics.phases == {} and v1.metrics.epochs_trained is None
    assert (v1.attempts, v1.resumes, v1.job, v1.effective_batch_size) == (1, 0, {}, None)
    assert v1.feature_cache.status == "unused" and v1.env.precision is None
    assert [row.val_accuracy for row in v1.history] == [0.88, 0.91]
    assert v2.error == ErrorInfo("Interrupted", v2.error.message) and v2.resumes == 1
    assert v2.metrics.phases["head"] == record.PhaseMetrics(3, 900.0, 300.0, 250.0)
    assert v2.metrics.phases["finetune"].first_epoch_time_s is None  # added in version 3
    assert v2.skipped_files.first == ["roses/broken.jpg"] and v2.attempts == 2
    assert (v3.effective_batch_size, v3.feature_cache.status) == (16, "hit")
    assert (v3.env.precision, v3.env.input_cache, v3.env.workers) == ("float32", "memory", 1)
    assert v3.metrics.phases["train"].first_epoch_time_s == 2.5
    assert (v3.env.deterministic, v3.env.not_deterministic) == (None, [])  # added in version 4
    assert (v4.schema_version, v4.env.deterministic, v4.env.not_deterministic) == (4, True, [])
    assert v4.model == record.ModelInfo() and v4.serving is None  # added in version 5
    assert (v5.model.macs_per_image, v5.model.params) == (14000000, 6580359)
    int8 = v5.serving.formats["int8"]
    assert (int8.size_bytes, int8.latency["1"].p99_ms, int8.latency["2"].p50_ms) == (7e6, 4.0, 2.0)
    assert v5.serving.formats["float16"].status == "unsupported"
    assert v5.splits == {}  # added in version 6
    assert v6.splits["test"] == record.SplitInfo("train", 0.15, 0, 3489)
    assert v5.serving.figures() == {
        "serving.saved_model.size_bytes": 27000000, "serving.saved_model.accuracy": 0.4375,
        "serving.saved_model.threads": 2, "serving.saved_model.p50_ms": 9.5,
        "serving.saved_model.p99_ms": 12.0, "serving.saved_model.threads_all": 2,
        "serving.saved_model.p50_ms_all": 9.5, "serving.saved_model.images_per_s": 600.0,
        "serving.int8.size_bytes": 7000000, "serving.int8.accuracy": 0.40625,
        "serving.int8.threads": 1, "serving.int8.p50_ms": 3.0, "serving.int8.p99_ms": 4.0,
        "serving.int8.threads_all": 2, "serving.int8.p50_ms_all": 2.0,
        "serving.int8.images_per_s": 900.0,
        "serving.host_cpu": "Intel(R) Xeon(R) CPU @ 2.20GHz",
    }  # fmt: skip


def test_golden_records_of_every_version_aggregate_into_the_same_columns(tmp_path):
    from bench.analysis import load

    for version in range(1, 7):
        shutil.copy(GOLDEN / f"v{version}.json", tmp_path)
    runs = load.from_records(tmp_path).runs.set_index("run_id")
    assert runs.loc["0123456789ab", "backbone"] == "b0" and runs.loc["bbbbbbbbbbbb", "lr"] == 0.01
    # Before version 3 a run trained at the batch and precision it asked for.
    assert runs["effective_batch_size"].tolist() == [32, 64, 16, 16, 16, 16]
    assert runs["precision_used"].tolist() == ["float32", "mixed_float16", *["float32"] * 4]
    assert runs["deterministic_used"].isna().tolist() == [True, True, True, False, False, False]
    assert runs.loc["dddddddddddd", "deterministic_used"]  # bool(True): numbers stay numbers
    assert runs.loc["bbbbbbbbbbbb", "error_type"] == "Interrupted"
    assert runs.loc["cccccccccccc", "phases.train.first_epoch_time_s"] == 2.5
    # Serving as its figures, one column each; runs never served have none.
    assert runs.loc["eeeeeeeeeeee", "serving.int8.p50_ms"] == 3.0
    assert runs["serving.int8.size_bytes"].isna().tolist() == [True] * 4 + [False, False]
    # The split behind each role, one column per field; older records have none.
    assert runs.loc["ffffffffffff", "splits.test.examples"] == 3489
    assert runs["splits.test.share"].isna().tolist() == [True] * 5 + [False]
    assert runs.loc["eeeeeeeeeeee", "model.macs_per_image"] == 14000000
    assert not any(c.startswith("serving.formats.") for c in runs.columns)


def test_a_version_1_record_written_by_an_earlier_bench_still_reads():
    """tests/data/record_v1.json was written by bench before metrics.phases existed."""
    path = Path(__file__).parent / "data" / "record_v1.json"
    assert json.loads(path.read_text())["schema_version"] == 1
    old = record.read(path)
    assert old.schema_version == 1 and old.completed
    assert old.metrics.phases == {} and old.metrics.epochs_trained is None
    assert old.metrics.best_val_accuracy is not None and len(old.history) == 1


def test_every_record_field_gets_its_own_column_beside_the_config_keys(tmp_path):
    """The env's resolved settings share names with config keys (precision, input_cache...):
    the tidy frame keeps both, under distinct names."""
    from bench.analysis import load
    from tests.helpers import compose

    config = OmegaConf.to_container(compose(), resolve=False)
    config.pop("hydra", None)
    env = record.Env(precision="float32", jit_compile=False, steps_per_execution=1,
                     input_cache="memory")  # fmt: skip
    record.write(_record(config=config, env=env, effective_batch_size=32), tmp_path)
    runs = load.from_records(tmp_path).runs
    assert runs.columns.is_unique
    assert runs.loc[0, "input_cache_used"] == "memory" and runs.loc[0, "input_cache"] == "auto"
    assert runs.loc[0, "precision_used"] == "float32" and runs.loc[0, "precision"] == "auto"
