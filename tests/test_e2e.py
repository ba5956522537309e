"""End to end: the multirun a user starts first, read back from the session's sweep
(tests/shared_runs.py), and the demo preset learning what the README says it learns."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.core import record as records
from tests.helpers import make_spec

pytestmark = pytest.mark.slow

# Keras' published sizes without the top (tf_keras.applications, include_top=False) and
# the non-trainable part of each (BatchNorm's moving statistics; EfficientNet's input
# Normalization layer's mean, variance and count): EfficientNetB0 5,330,571 parameters
# with its top, 42,023 of them non-trainable; MobileNetV2 3,538,984, 34,112 non-trainable.
NOTOP = {"b0": (4_049_571, 42_023), "mobilenet_v2": (2_257_984, 34_112)}
FEATURES = {"b0": 1280, "mobilenet_v2": 1280}  # the pooled feature vector's width
CLASSES, TEST_IMAGES = 4, 32  # shapes, 'test[:32]'


def test_a_multirun_of_two_backbones_by_two_seeds_writes_four_complete_records(sweep):
    found = sweep.multirun
    assert (
        sorted(r["config"]["backbone"]["name"] for r in found) == ["b0"] * 2 + ["mobilenet_v2"] * 2
    )
    for record in found:
        name = record["config"]["backbone"]["name"]
        assert records.problems(record) == []
        assert record["status"] == "completed" and record["error"] is None
        assert [row["epoch"] for row in record["history"]] == [1, 2]
        assert record["config"]["dataset"]["num_classes"] == CLASSES
        assert record["config"]["image_size"] == 32 and record["config"]["experiment"] == "demo"
        metrics = record["metrics"]
        assert 0.0 <= metrics["best_val_accuracy"] <= 1.0
        # Accuracy on 32 test images is a count of them over 32.
        correct = metrics["test_accuracy"] * TEST_IMAGES
        assert 0 <= correct <= TEST_IMAGES and math.isclose(correct, round(correct), abs_tol=1e-4)
        assert (
            metrics["train_time_s"] >= sum(row["epoch_time_s"] for row in record["history"]) * 0.99
        )
        assert metrics["peak_device_memory_bytes"] is None  # CPU only here
        # The demo's linear head has no dropout: one Dense(4) on the pooled features.
        total, frozen = NOTOP[name]
        head = FEATURES[name] * CLASSES + CLASSES
        assert (metrics["params_total"], metrics["params_trainable"]) == (
            total + head,
            total - frozen + head,
        )
        (phase,) = metrics["phases"].values()  # the first epoch (tracing, cache fill) apart
        assert phase["first_epoch_time_s"] == record["history"][0]["epoch_time_s"] > 0
        assert record["env"]["strategy"] == "DefaultStrategy"
        # What the auto settings resolved to on a CPU: no mixed precision, no XLA.
        assert record["config"]["precision"] == "auto" and record["config"]["jit_compile"] == "auto"
        assert record["env"]["precision"] == "float32" and record["env"]["jit_compile"] is False
        assert record["env"]["steps_per_execution"] == 1
        assert record["wandb"]["mode"] == "offline" and record["wandb"]["id"] == record["run_id"]
        assert list(Path(record["wandb"]["dir"]).glob("run-*.wandb"))
    out = sweep.proc.stdout
    assert "[bench] job 1/4: b0" in out and "[bench] job 3/4: mobilenet_v2" in out
    assert "4 jobs: 4 completed, 0 failed" in out
    assert "Epoch 2/2" in out
    # The final table has a row per job, with the record's run_id.
    for record in found:
        assert record["run_id"] in out.split("4 jobs:")[1]


def test_each_job_measures_only_itself(sweep):
    """B0's jobs ran first: isolated, each MobileNetV2 job after them keeps its own, lower
    peak (in one process the lifetime peak would carry over)."""
    by_backbone: dict[str, list[dict]] = {}
    for record in sorted(sweep.multirun, key=lambda r: r["job"]["num"]):
        by_backbone.setdefault(record["config"]["backbone"]["name"], []).append(record)
    heavy, light = by_backbone["b0"], by_backbone["mobilenet_v2"]
    assert max(r["job"]["num"] for r in heavy) < min(r["job"]["num"] for r in light)
    assert len({r["env"]["pid"] for r in sweep.multirun}) == 4
    lightest_heavy = min(r["metrics"]["peak_host_rss_bytes"] for r in heavy)
    assert all(r["metrics"]["peak_host_rss_bytes"] < lightest_heavy for r in light)


def test_the_demo_preset_learns(tmp_path, tfds_dir):
    """The README's demo, for one backbone: three epochs from random weights on shapes
    learn well above chance (0.25), and validation, which runs BatchNorm in inference mode,
    keeps up (the preset's BatchNorm momentum)."""
    from bench.pipeline.execute import execute

    spec = make_spec("experiment=demo", "backbone=mobilenet_v2", f"results_dir={tmp_path}",
                     "wandb.mode=disabled", tfds_dir=tfds_dir)  # fmt: skip
    done = execute(spec)
    assert done.completed and [row.epoch for row in done.history] == list(range(1, 4))
    # Chance is 0.25 on 4 classes; this run (deterministic on a CPU) ends at 0.41 and 0.41.
    assert done.history[-1].accuracy > 0.35
    assert done.metrics.final_val_accuracy > 0.35
