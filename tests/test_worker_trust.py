"""The worker's figures are what they claim: frozen means inference mode, phases are kept
apart, formulas are the documented ones, and every failure leaves a record that says why."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from bench.core.record import HistoryRow, PhaseMetrics
from bench.core.schema import Policy
from bench.pipeline import freeze, measure, model, train
from bench.pipeline.execute import execute
from bench.pipeline.outcome import metrics
from tests.helpers import make_spec


def _calibrated_b0(drop_connect_rate: float = 0.8):
    """B0 with a strong stochastic depth and BatchNorm statistics that match real inputs.

    With weights=None and untouched moving statistics a random EfficientNet's features vanish
    in inference mode (docs/architecture.md), which would make any comparison pass.
    """
    spec = make_spec(
        "backbone=b0", "backbone.weights=none", "image_size=32", "head=linear",
        f"backbone.drop_connect_rate={drop_connect_rate}", "backbone.bn_momentum=0.0",
    )  # fmt: skip
    built = model.build(spec, num_classes=4)
    images = tf.random.stateless_uniform((8, 32, 32, 3), seed=(1, 2), maxval=255.0)
    built.backbone(images, training=True)  # momentum 0: moving statistics := this batch's
    features = keras.Model(built.model.input, built.model.get_layer("backbone").output)
    return built, features, images


def test_a_frozen_efficientnet_gives_the_same_features_in_training_and_inference_calls():
    built, features, images = _calibrated_b0()
    freeze.apply(built.backbone, Policy.frozen)
    np.testing.assert_allclose(
        features(images, training=True).numpy(), features(images, training=False).numpy()
    )


def test_an_unfrozen_efficientnet_does_drop_paths_in_training_calls():
    """The control: the check above can fail, because stochastic depth is really there."""
    built, features, images = _calibrated_b0()
    freeze.apply(built.backbone, Policy.finetune)  # BatchNorm frozen, drop layers active
    train_call, infer_call = features(images, training=True), features(images, training=False)
    assert not np.allclose(train_call.numpy(), infer_call.numpy(), atol=1e-3)


@pytest.mark.slow
def test_a_two_phase_run_trains_its_head_on_a_frozen_backbone_then_fine_tunes_it(tfds_dir):
    """At the end of each epoch, inside fit. Head phase: the backbone's weights do not move
    and its features are deterministic (inference mode, though stochastic depth is strong);
    fine-tune phase: its weights move, its features are not (stochastic depth trains, so the
    check can fail), and BatchNorm stays frozen. Each phase starts at its own rate."""
    from bench.pipeline import data

    spec = make_spec(
        "dataset=shapes", "backbone=b0", "backbone.weights=none", "image_size=32",
        "freeze=two_phase", "freeze.head_epochs=1", "epochs=1", "head=linear",
        "backbone.drop_connect_rate=0.8", "freeze.policy=finetune",
        "dataset.train_split='train[:32]'", "dataset.val_split='validation[:32]'",
        "dataset.test_split=null", tfds_dir=tfds_dir,
    )  # fmt: skip
    loaded = data.load(spec)
    built = model.build(spec, loaded.num_classes)
    images = next(iter(loaded.val))[0]
    built.backbone(images, training=True)  # moving statistics from real inputs
    wrapper = built.model.get_layer("backbone")
    kernel = built.backbone.get_layer("block7a_project_conv").kernel
    kernels, same, traces = [kernel.numpy().copy()], {}, {}

    def on_epoch(row):
        kernels.append(kernel.numpy().copy())
        traces[row.phase] = built.model.train_function.experimental_get_tracing_count()
        train_call, infer_call = wrapper(images, training=True), wrapper(images, training=False)
        same[row.phase] = bool(np.allclose(train_call.numpy(), infer_call.numpy(), atol=1e-5))

    training = train.Training(built, loaded, spec, tf.distribute.get_strategy(), spec.plan.phases,
                              on_epoch=on_epoch)  # fmt: skip
    result = train.run(training)
    assert same == {"head": True, "finetune": False}
    # Each phase's step traced once: its variables were created before fit (a tf.function
    # that creates variables in its first call is traced twice).
    assert traces == {"head": 1, "finetune": 1}
    assert [(r.epoch, r.phase) for r in result.history] == [(1, "head"), (2, "finetune")]
    assert (result.phases["head"].epochs, result.phases["finetune"].epochs) == (1, 1)
    assert np.array_equal(kernels[0], kernels[1])  # frozen during the head phase
    assert not np.array_equal(kernels[1], kernels[2])  # updated once unfrozen
    assert [r.lr for r in result.history] == pytest.approx([1e-3, 1e-4])  # lr, then lr / 10
    assert not built.backbone.get_layer("block7a_project_bn").trainable  # finetune keeps BN


def _rows(times, train_parts, val_accuracies, phase="train", first=1):
    recorder = measure.EpochRecorder(phase)
    for i, (t, part, val) in enumerate(zip(times, train_parts, val_accuracies, strict=True)):
        recorder.rows.append(
            HistoryRow(epoch=first + i, phase=phase, loss=1.0, val_accuracy=val, epoch_time_s=t)
        )
        recorder.train_seconds.append(part)
    return recorder


def test_the_documented_formulas_on_a_made_up_history():
    head = _rows([30.0, 10.0, 12.0], [28.0, 8.0, 9.0], [0.5, 0.6, 0.55], "head")
    tune = _rows([50.0, 20.0, 22.0, 21.0], [45.0, 16.0, 18.0, 17.0], [0.6, 0.8, 0.7, 0.75],
                 "finetune", first=4)  # fmt: skip
    result = train.TrainResult(history=head.rows + tune.rows, train_time_s=190.0)
    result.phases = {
        "head": head.phase_metrics(train_examples=1600, wall_s=52.0),
        "finetune": tune.phase_metrics(train_examples=1600, wall_s=113.0),
    }
    # Per phase: median epoch, images over the median training part after the first epoch,
    # and the first epoch (tracing, input cache fill) on its own.
    head_rate = 1600 / statistics.median([8, 9])
    assert result.phases["head"] == PhaseMetrics(3, 52.0, 12.0, head_rate, 30.0)
    assert result.phases["finetune"] == PhaseMetrics(4, 113.0, 21.5, 1600 / 17.0, 50.0)
    found = metrics(result, facts=None)
    assert found.best_val_accuracy == 0.8 and found.final_val_accuracy == 0.75
    assert found.epochs_trained == 7 and found.train_time_s == 190.0
    # The run's headline figures are the last phase's, never a blend of both.
    assert found.epoch_time_s == 21.5 and found.train_images_per_s == 1600 / 17.0


def test_a_single_epoch_phase_counts_its_only_epoch():
    one = _rows([30.0], [25.0], [0.5])
    assert one.phase_metrics(train_examples=100, wall_s=31.0).train_images_per_s == 100 / 25.0


@pytest.mark.slow
def test_a_diverging_run_leaves_a_failed_record_naming_the_epoch(tmp_path, tfds_dir, tiny):
    """Head epoch at a sane rate, then a fine-tune rate no network survives."""
    spec = make_spec(
        *tiny, "freeze=two_phase", "freeze.policy=unfrozen", "freeze.head_epochs=1", "epochs=2",
        "optimizer=adam", "freeze.finetune_lr=1e38", f"results_dir={tmp_path}",
        tfds_dir=tfds_dir,
    )  # fmt: skip
    returned = execute(spec)
    data = json.loads(spec.record_path.read_text())
    assert returned.status.value == data["status"] == "failed"
    assert data["error"]["type"] == "Diverged"
    assert "epoch 2 (phase finetune)" in data["error"]["message"]
    assert [row["epoch"] for row in data["history"]] == [1, 2]
    assert data["history"][0]["loss"] is not None and data["history"][1]["loss"] is None
    assert data["metrics"]["phases"]["head"]["epochs"] == 1


def _unreachable_server(monkeypatch) -> None:
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)  # credentials present...
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # ...server refuses
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "5")


@pytest.mark.slow
def test_wandb_that_cannot_start_online_in_auto_mode_goes_on_offline(
    tmp_path, tfds_dir, tiny, monkeypatch, capsys
):
    """After another run in the same process, too: W&B keeps the settings of a process's
    first run (here offline, with the default server and its 90 s init timeout), so each
    run's W&B session must be its own for this one to ask the server its environment
    names, and give up after the 5 s it allows."""
    first = make_spec(*tiny, "wandb.mode=offline", f"results_dir={tmp_path / 'a'}", "seed=2",
                      tfds_dir=tfds_dir)  # fmt: skip
    assert execute(first).wandb.mode == "offline"
    _unreachable_server(monkeypatch)
    spec = make_spec(*tiny, "wandb.mode=auto", f"results_dir={tmp_path / 'b'}", tfds_dir=tfds_dir)
    record = execute(spec)
    assert record.completed and record.wandb.mode == "offline"
    assert list(Path(record.wandb.dir).glob("run-*.wandb"))
    said = capsys.readouterr().out
    assert "W&B could not start online" in said and "going on offline" in said
    attempt = said.split("W&B could not start online")[1].split("going on offline")[0]
    assert "http://127.0.0.1:9" in attempt


def test_wandb_online_that_cannot_start_leaves_a_failed_record(
    tmp_path, tfds_dir, tiny, monkeypatch
):
    _unreachable_server(monkeypatch)
    spec = make_spec(*tiny, "wandb.mode=online", f"results_dir={tmp_path}", tfds_dir=tfds_dir)
    record = execute(spec)
    data = json.loads(spec.record_path.read_text())
    assert not record.completed and data["status"] == "failed" and data["history"] == []
    assert data["error"]["type"] == "CommError"  # W&B's own, naming the server it tried
    assert "http://127.0.0.1:9" in data["error"]["message"]


def test_wandb_online_without_credentials_stops_before_training(tiny, monkeypatch):
    from bench.core.errors import ConfigError

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", "/nonexistent")
    with pytest.raises(ConfigError, match="wandb.mode=online: no W&B credentials"):
        make_spec(*tiny, "wandb.mode=online")


def test_an_out_of_memory_error_leaves_an_out_of_memory_record(
    tmp_path, tfds_dir, tiny, monkeypatch
):
    """Injected: TensorFlow's own error type raised from training, as a GPU raises it."""

    def exhausted(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    monkeypatch.setattr(train.Trainer, "run", exhausted)
    spec = make_spec(*tiny, "epochs=1", "batch_size=16", f"results_dir={tmp_path}",
                     tfds_dir=tfds_dir)  # fmt: skip
    record = execute(spec)
    data = json.loads(spec.record_path.read_text())
    assert not record.completed and data["error"]["type"] == "OutOfMemory"
    assert (
        "batch_size=16" in data["error"]["message"] and "image_size=32" in data["error"]["message"]
    )


def test_the_peak_memory_starts_again_for_each_job_of_a_shared_worker():
    """200 MiB touched then freed: after the reset the peak is the memory held now, not
    the earlier high (a shared worker resets it before each job)."""
    from bench.pipeline import measure

    held = np.ones(200 * 2**20 // 8)  # written, so resident
    high = measure.peak_host_rss()
    del held  # a block this large is its own mapping: freeing it returns it to the system
    measure.reset_peak_host_rss()
    assert measure.peak_host_rss() < high - 150 * 2**20
