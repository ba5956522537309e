"""The record contract: atomic writes, schema checks."""

from __future__ import annotations

import json

from bench import records


def _record(**overrides):
    base = records.build(
        run_id="abc123def456",
        status="completed",
        started_at=records.now(),
        config={axis: None for axis in records.CONFIG_AXES},
        env={key: None for key in records.ENV_KEYS},
        metrics={"best_val_accuracy": 0.5},
        history=[{key: 1 for key in records.HISTORY_KEYS}],
        wandb={key: None for key in records.WANDB_KEYS},
    )
    return {**base, **overrides}


def test_written_record_reads_back_and_leaves_no_temp_files(tmp_path):
    record = _record()
    path = records.write(record, tmp_path / "runs")
    assert path.name == "abc123def456.json"
    assert records.read(path) == json.loads(json.dumps(record))
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [path.name]


def test_rewrite_replaces_the_record(tmp_path):
    records.write(_record(), tmp_path)
    path = records.write(_record(status="failed", error={"type": "X", "message": "y"}), tmp_path)
    assert records.read(path)["status"] == "failed"


def test_valid_record_has_no_problems():
    assert records.problems(_record()) == []


def test_problems_name_what_is_wrong():
    broken = _record(status="weird")
    del broken["metrics"]["train_time_s"]
    found = records.problems(broken)
    assert "status 'weird' not in ('completed', 'failed')" in found
    assert "metrics lacks 'train_time_s'" in found
    assert records.problems({"run_id": "x"})[0] == "missing key 'schema_version'"
    assert records.problems(_record(error={"type": "X", "message": "m"})) == [
        "error must be set exactly when status is 'failed'"
    ]


def test_failed_record_keeps_every_metric_key():
    record = records.build(
        run_id="r", status="failed", started_at=records.now(), config={}, env={}, metrics={},
        history=[], wandb={}, error=ValueError("boom"),
    )  # fmt: skip
    assert set(record["metrics"]) == set(records.METRIC_KEYS)
    assert record["error"] == {"type": "ValueError", "message": "boom"}
