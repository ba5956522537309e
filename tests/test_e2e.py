"""End to end: the real command in a subprocess, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench.core import record as records
from tests.conftest import TINY, bench_env, bench_run, load_records, make_spec, options

pytestmark = pytest.mark.slow


def test_multirun_of_two_backbones_writes_two_complete_records(tmp_path, tfds_dir):
    proc = bench_run(tmp_path, tfds_dir, "-m", "backbone=b0,mobilenet_v2", "epochs=2", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = load_records(tmp_path)
    assert sorted(r["config"]["backbone"]["name"] for r in found) == ["b0", "mobilenet_v2"]
    for record in found:
        assert records.problems(record) == []
        assert record["status"] == "completed" and record["error"] is None
        assert [row["epoch"] for row in record["history"]] == [1, 2]
        assert record["config"]["dataset"]["num_classes"] == 4
        assert record["config"]["image_size"] == 32
        metrics = record["metrics"]
        assert 0.0 <= metrics["best_val_accuracy"] <= 1.0
        assert metrics["test_accuracy"] is not None
        assert (
            metrics["train_time_s"] >= sum(row["epoch_time_s"] for row in record["history"]) * 0.99
        )
        assert metrics["peak_device_memory_bytes"] is None  # CPU only here
        assert metrics["params_trainable"] > 1_000_000
        (phase,) = metrics["phases"].values()  # the first epoch (tracing, cache fill) apart
        assert phase["first_epoch_time_s"] == record["history"][0]["epoch_time_s"] > 0
        assert record["env"]["strategy"] == "DefaultStrategy"
        # What the auto settings resolved to on a CPU: no mixed precision, no XLA.
        assert record["config"]["precision"] == "auto" and record["config"]["jit_compile"] == "auto"
        assert record["env"]["precision"] == "float32" and record["env"]["jit_compile"] is False
        assert record["env"]["steps_per_execution"] == 1
        assert record["wandb"]["mode"] == "offline" and record["wandb"]["id"] == record["run_id"]
        assert list(Path(record["wandb"]["dir"]).glob("run-*.wandb"))
    assert "[bench] job 1/2: b0" in proc.stdout and "[bench] job 2/2: mobilenet_v2" in proc.stdout
    assert "2 jobs: 2 completed, 0 failed" in proc.stdout
    assert "Epoch 2/2" in proc.stdout
    # The final table has a row per job, with the record's run_id.
    for record in found:
        assert record["run_id"] in proc.stdout.split("2 jobs:")[1]


def test_each_job_measures_only_itself(tmp_path, tfds_dir):
    """A heavy job then a light one: isolated, the light one keeps its own, lower peak."""
    sweep = ["-m", "backbone=b3,b0", "image_size=null", "epochs=1", *TINY[:2], "freeze=frozen"]
    sweep += ["dataset.train_split='train[:64]'", "dataset.val_split='validation[:32]'"]
    sweep += ["dataset.test_split=null", "batch_size=32", "wandb.mode=disabled"]
    proc = bench_run(tmp_path, tfds_dir, *sweep)
    assert proc.returncode == 0, proc.stderr[-3000:]
    by_backbone = {r["config"]["backbone"]["name"]: r for r in load_records(tmp_path)}
    heavy, light = by_backbone["b3"], by_backbone["b0"]
    assert (heavy["config"]["image_size"], light["config"]["image_size"]) == (300, 224)
    heavy_rss = heavy["metrics"]["peak_host_rss_bytes"]
    light_rss = light["metrics"]["peak_host_rss_bytes"]
    assert heavy["env"]["pid"] != light["env"]["pid"]
    assert light_rss < heavy_rss


def test_a_failed_job_does_not_stop_the_sweep(tmp_path, tfds_dir):
    """ImageNet weights cannot be downloaded here: that job fails, the other completes."""
    proc = bench_run(
        tmp_path, tfds_dir, "-m", "backbone.weights=imagenet,none", "epochs=1", *TINY[2:-1],
        "dataset=shapes", "backbone=b0", "wandb.mode=disabled",
    )  # fmt: skip
    assert proc.returncode != 0
    found = {r["config"]["backbone"]["weights"]: r for r in load_records(tmp_path)}
    assert found["none"]["status"] == "completed"
    failed = found["imagenet"]
    assert failed["status"] == "failed" and records.problems(failed) == []
    assert failed["error"]["type"] == "WeightsUnavailable"
    assert "efficientnetb0_notop.h5" in failed["error"]["message"]
    assert failed["history"] == []
    assert "2 jobs: 1 completed, 1 failed" in proc.stdout


def test_a_killed_worker_leaves_a_failed_record(tmp_path, tfds_dir):
    command = [sys.executable, "-m", "bench.run", "epochs=50", *TINY, "wandb.mode=disabled"]
    command.append(f"results_dir={tmp_path / 'runs'}")
    parent = subprocess.Popen(
        command, cwd=tmp_path, env=bench_env(tmp_path, tfds_dir), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    worker = None
    for line in parent.stdout:  # wait until the worker is training
        if "Epoch 2/50" in line:
            worker = psutil.Process(parent.pid).children()[0]
            break
    assert worker is not None and "bench.worker" in " ".join(worker.cmdline())
    worker.kill()
    parent.stdout.read()
    assert parent.wait(timeout=120) != 0
    (record,) = load_records(tmp_path)
    assert record["status"] == "failed" and records.problems(record) == []
    assert record["error"]["type"] == "WorkerDied"
    assert "SIGKILL" in record["error"]["message"]


def test_demo_preset_runs_offline(tmp_path, tfds_dir):
    start = time.perf_counter()
    proc = bench_run(tmp_path, tfds_dir, "experiment=demo", "backbone=mobilenet_v2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (record,) = load_records(tmp_path)
    assert record["config"]["experiment"] == "demo"
    assert record["history"][-1]["accuracy"] >= 0.5  # twice chance on 4 classes
    assert record["metrics"]["best_val_accuracy"] > 0.35  # BatchNorm statistics keep up
    print(json.dumps({"demo_mobilenet_v2_seconds": time.perf_counter() - start}))


# The demo preset already runs on shapes, end to end, in test_demo_preset_runs_offline.
@pytest.mark.parametrize("preset", [p for p in options("experiment") if p != "demo"])
def test_every_preset_runs_end_to_end_on_shapes(tmp_path, tfds_dir, hub_dir, preset):
    """Each preset with only the downloads swapped out: shapes, one epoch per phase."""
    cfg = make_spec(f"experiment={preset}").cfg
    keep = ("backbone.weights", "freeze=", "head=")  # the preset's own freeze and head stay
    args = [f"experiment={preset}", "epochs=1", *(a for a in TINY if not a.startswith(keep))]
    if cfg.backbone.source.value == "hub":  # keep the hub path, from a local SavedModel
        args.append(f"backbone.hub_handle={hub_dir}")
    else:
        args.append("backbone.weights=none")
    if cfg.freeze.head_epochs:
        args.append("freeze.head_epochs=1")
    proc = bench_run(tmp_path, tfds_dir, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (record,) = load_records(tmp_path)
    assert records.problems(record) == [] and record["status"] == "completed"
    assert record["config"]["experiment"] == preset
    phases = ["head", "finetune"] if cfg.freeze.head_epochs else ["train"]
    assert [row["phase"] for row in record["history"]] == phases
    assert [row["epoch"] for row in record["history"]] == list(range(1, len(phases) + 1))


def test_a_killed_rerun_does_not_report_the_earlier_completed_record_as_its_own(tmp_path, tfds_dir):
    """The launcher reads back only the record its own worker wrote (the attempt id), and
    the completed record survives the killed forced rerun."""
    args = ["epochs=2", *TINY, "wandb.mode=disabled"]
    first = bench_run(tmp_path, tfds_dir, *args)
    assert first.returncode == 0, first.stderr[-2000:]
    (done,) = load_records(tmp_path)
    assert done["status"] == "completed"
    command = [sys.executable, "-m", "bench.run", *args, "force=true"]
    command.append(f"results_dir={tmp_path / 'runs'}")
    parent = subprocess.Popen(
        command, cwd=tmp_path, env=bench_env(tmp_path, tfds_dir), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    for line in parent.stdout:
        if "Epoch 1/2" in line:
            psutil.Process(parent.pid).children()[0].kill()
            break
    rest = parent.stdout.read()
    assert parent.wait(timeout=120) != 0
    assert "job 1 failed" in rest and "job 1 completed" not in rest
    assert "WorkerDied" in rest
    (kept,) = load_records(tmp_path)
    assert kept["status"] == "completed" and kept["job"]["attempt"] == done["job"]["attempt"]
