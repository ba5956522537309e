"""The real config: defaults, early errors, stable run ids (every option of every group:
test_contract.py)."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException

from bench.core import backbones
from bench.core.errors import EXIT_CONFIG_ERROR, ConfigError
from tests.helpers import bench_env, bench_run, compose, make_spec


def test_defaults_replay_the_wandb_report():
    cfg = make_spec().cfg
    assert (cfg.dataset.name, cfg.dataset.train_split, cfg.dataset.val_split) == (
        "cats_vs_dogs", "train", None,
    )  # fmt: skip
    # The report's 80/20 split had no test split; validation and test are carved, 70/15/15.
    assert (cfg.dataset.test_split, cfg.dataset.val_fraction, cfg.dataset.test_fraction) == (
        None, 0.15, 0.15,
    )  # fmt: skip
    assert cfg.backbone.weights == "imagenet"
    assert cfg.freeze.policy.value == "frozen"
    assert list(cfg.head.hidden_units) == [128]


def test_unknown_key_fails_at_composition():
    with pytest.raises(ConfigCompositionException):
        compose("optimizer.lrr=0.1")


def test_bad_enum_value_names_the_allowed_values():
    with pytest.raises(ConfigCompositionException) as info:
        compose("precision=fp8")
    expected = "expected one of [auto, float32, mixed_float16, mixed_bfloat16]"
    assert expected in str(info.value.__cause__)


def test_missing_weights_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"backbone.weights=.*no such file.*imagenet, none"):
        make_spec(f"backbone.weights={tmp_path / 'nope.h5'}")


def test_folder_without_path_is_a_config_error():
    with pytest.raises(ConfigError, match="dataset.path=/path/to/images"):
        make_spec("dataset=folder")


def test_run_id_is_stable_and_ignores_where_a_run_goes():
    base = make_spec("backbone=b1", "epochs=3")
    assert make_spec("epochs=3", "backbone=b1").run_id == base.run_id
    assert make_spec("backbone=b1", "epochs=3", "results_dir=/elsewhere").run_id == base.run_id
    assert make_spec("backbone=b1", "epochs=3", "wandb.mode=disabled").run_id == base.run_id
    assert make_spec("backbone=b1", "epochs=3", "seed=7").run_id != base.run_id
    # The native size written out explicitly is the same run as leaving it to the registry.
    assert make_spec("backbone=b1", "epochs=3", "image_size=240").run_id == base.run_id
    for identity in ("optimizer.lr=0.5", "backbone=b2", "freeze=top_blocks", "head=linear"):
        assert make_spec("backbone=b1", "epochs=3", identity).run_id != base.run_id, identity
    for place in ("data_dir=/data", "isolate=false", "force=true", "dataset.download=false"):
        assert make_spec("backbone=b1", "epochs=3", place).run_id == base.run_id, place


@pytest.mark.parametrize(
    "overrides, earlier",
    [
        (["dataset=shapes"], "73e72d0c1023"),
        (["backbone=mobilenet_v2", "dataset=oxford_flowers102", "freeze=two_phase", "seed=3"],
         "6ae6ec4a2d0c"),
    ],
)  # fmt: skip
def test_keys_added_since_earlier_records_keep_their_run_ids(overrides, earlier):
    """The run_ids bench 3b9150b gave these points (datasets whose three splits are named,
    at float32): keys added since, at the values that behave as bench did then, leave them
    alone, so a relaunch of an earlier sweep still finds its completed points. (Datasets
    that gained a carved test split train on other examples now, and get new run_ids.)"""
    assert make_spec(*overrides, "precision=float32").run_id == earlier
    assert make_spec(*overrides, "precision=float32", "lr_scaling=linear").run_id != earlier


def test_unknown_backbone_exits_2_with_hydra_choices_and_writes_nothing(tmp_path):
    proc = bench_run(tmp_path, None, "backbone=b9")
    assert proc.returncode == EXIT_CONFIG_ERROR
    assert "Could not find 'backbone/b9'" in proc.stderr
    for name in backbones.REGISTRY:
        assert name in proc.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "outputs").exists()


def test_an_empty_wandb_mode_exits_2_naming_the_variable_and_writes_nothing(tmp_path):
    """W&B itself would fail only in wandb.init, after TensorFlow and the model."""
    env = {**bench_env(tmp_path, None), "WANDB_MODE": ""}
    proc = bench_run(tmp_path, None, "backbone=mobilenet_v2", env=env)
    assert proc.returncode == EXIT_CONFIG_ERROR, proc.stderr[-2000:]
    assert "WANDB_MODE='': the environment variable is not one W&B accepts" in proc.stderr
    assert "Fix: unset WANDB_MODE, or export WANDB_MODE=offline" in proc.stderr
    assert "Input should be" not in proc.stderr  # not W&B's own pydantic message
    assert not (tmp_path / "runs").exists() and not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    "name, value, allowed",
    [
        ("WANDB_MODE", "Offline", "online, run, shared, offline, dryrun, disabled"),
        ("WANDB_MODE", "ofline", "online, run, shared, offline, dryrun, disabled"),
        ("WANDB_BASE_URL", "localhost:8080", "an http:// or https:// address"),
        ("TF_CONFIG", "{cluster: 1}", "a JSON object"),
        ("TF_CONFIG", '{"cluster": []}', 'a JSON object with a "cluster" object'),
    ],
)  # fmt: skip
def test_bad_environment_values_fail_with_the_config(monkeypatch, name, value, allowed):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        make_spec()
    assert (raised.value.key, raised.value.value, raised.value.allowed) == (
        name,
        repr(value),
        allowed,
    )


@pytest.mark.parametrize("mode", ["online", "offline", "disabled", "dryrun", "run", "shared"])
def test_every_mode_wandb_accepts_passes(monkeypatch, mode):
    monkeypatch.setenv("WANDB_MODE", mode)
    assert make_spec().run_id
