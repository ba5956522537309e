"""W&B as its users see it: what reached the offline run files, ids, sweeps, no secrets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from bench.core import wandb_mode
from bench.launch import sweep
from tests.conftest import ROOT, TINY, bench_run, load_records
from tests.wandb_files import read_run, records

MARKER = "bench-test-api-key-marker-0123456789abcdef"


@pytest.fixture(scope="module")
def multirun(tmp_path_factory, tfds_dir):
    """A real three-job multirun, offline, with a W&B API key in the environment."""
    tmp = tmp_path_factory.mktemp("multirun")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_API_KEY", MARKER)
        patch.setenv("WANDB_DIR", str(tmp))
        args = ["-m", "seed=1,2,3", "backbone=mobilenet_v2", "epochs=2", *TINY]
        # The preset tags itself [demo]; replacing that list shows the tracker adds the name.
        args += ["experiment=demo", "image_size=32", "wandb.tags=[mine]"]
        proc = bench_run(tmp, tfds_dir, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, proc, load_records(tmp)


def _close(a, b) -> bool:
    return math.isclose(a, b, rel_tol=1e-6) if isinstance(a, float) else a == b


@pytest.mark.slow
def test_three_jobs_make_three_runs_whose_ids_are_their_records(multirun):
    _, _, found = multirun
    assert len({r["run_id"] for r in found}) == 3
    for record in found:
        assert record["wandb"]["id"] == record["run_id"]
        assert read_run(Path(record["wandb"]["dir"]))["run"].run_id == record["run_id"]


@pytest.mark.slow
def test_what_reached_wandb_matches_the_record(multirun):
    for record in multirun[2]:
        run = read_run(Path(record["wandb"]["dir"]))
        meta, config = run["run"], run["config"]
        assert meta.display_name == "mobilenet_v2-shapes-unfrozen-adam-bs32"
        assert meta.run_group == record["job"]["group"] and meta.run_group
        assert set(meta.tags) == {"mine", "demo"}
        assert config["backbone"]["name"] == "mobilenet_v2"
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
        assert run["summary"]["val_accuracy"]["max"] == record["metrics"]["best_val_accuracy"]


@pytest.mark.slow
def test_the_record_is_attached_to_its_run(multirun):
    for record in multirun[2]:
        (path,) = Path(record["wandb"]["dir"]).glob("run-*.wandb")
        kinds = [r.WhichOneof("record_type") for r in records(path)]
        assert "artifact" in kinds
        (artifact,) = [
            r.artifact for r in records(path) if r.WhichOneof("record_type") == "artifact"
        ]
        assert artifact.name == f"record-{record['run_id']}"
        assert artifact.type == "result-record"


@pytest.mark.slow
def test_the_comparison_table_is_logged(multirun):
    tmp, proc, found = multirun
    group = found[0]["job"]["group"]
    summaries = []
    for run_file in (tmp / "wandb").glob("offline-run-*/run-*.wandb"):
        run = read_run(run_file.parent)
        if run["run"].job_type == "summary":
            summaries.append((run_file.parent, run))
    ((run_dir, summary),) = summaries
    assert summary["run"].run_group == group
    (row,) = summary["history"]
    assert row["comparison/_type"] == "table-file" and row["comparison/nrows"] == 3
    table = json.loads((run_dir / "files" / row["comparison/path"]).read_text())
    column = table["columns"].index("run_id")
    assert sorted(r[column] for r in table["data"]) == sorted(r["run_id"] for r in found)
    assert "wandb sync" in proc.stdout


@pytest.mark.slow
def test_a_rerun_resumes_the_same_wandb_run(multirun, tfds_dir):
    tmp, _, found = multirun
    first = next(r for r in found if r["config"]["seed"] == 1)
    args = ["seed=1", "backbone=mobilenet_v2", "epochs=2", *TINY, "experiment=demo"]
    proc = bench_run(tmp, tfds_dir, *args, "image_size=32", "force=true")  # else: skipped
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = next(r for r in load_records(tmp) if r["config"]["seed"] == 1)
    assert again["run_id"] == first["run_id"] == again["wandb"]["id"]
    assert again["job"]["attempt"] != first["job"]["attempt"]
    assert read_run(Path(again["wandb"]["dir"]))["run"].run_id == first["run_id"]


@pytest.mark.slow
def test_the_api_key_is_written_nowhere(multirun):
    tmp, proc, _ = multirun
    assert MARKER not in proc.stdout + proc.stderr
    files = [p for p in tmp.rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in files) and any(p.suffix == ".json" for p in files)
    leaked = [p for p in files if MARKER.encode() in p.read_bytes()]
    assert leaked == []


@pytest.mark.parametrize("path", sorted((ROOT / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_every_sweep_file_composes_and_runs_bench(path):
    spec = yaml.safe_load(path.read_text())
    assert spec["command"][2:4] == ["-m", "bench.run"]
    assert sweep.problems(spec) == []


def test_a_broken_sweep_file_is_caught(tmp_path):
    broken = {
        "method": "grid",
        "metric": {"name": "val_accuracy"},
        "command": ["python", "train.py"],
        "parameters": {"backbone": {"values": ["b0", "b9"]}, "optimizer.lrr": {"value": 0.1}},
    }
    found = sweep.problems(broken)
    assert any(p.startswith("command must be") for p in found)
    assert any("backbone=b9" in p for p in found)
    assert any("optimizer.lrr" in p for p in found)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    assert sweep.main([str(path), "--check"]) == 2


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
