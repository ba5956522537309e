"""W&B as its users see it: what reached the offline run files, ids, sweeps, no secrets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from bench.core import wandb_mode
from bench.launch import sweep as sweep_files
from tests.helpers import ROOT, make_spec
from tests.shared_runs import MARKER
from tests.wandb_files import read_run, records


def _close(a, b) -> bool:
    return math.isclose(a, b, rel_tol=1e-6) if isinstance(a, float) else a == b


@pytest.mark.slow
def test_each_job_makes_one_run_whose_id_is_its_record(sweep):
    found = sweep.multirun
    assert len({r["run_id"] for r in found}) == 4
    for record in found:
        assert record["wandb"]["id"] == record["run_id"]
        assert read_run(Path(record["wandb"]["dir"]))["run"].run_id == record["run_id"]


@pytest.mark.slow
def test_what_reached_wandb_matches_the_record(sweep):
    for record in sweep.multirun:
        run = read_run(Path(record["wandb"]["dir"]))
        meta, config = run["run"], run["config"]
        backbone = record["config"]["backbone"]["name"]
        assert meta.display_name == f"{backbone}-shapes-unfrozen-adam-bs32"
        assert meta.run_group == record["job"]["group"] and meta.run_group
        assert set(meta.tags) == {"mine", "demo"}
        assert config["backbone"]["name"] == backbone
        assert config["seed"] == record["config"]["seed"]
        assert config["dataset"]["num_classes"] == 4
        assert config["run_id"] == record["run_id"]
        assert [row["epoch"] for row in run["history"]] == [1, 2]
        for logged, kept in zip(run["history"], record["history"], strict=True):
            for key, value in kept.items():
                assert _close(logged[key], value), key
        for key, value in record["metrics"].items():
            if value is not None:
                assert _close(run["summary"][key], value), key
        assert run["summary"]["status"] == "completed"
        # The summary keeps the last epoch's: the tested weights', never a maximum over epochs.
        assert _close(run["summary"]["val_accuracy"], record["metrics"]["final_val_accuracy"])


@pytest.mark.slow
def test_the_record_is_attached_to_its_run(sweep):
    for record in sweep.multirun:
        (path,) = Path(record["wandb"]["dir"]).glob("run-*.wandb")
        (artifact,) = [
            r.artifact for r in records(path) if r.WhichOneof("record_type") == "artifact"
        ]
        assert artifact.name == f"record-{record['run_id']}"
        assert artifact.type == "result-record"


@pytest.mark.slow
def test_the_comparison_table_is_logged(sweep):
    group = sweep.multirun[0]["job"]["group"]
    summaries = []
    for run_file in (sweep.root / "wandb").glob("offline-run-*/run-*.wandb"):
        run = read_run(run_file.parent)
        if run["run"].job_type == "summary":
            summaries.append((run_file.parent, run))
    ((run_dir, summary),) = summaries
    assert summary["run"].run_group == group
    (row,) = summary["history"]
    assert row["comparison/_type"] == "table-file" and row["comparison/nrows"] == 4
    table = json.loads((run_dir / "files" / row["comparison/path"]).read_text())
    column = table["columns"].index("run_id")
    assert sorted(r[column] for r in table["data"]) == sorted(r["run_id"] for r in sweep.multirun)
    assert "wandb sync" in sweep.proc.stdout


@pytest.mark.slow
def test_the_api_key_is_written_nowhere(sweep):
    """The sweep ran with a W&B API key in its environment (the command's and the two
    in-process runs'): not a byte of it in any file it left, nor in its output."""
    assert MARKER not in sweep.proc.stdout + sweep.proc.stderr
    files = [p for p in sweep.root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in files) and any(p.suffix == ".json" for p in files)
    leaked = [p for p in files if MARKER.encode() in p.read_bytes()]
    assert leaked == []


@pytest.mark.slow
def test_a_sweep_agents_run_keeps_the_agents_id(tmp_path, tiny, tfds_dir, monkeypatch):
    """Under ``wandb agent`` the agent owns the run: it sets the sweep and the run id, the
    record says which W&B run it was, and the run's config carries the whole nested config
    for readers (the agent flattens its parameters)."""
    from bench.pipeline.execute import execute

    monkeypatch.setenv("WANDB_SWEEP_ID", "sweep123")
    monkeypatch.setenv("WANDB_RUN_ID", "agentrun01")
    spec = make_spec(*tiny, "wandb.mode=offline", f"results_dir={tmp_path}", tfds_dir=tfds_dir)
    done = execute(spec)
    assert done.completed and done.wandb.id == "agentrun01" != done.run_id
    logged = read_run(Path(done.wandb.dir))
    assert logged["run"].run_id == "agentrun01" and logged["config"]["run_id"] == done.run_id
    nested = logged["config"]["bench_config"]
    assert nested["backbone"]["hub_handle"] == spec.cfg.backbone.hub_handle


@pytest.mark.parametrize("path", sorted((ROOT / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_every_sweep_file_composes_and_runs_bench(path):
    spec = yaml.safe_load(path.read_text())
    assert spec["command"][2:4] == ["-m", "bench.run"]
    assert sweep_files.problems(spec) == []


def test_a_broken_sweep_file_is_caught(tmp_path):
    broken = {
        "method": "grid",
        "metric": {"name": "val_accuracy"},
        "command": ["python", "train.py"],
        "parameters": {"backbone": {"values": ["b0", "b9"]}, "optimizer.lrr": {"value": 0.1}},
    }
    found = sweep_files.problems(broken)
    assert any(p.startswith("command must be") for p in found)
    assert any("backbone=b9" in p for p in found)
    assert any("optimizer.lrr" in p for p in found)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    assert sweep_files.main([str(path), "--check"]) == 2


def test_mode_auto_follows_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert wandb_mode.resolve_mode("auto") == "offline"
    (tmp_path / "netrc").write_text("machine api.wandb.ai login user password secret\n")
    (tmp_path / "netrc").chmod(0o600)
    assert wandb_mode.resolve_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode.resolve_mode("auto") == "disabled"
    assert wandb_mode.resolve_mode("offline") == "offline"
