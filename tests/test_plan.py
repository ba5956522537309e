"""The run's plan, decided once from the real composed config of every preset (and the
defaults): one test per decision it makes. Each expectation is read off the config's own
keys here, not through bench's functions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import make_spec, options

PRESETS = [None, *options("experiment")]


def _spec(preset: str | None, *overrides: str):
    return make_spec(*([f"experiment={preset}"] if preset else []), *overrides)


@pytest.mark.parametrize("preset", PRESETS, ids=str)
def test_the_phases_follow_the_freeze_policy(preset):
    cfg = _spec(preset).cfg
    phases = _spec(preset).plan.phases
    if cfg.freeze.head_epochs:
        head, tune = phases
        assert (head.name, head.epochs, head.policy.value) == ("head", cfg.freeze.head_epochs,
                                                               "frozen")  # fmt: skip
        assert (tune.name, tune.epochs, tune.policy) == ("finetune", cfg.epochs, cfg.freeze.policy)
        expected = cfg.freeze.finetune_lr or cfg.optimizer.lr / 10
        if cfg.freeze.finetune_optimizer is None:
            assert tune.optimizer.lr == pytest.approx(expected)
    else:
        (only,) = phases
        assert (only.name, only.epochs, only.policy) == ("train", cfg.epochs, cfg.freeze.policy)
        assert only.optimizer == cfg.optimizer


@pytest.mark.parametrize("preset", PRESETS, ids=str)
def test_augmentation_is_decided_from_the_augment_keys(preset):
    cfg = _spec(preset).cfg
    aug = cfg.augment
    changes = (
        aug.flip.value != "none" or aug.rotation > 0 or aug.translation > 0 or aug.contrast > 0
    )
    assert _spec(preset).plan.augments is changes
    assert _spec(preset, "augment=keras_io").plan.augments is True


@pytest.mark.parametrize("preset", PRESETS, ids=str)
def test_the_feature_cache_applies_or_says_why_not(preset):
    spec = _spec(preset)
    cfg = spec.cfg
    some_frozen = cfg.freeze.policy.value == "frozen" or cfg.freeze.head_epochs > 0
    applies = some_frozen and not spec.plan.augments and not cfg.head.conv_filters
    assert spec.plan.feature_cache is applies
    if not applies:
        assert spec.plan.feature_cache_off  # a reason, in words
    assert _spec(preset, "feature_cache=false").plan.feature_cache_off == "feature_cache=false"


@pytest.mark.parametrize("preset", PRESETS, ids=str)
def test_only_the_head_is_built_when_no_phase_trains_the_backbone(preset):
    spec = _spec(preset)
    cfg = spec.cfg
    trains = cfg.freeze.policy.value != "frozen"
    assert spec.plan.backbone_trains is trains
    assert spec.plan.head_only(workers=1) is (spec.plan.feature_cache and not trains)
    assert spec.plan.head_only(workers=2) is False  # every worker builds the same variables


def test_the_compute_request_is_the_configs():
    request = make_spec("precision=float32", "jit_compile=true", "steps_per_execution=3",
                        "input_cache=disk", "lr_scaling=linear").plan.compute  # fmt: skip
    found = (request.precision, request.jit_compile, request.steps_per_execution,
             request.input_cache, request.lr_scaling)  # fmt: skip
    assert found == ("float32", "true", 3, "disk", "linear")


# The site: what the config settles together with this process's environment. The
# expected folders are spelled out here from the documented layout (docs/outputs.md).
@pytest.mark.parametrize("index", [0, 1], ids=["chief", "worker-1"])
def test_the_site_puts_the_checkpoint_in_the_chiefs_folder_and_scratch_in_its_own(
    index, monkeypatch
):
    cluster = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": index}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    spec = make_spec("dataset=shapes", "results_dir=/r", "wandb.mode=offline")
    site = spec.site
    own = "/r" if index == 0 else "/r/workers/worker-1"
    assert (site.role.chief, site.role.workers) == (index == 0, 2)
    assert site.chief_results_dir == Path("/r")
    assert site.checkpoint_dir == Path("/r/checkpoints") / spec.run_id
    assert site.scratch_dir == Path(own) / "checkpoints" / spec.run_id
    assert site.model_dir == Path(own) / "models" / spec.run_id / "saved_model"


@pytest.mark.parametrize(
    ("asked", "environment", "expected"),
    [("offline", {"WANDB_MODE": "online"}, "offline"), ("auto", {"WANDB_MODE": "disabled"},
     "disabled"), ("auto", {"WANDB_API_KEY": "k"}, "online")],
)  # fmt: skip
def test_the_site_resolves_the_wandb_mode_once(asked, environment, expected, monkeypatch):
    for name in ("TF_CONFIG", "WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    spec = make_spec("dataset=shapes", f"wandb.mode={asked}")
    assert spec.site.wandb_mode == expected
    monkeypatch.setenv("WANDB_MODE", "offline")  # decided once per spec: not read again
    assert spec.site.wandb_mode == expected
