"""Shared fixtures: the real config, a prepared shapes dataset, an offline environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import bench  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"  # the same folder bench.config.CONF_DIR composes from
GROUPS = ("backbone", "dataset", "head", "freeze", "optimizer", "augment", "experiment")


def options(group: str) -> list[str]:
    """Every option file of a config group."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory) -> Path:
    """A TFDS data_dir with the shapes dataset generated once per session."""
    import tensorflow_datasets as tfds

    import bench.datasets.shapes  # noqa: F401

    path = tmp_path_factory.mktemp("tfds")
    tfds.builder("shapes", data_dir=str(path)).download_and_prepare()
    return path


@pytest.fixture(scope="session")
def hub_dir(tmp_path_factory) -> Path:
    """A local TF2 SavedModel feature vector, usable as ``backbone.hub_handle``."""
    from tests.hub_fixture import write_feature_vector

    return write_feature_vector(tmp_path_factory.mktemp("hub") / "feature_vector")


@pytest.fixture(autouse=True)
def offline_env(tmp_path, monkeypatch):
    """No W&B server, no cached Keras weights, outputs under the test's tmp dir."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.chdir(tmp_path)


def compose(*overrides: str):
    """The real config composed with ``overrides`` (Hydra's compose API)."""
    from bench import config

    return config.compose(list(overrides))


def make_spec(*overrides: str, tfds_dir: Path | None = None):
    """A RunSpec from the real config with ``overrides``."""
    from bench.spec import build

    extra = [f"data_dir={tfds_dir}"] if tfds_dir else []
    return build(compose(*overrides, *extra))


def bench_env(tmp_path: Path, tfds_dir: Path | None = None) -> dict:
    """Environment for a subprocess running the real command."""
    env = dict(os.environ)
    if tfds_dir:
        env["TFDS_DATA_DIR"] = str(tfds_dir)
    env["WANDB_DIR"] = str(tmp_path)
    return env
