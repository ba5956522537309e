"""Speed without changing the answer: the feature cache (hit, miss, key, concurrent fills,
same numbers), precision and XLA resolved per device, and the bench.speed command."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from bench.core import record, splits
from bench.core.errors import ConfigError, Interrupted
from bench.core.plan import feature_cache_off
from bench.pipeline import compute, data, features, folder, model, optim, store, train
from bench.pipeline.compute import Devices
from bench.pipeline.execute import execute
from tests.helpers import bench_env, compose, make_spec
from tests.pool_tasks import fill_entry

# A frozen hub backbone (the test's own SavedModel: real, non-vanishing features), a
# linear head without dropout, so the two paths draw no different random numbers.
FROZEN = ["dataset=shapes", "backbone.source=hub", "freeze=frozen", "head=linear",
          "head.dropout=0", "image_size=32", "epochs=3", "wandb.mode=disabled"]  # fmt: skip

BASE_KEY = ["dataset=shapes", "backbone=mobilenet_v2", "backbone.weights=none", "seed=1",
            "image_size=32", "freeze=frozen", "head=linear"]  # fmt: skip


def _frozen(tmp_path, hub_dir, tfds_dir, *extra):
    return make_spec(*FROZEN, f"backbone.hub_handle={hub_dir}", f"results_dir={tmp_path}",
                     *extra, tfds_dir=tfds_dir)  # fmt: skip


@pytest.mark.slow
def test_a_frozen_run_fills_the_cache_then_hits_it_with_the_same_numbers(
    tmp_path, hub_dir, tfds_dir, monkeypatch
):
    without = execute(_frozen(tmp_path / "a", hub_dir, tfds_dir, "feature_cache=false"))
    filled = execute(_frozen(tmp_path / "b", hub_dir, tfds_dir))

    def no_backbone(*args, **kwargs):
        raise AssertionError("a hit of a frozen run builds no backbone")

    monkeypatch.setattr(model, "build", no_backbone)
    hit = execute(_frozen(tmp_path / "b", hub_dir, tfds_dir, "force=true"))
    assert without.feature_cache.status == "unused"
    assert filled.feature_cache.status == "filled" and filled.feature_cache.fill_time_s > 0
    assert hit.feature_cache.status == "hit" and hit.feature_cache.fill_time_s is None
    assert hit.feature_cache.key == filled.feature_cache.key
    # Stated tolerance: the same order, weights and batches; only the backbone's float32
    # arithmetic runs in different batches, so losses agree to 1e-5 relative.
    for run in (filled, hit):
        assert [h.epoch for h in run.history] == [1, 2, 3]
        np.testing.assert_allclose(
            [h.loss for h in run.history], [h.loss for h in without.history], rtol=1e-5
        )
        np.testing.assert_allclose(
            [h.val_accuracy for h in run.history], [h.val_accuracy for h in without.history]
        )
        assert run.metrics.test_accuracy == pytest.approx(without.metrics.test_accuracy)
        # The whole model's size, also when only the head was built.
        assert run.metrics.params_total == without.metrics.params_total
        assert run.metrics.params_trainable == without.metrics.params_trainable
    # Both runs on the cache kept their heads alone (the hit built no backbone: model.build
    # raises), each described as the whole model the uncached run kept: the same
    # parameters, and multiply-adds counted in two parts that add up.
    for run in (filled, hit):
        assert run.model.path is None and Path(run.model.head_weights).is_file()
        assert run.model.params == without.model.params
        assert run.model.macs_per_image == without.model.macs_per_image > 0
    assert without.model.path and without.model.head_weights is None
    monkeypatch.undo()
    _assembled_when_served(hit, without, tmp_path / "b", monkeypatch)


def _assembled_when_served(hit, whole, results_dir: Path, monkeypatch) -> None:
    """The kept head becomes a SavedModel on first use, and predicts as the run whose
    backbone was built and kept whole (same seed, weights and batches)."""
    from bench.pipeline import keep

    assembled = keep.assemble(record.path_for(results_dir, hit.run_id))
    assert record.read(record.path_for(results_dir, hit.run_id)).model.path == assembled.model.path
    assert assembled.model.size_bytes > 0 and assembled.model.params == hit.model.params
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)

    def predict(path):
        served = tf.saved_model.load(path).signatures[keep.SIGNATURE]
        return served(image=tf.constant(images))["probabilities"].numpy()

    np.testing.assert_allclose(
        predict(assembled.model.path), predict(whole.model.path), rtol=1e-4, atol=1e-5
    )
    built_again = []
    monkeypatch.setattr(model, "build", lambda *a, **k: built_again.append(a))
    assert keep.assemble(record.path_for(results_dir, hit.run_id)) == assembled
    assert built_again == []  # assembled once: the second call finds the SavedModel


def test_the_entry_a_run_fills_is_stored_with_its_record_even_when_training_fails(
    tmp_path, hub_dir, tfds_dir, monkeypatch
):
    """A run trains on the arrays it filled and stores them at its end (outcome.finish):
    a run whose training raises still leaves the entry for the next run."""

    def broken(self):
        raise RuntimeError("training broke")

    monkeypatch.setattr(train.Trainer, "run", broken)
    done = execute(_frozen(tmp_path, hub_dir, tfds_dir))
    assert done.status.value == "failed" and "training broke" in done.error.message
    assert done.feature_cache.status == "filled" and done.feature_cache.reason is None
    stored = store.read(Path(done.feature_cache.path))
    assert stored is not None and stored["train_x"].shape[0] == stored["train_y"].shape[0] > 0


@pytest.mark.parametrize(
    ("unwritable", "error"),
    [("entry", OSError(28, "No space left on device")), ("head", OSError(28, "No space left")),
     ("entry", Interrupted("stopped by SIGTERM")), ("head", Interrupted("stopped by SIGTERM"))],
)  # fmt: skip
def test_a_file_the_run_cannot_write_still_leaves_its_record(
    tmp_path, hub_dir, tfds_dir, monkeypatch, unwritable, error
):
    """A filled entry that is not stored (a full disk, a stop) is said in the record and
    the trained run is completed. A kept head that is not written is not kept: after a
    full disk the run is completed; after a stop it is Interrupted, so a relaunch resumes
    it and keeps the head, as a stop while keeping a whole model does."""
    from bench.core.pending import HEAD_WEIGHTS

    write_arrays = store.write_arrays

    def failing(path: Path, arrays) -> None:
        if (path.name == HEAD_WEIGHTS) == (unwritable == "head"):
            raise error
        write_arrays(path, arrays)

    monkeypatch.setattr(store, "write_arrays", failing)
    done = execute(_frozen(tmp_path, hub_dir, tfds_dir, "keep_model=true"))
    assert record.path_for(tmp_path, done.run_id).is_file()
    assert done.feature_cache.status == "filled"
    entry, head = Path(done.feature_cache.path), tmp_path / "models" / done.run_id / HEAD_WEIGHTS
    stopped = isinstance(error, Interrupted)
    if unwritable == "entry":
        why = "the run was stopped" if stopped else f"OSError: {error}"
        assert done.completed and done.feature_cache.reason == f"not stored: {why}"
        assert not entry.exists() and done.model.head_weights == str(head) and head.is_file()
    else:
        assert done.feature_cache.reason is None and entry.is_file()
        assert done.model.head_weights is None and not head.exists()
        assert done.error.type == "Interrupted" if stopped else done.completed


@pytest.mark.slow
def test_a_kept_head_on_random_weights_is_assembled_on_the_backbone_its_features_came_from(
    tmp_path, tfds_dir
):
    """``backbone.weights=none``: the backbone is drawn from the seed. The run that fills
    the entry keeps its head alone; the SavedModel assembled for it later, in a process of
    its own as ``bench.serve`` does, holds the weights of the same run trained without the
    cache and kept whole (its random features are too small to tell backbones apart)."""
    # B0: its blocks' Dropout layers draw seeds as they are built, in Keras' generator mode.
    args = [*BASE_KEY, "backbone=b0", "epochs=1", "head.dropout=0", "wandb.mode=disabled",
            "seed=3", "dataset.train_split='train[:64]'", "dataset.val_split='validation[:32]'",
            "dataset.test_split='test[:32]'"]  # fmt: skip
    # Layer names, which key the variables below, count up per process: start them afresh,
    # as in the serve's process (and in a worker).
    keras.backend.clear_session()
    whole = execute(make_spec(*args, "feature_cache=false", f"results_dir={tmp_path / 'a'}",
                              tfds_dir=tfds_dir))  # fmt: skip
    filled = execute(make_spec(*args, f"results_dir={tmp_path / 'b'}", tfds_dir=tfds_dir))
    assert filled.feature_cache.status == "filled" and filled.model.path is None
    path = record.path_for(tmp_path / "b", filled.run_id)
    code = f"import bench; from bench.pipeline import keep; keep.assemble({str(path)!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    kept, assembled = _variables(whole.model.path), _variables(record.read(path).model.path)
    assert kept.keys() == assembled.keys() and len(kept) > 100
    for key, value in kept.items():  # the head trained on features: equal to 1e-5
        np.testing.assert_allclose(assembled[key], value, rtol=1e-4, atol=1e-6, err_msg=key)


def _variables(saved_model: str) -> dict[str, np.ndarray]:
    """Every variable of a kept SavedModel, by its name (their order follows what was
    trainable when it was saved)."""
    return {v.name: v.numpy() for v in tf.saved_model.load(saved_model).weights}


@pytest.mark.parametrize("drop_remainder", [False, True])
def test_cached_feature_epochs_have_fits_steps_and_resume_where_the_uncut_run_was(
    drop_remainder,
):
    """10 examples in batches of 4: with the images' last partial batch dropped (TPUs), each
    feature epoch has the 2 full batches ``fit`` is told of, so epoch 2 read alone is the
    third epoch of the uncut input; without, 3 batches, the last of 2."""
    spec = make_spec("dataset=shapes", "batch_size=4", "seed=3")
    arrays = {"train_x": np.arange(20, dtype=np.float32).reshape(10, 2),
              "train_y": np.arange(10), "val_x": np.zeros((2, 2), np.float32),
              "val_y": np.zeros(2, np.int64)}  # fmt: skip
    found = features.pipelines(arrays, spec, drop_remainder)
    steps = optim.steps_per_epoch(10, 4, drop_remainder)
    uncut = [y.numpy() for _, y in found.epochs(0, 3)]
    resumed = [y.numpy() for _, y in found.epochs(2, 3)]
    assert [len(y) for y in uncut] == ([4, 4] * 3 if drop_remainder else [4, 4, 2] * 3)
    assert len(uncut) == 3 * steps
    assert [list(y) for y in resumed] == [list(y) for y in uncut[2 * steps :]]


def test_cached_features_are_the_backbones_features_of_the_same_images(hub_dir, tfds_dir):
    spec = make_spec(*FROZEN, f"backbone.hub_handle={hub_dir}", tfds_dir=tfds_dir)
    loaded = data.load(spec)
    built = model.build(spec, loaded.num_classes)
    arrays = features.compute(loaded, built.features)
    images, labels = zip(*((x, y) for x, y in loaded.plain["val"]), strict=True)
    expected = np.concatenate([built.features(x, training=False).numpy() for x in images])
    np.testing.assert_allclose(arrays["val_x"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(arrays["val_y"], np.concatenate([y.numpy() for y in labels]))
    assert arrays["val_x"].std() > 0.01  # features that carry information


@pytest.mark.slow
def test_a_two_phase_run_uses_the_cache_for_its_head_phase_only(tmp_path, hub_dir, tfds_dir):
    spec = _frozen(tmp_path, hub_dir, tfds_dir, "freeze=unfrozen", "freeze.head_epochs=1",
                   "epochs=1")  # fmt: skip
    done = execute(spec)
    assert done.completed and done.feature_cache.status == "filled"
    assert [h.phase for h in done.history] == ["head", "finetune"]


@pytest.mark.parametrize(
    "overrides, reason",
    [
        (["freeze=unfrozen"], "the backbone trains"),
        (["augment=flip"], "augmentation"),
        (["head=guide_conv"], "conv layer"),
        (["feature_cache=false"], "feature_cache=false"),
    ],
)
def test_the_cache_is_never_used_with_augmentation_or_a_training_backbone(overrides, reason):
    spec = make_spec(*BASE_KEY, *overrides)
    assert reason in feature_cache_off(spec.cfg)


@pytest.mark.parametrize("overrides", [["augment=flip"], ["freeze=unfrozen"]])
def test_asking_for_the_cache_where_it_cannot_apply_is_a_config_error(overrides):
    with pytest.raises(ConfigError, match="feature_cache=true"):
        make_spec(*BASE_KEY, "feature_cache=true", *overrides)


DATA = SimpleNamespace(identity="tfds:shapes:1.0.0:image:label")


REMOTE_HUB = ("backbone.source=hub", "backbone.weights=imagenet", "freeze=frozen")


def _key(*overrides, dataset=DATA, policy="float32") -> str:
    spec = make_spec(*BASE_KEY, *overrides)
    return features.digest(features.components(spec, dataset, policy))


def _weights_file(tmp_path: Path, name: str, seed: int) -> str:
    keras.utils.set_random_seed(seed)
    net = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / name
    net.save_weights(path)
    return str(path)


def test_the_key_changes_with_every_component_and_only_with_them(tmp_path, hub_dir, monkeypatch):
    base = _key()
    changed = {
        "backbone": _key("backbone=b0"),
        "random weights' seed": _key("seed=2"),
        "weights file": _key(f"backbone.weights={_weights_file(tmp_path, 'a.h5', 1)}"),
        "source and input range": _key(
            "backbone.source=hub", "backbone.weights=imagenet", f"backbone.hub_handle={hub_dir}"
        ),
        "split": _key("dataset.train_split='train[:50%]'"),
        "image size": _key("image_size=64"),
        "pooling": _key("head=guide_conv", "feature_cache=true"),
        "dataset name": _key(dataset=SimpleNamespace(identity="tfds:other:1.0.0:image:label")),
        "dataset version": _key(dataset=SimpleNamespace(identity="tfds:shapes:2.0.0:image:label")),
        "precision": _key(policy="mixed_float16"),
        "imagenet weights": _key("backbone.weights=imagenet"),
        "remote hub handle": _key(*REMOTE_HUB, "backbone.hub_handle=https://example.org/m/1"),
        "another remote hub handle": _key(
            *REMOTE_HUB, "backbone.hub_handle=https://example.org/m/2"
        ),
    }
    monkeypatch.setattr(tf, "__version__", "0.0.0")
    changed["tensorflow"] = _key()
    monkeypatch.setattr(keras, "__version__", "0.0.0")
    changed["keras version of imagenet weights"] = _key("backbone.weights=imagenet")
    monkeypatch.undo()
    registered = type(make_spec(*BASE_KEY).backbone)
    monkeypatch.setattr(registered, "input_range", lambda self, source: (0.0, 1.0))
    changed["input range"] = _key()
    monkeypatch.undo()
    assert all(key != base for key in changed.values()), changed
    assert len(set(changed.values())) == len(changed)
    same = ["optimizer=sgd", "optimizer.lr=0.5", "batch_size=8", "epochs=7", "head=mlp",
            "head.dropout=0.3", "force=true", "feature_cache_dir=/elsewhere"]  # fmt: skip
    assert {_key(o) for o in same} == {base}


def test_the_key_follows_file_contents_not_file_names(tmp_path, hub_dir):
    one = _weights_file(tmp_path, "one.h5", 1)
    other = _weights_file(tmp_path, "other.h5", 2)
    assert _key(f"backbone.weights={one}") != _key(f"backbone.weights={other}")
    (tmp_path / "other.h5").write_bytes((tmp_path / "one.h5").read_bytes())
    assert _key(f"backbone.weights={one}") == _key(f"backbone.weights={other}")
    copy = tmp_path / "hub_copy"
    subprocess.run(["cp", "-r", str(hub_dir), str(copy)], check=True)
    hub = ("backbone.source=hub", "backbone.weights=imagenet")
    before = _key(*hub, f"backbone.hub_handle={copy}")
    (copy / "saved_model.pb").write_bytes(b"changed" + (copy / "saved_model.pb").read_bytes())
    assert _key(*hub, f"backbone.hub_handle={copy}") != before


def test_a_folder_datasets_identity_follows_its_files_and_split(tmp_path):
    from PIL import Image

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for index in range(3):
            Image.new("RGB", (8, 8), (index * 40, 0, 0)).save(tmp_path / name / f"{index}.png")

    def identity(share: float, seed: int) -> str:
        return folder.scan(
            str(tmp_path), splits.plan("files", None, None, share, 0.0, seed)
        ).identity

    first = identity(0.34, seed=1)
    assert identity(0.34, seed=1) == first
    assert identity(0.34, seed=2) != first
    assert identity(0.5, seed=1) != first
    Image.new("RGB", (9, 9)).save(tmp_path / "a" / "0.png")
    assert identity(0.34, seed=1) != first


def test_two_runs_filling_one_entry_at_once_neither_fail_nor_corrupt_it(tmp_path):
    path = tmp_path / "entry.npz"
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(fill_entry, [(str(path), 1.0), (str(path), 2.0)])
    stored = store.read(path)
    assert stored["train_x"].shape == (2000, 512) and np.unique(stored["train_x"]).size == 1
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_a_damaged_entry_is_a_miss(tmp_path):
    path = tmp_path / "entry.npz"
    path.write_bytes(b"PK\x03\x04 truncated")
    assert store.read(path) is None


@pytest.mark.parametrize(
    "requested, devices, policy",
    [
        ("auto", Devices("CPU"), "float32"),
        ("auto", Devices("TPU"), "mixed_bfloat16"),
        ("auto", Devices("GPU", ((8, 0), (8, 0))), "mixed_float16"),
        ("auto", Devices("GPU", ((7, 0),)), "mixed_float16"),
        ("auto", Devices("GPU", ((6, 1),)), "float32"),
        ("auto", Devices("GPU", ((8, 6), (6, 0))), "float32"),  # the slowest GPU decides
        ("mixed_float16", Devices("CPU"), "mixed_float16"),  # asked for: given
        ("float32", Devices("TPU"), "float32"),
    ],
)
def test_precision_is_resolved_per_device(requested, devices, policy):
    assert compute.precision(requested, devices) == policy


@pytest.mark.parametrize("kind", ["CPU", "GPU", "TPU"])
def test_jit_compile_auto_stays_off_for_depthwise_backbones(kind):
    devices = Devices(kind, ((8, 0),) if kind == "GPU" else ())
    assert compute.jit_compile("auto", devices) is False
    assert compute.jit_compile("true", devices) is True


def test_a_float16_model_still_outputs_float32():
    spec = make_spec("backbone=b0", "backbone.weights=none", "image_size=32", "head=mlp")
    try:
        built = model.build(spec, num_classes=3, policy="mixed_float16")
        out = built.model(tf.zeros((2, 32, 32, 3)))
        assert built.backbone.compute_dtype == "float16"
        assert out.dtype == tf.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_switch_keys_accept_hydra_booleans():
    spec = make_spec("jit_compile=true", "feature_cache=false", "dataset=shapes")
    assert (spec.cfg.jit_compile, spec.cfg.feature_cache) == ("true", "false")
    with pytest.raises(ConfigError, match="input_cache"):
        make_spec("input_cache=gpu")


@pytest.mark.slow
def test_bench_speed_writes_its_json_with_every_field(tmp_path, tfds_dir, tiny):
    out = tmp_path / "speed"
    command = [sys.executable, "-m", "bench.speed", "--rounds", "1", "--out", str(out), *tiny,
               "batch_size=16"]  # fmt: skip
    proc = subprocess.run(
        command, cwd=tmp_path, env=bench_env(tmp_path, tfds_dir), capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "speed round 1/1" in proc.stdout and "harness_over_keras" in proc.stdout
    (path,) = out.glob("*.json")
    result = json.loads(path.read_text())
    assert set(result["images_per_s"]) == {"harness", "keras", "synthetic", "input"}
    assert all(rate > 0 for rate in result["images_per_s"].values())
    assert set(result["ratios"]) == {
        "harness_over_keras", "harness_over_synthetic", "input_over_harness"
    }  # fmt: skip
    assert result["images_per_epoch"] == 64 and result["steps_per_epoch"] == 4
    assert result["rounds"] == 1 and len(result["run_id"]) == 12
    assert result["env"]["precision"] == "float32" and result["config"]["image_size"] == 32
    assert all(len(times) == 1 for times in result["round_s"].values())
    assert set(result["warmup_s"]) == set(result["round_s"])
    assert all(seconds >= 0 for seconds in result["warmup_s"].values())


@pytest.mark.parametrize("jit, steps", [(False, 1), (True, 3)])
def test_jit_compile_and_steps_per_execution_reach_compile(tiny, jit, steps):
    """What the run resolved (``env.jit_compile``, ``steps_per_execution``) is what Keras
    compiles the train step with."""
    spec = make_spec(*tiny, f"steps_per_execution={steps}", f"jit_compile={str(jit).lower()}")
    built = model.build(spec, num_classes=4)
    (phase,) = spec.plan.phases
    training = train.Training(built, None, spec, tf.distribute.get_strategy(), (phase,),
                              jit_compile=jit)  # fmt: skip
    train.prepare_phase(training, built.model, phase, 10)
    assert built.model._jit_compile is jit
    assert int(built.model._steps_per_execution.numpy()) == steps


def test_the_composed_default_caches_by_device():
    cfg = compose()
    assert cfg.precision == "auto" and cfg.feature_cache == "auto" and cfg.input_cache == "auto"


@pytest.mark.parametrize(
    "requested, kind, workers, on, unpinned",
    [
        ("auto", "CPU", 1, True, []),
        ("auto", "GPU", 1, False, ["GPU kernels (deterministic=false)"]),
        ("auto", "TPU", 1, False, ["TPU kernels (deterministic=false)"]),
        ("true", "GPU", 1, True, []),
        ("false", "CPU", 2, False, ["CPU kernels (deterministic=false)",
                                    "the order of the all-reduce sums across workers"]),
    ],
)  # fmt: skip
def test_determinism_is_resolved_per_device_and_says_what_it_leaves(
    requested, kind, workers, on, unpinned
):
    devices = compute.Devices(kind)
    assert compute.deterministic(requested, devices) is on
    assert compute.not_deterministic(on, devices, workers) == unpinned
