"""Shared fixtures: the real config, a prepared shapes dataset, an offline environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bench  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

# Every test runs offline on purpose: a download (Keras ImageNet weights, a TF Hub handle)
# goes to a refused local port, so tests that need it to fail stay true on a machine with
# network. Set at import, before any fixture of any scope, and inherited by subprocesses.
REFUSED = "http://127.0.0.1:9"
for _name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
    os.environ[_name] = REFUSED
for _name in ("NO_PROXY", "no_proxy"):
    os.environ.pop(_name, None)
os.environ["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"  # the packaging test runs pip offline

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"  # the same folder the package composes from (pkg://bench.conf)
GROUPS = ("backbone", "dataset", "head", "freeze", "optimizer", "augment", "experiment")


def options(group: str) -> list[str]:
    """Every option file of a config group."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory) -> Path:
    """A TFDS data_dir with the shapes dataset generated once per session."""
    import tensorflow_datasets as tfds

    import bench.pipeline.datasets.shapes  # noqa: F401

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
    from bench.core import schema

    return schema.compose(list(overrides))


def make_spec(*overrides: str, tfds_dir: Path | None = None):
    """A RunSpec from the real config with ``overrides``."""
    from bench.core.spec import build

    extra = [f"data_dir={tfds_dir}"] if tfds_dir else []
    return build(compose(*overrides, *extra))


def bench_env(tmp_path: Path, tfds_dir: Path | None = None) -> dict:
    """Environment for a subprocess running the real command."""
    env = dict(os.environ)
    if tfds_dir:
        env["TFDS_DATA_DIR"] = str(tfds_dir)
    env["WANDB_DIR"] = str(tmp_path)
    return env


TINY = [
    "dataset=shapes",
    "backbone.weights=none",
    "freeze=unfrozen",
    "head=linear",
    "image_size=32",
    "batch_size=32",
    # TFDS split syntax; quoted because Hydra's grammar reads [...] as a list.
    "dataset.train_split='train[:10%]'",
    "dataset.val_split='validation[:25%]'",
    "dataset.test_split='test[:25%]'",
    "wandb.mode=offline",
]


def inject(env: dict, **faults: str) -> dict:
    """``env`` with test faults switched on in worker processes (tests/inject/sitecustomize.py),
    e.g. ``inject(env, BENCH_TEST_OOM_ABOVE="16")``."""
    where = str(ROOT / "tests" / "inject")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [where, env.get("PYTHONPATH")]))
    return {**env, **faults}


def bench_run(tmp_path: Path, tfds_dir: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """Runs ``python -m bench.run ARGS`` in ``tmp_path``, records in ``tmp_path/runs``."""
    command = [sys.executable, "-m", "bench.run", *args, f"results_dir={tmp_path / 'runs'}"]
    env = kwargs.pop("env", None) or bench_env(tmp_path, tfds_dir)
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, **kwargs
    )  # fmt: skip


def load_records(tmp_path: Path) -> list[dict]:
    """The records a ``bench_run`` in ``tmp_path`` wrote, as the JSON a user reads."""
    paths = sorted((tmp_path / "runs").glob("*.json"))
    return [json.loads(path.read_text()) for path in paths]
