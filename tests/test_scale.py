"""Scale-out on existing engines: Hydra's launcher plugins with bench's defaults."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException

from bench.core import schema
from bench.launch import agents
from tests.conftest import TINY, bench_run, load_records


def _hydra(*overrides: str):
    schema.register()
    with initialize_config_module(config_module=schema.CONFIG_MODULE, version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True).hydra


def test_the_slurm_launcher_composes_with_benchs_defaults_and_takes_overrides():
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

    launcher = _hydra("hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu").launcher
    assert launcher.partition == "gpu"  # overridable
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.timeout_min) == (1, 1, 240)
    assert launcher.max_num_timeout == 3  # a task cut by its time limit is requeued, resumes
    params = {k: v for k, v in launcher.items() if k != "_target_"}
    assert SlurmLauncher(**params).params["partition"] == "gpu"  # the plugin accepts them


def test_a_misspelt_launcher_key_fails_at_composition():
    with pytest.raises(ConfigCompositionException):
        _hydra("hydra/launcher=submitit_slurm", "hydra.launcher.partiton=gpu")


def test_the_joblib_launcher_composes_with_benchs_defaults():
    launcher = _hydra("hydra/launcher=joblib").launcher
    assert launcher._target_.endswith("JoblibLauncher") and launcher.n_jobs == 2


@pytest.mark.slow
def test_a_joblib_multirun_gives_each_job_its_own_worker_and_record(tmp_path, tfds_dir):
    args = ["-m", "hydra/launcher=joblib", "seed=1,2", "epochs=1", *TINY[:-1],
            "wandb.mode=disabled"]  # fmt: skip
    proc = bench_run(tmp_path, tfds_dir, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 jobs: 2 completed, 0 failed" in proc.stdout  # the table, read from records
    records = load_records(tmp_path)
    assert sorted(r["config"]["seed"] for r in records) == [1, 2]
    assert all(r["status"] == "completed" for r in records)
    assert len({r["env"]["pid"] for r in records}) == 2


@pytest.mark.parametrize(
    "requested, environ, expected",
    [("0,2", {}, ["0", "2"]), (None, {"CUDA_VISIBLE_DEVICES": "1,3"}, ["1", "3"]),
     (None, {"CUDA_VISIBLE_DEVICES": "-1"}, [])],
)  # fmt: skip
def test_agents_take_the_gpus_asked_for_or_visible(requested, environ, expected):
    assert agents.gpus(requested, environ) == expected


def test_one_agent_starts_per_gpu_each_seeing_only_its_own(tmp_path):
    """``wandb`` is a script the test puts first on PATH: it records what each agent saw."""
    fake = tmp_path / "bin" / "wandb"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$CUDA_VISIBLE_DEVICES $*" >> {tmp_path / "agents.txt"}\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"}
    command = [sys.executable, "-m", "bench.agents", "me/bench/abc123", "--gpus", "0,1",
               "--count", "5"]  # fmt: skip
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = sorted((tmp_path / "agents.txt").read_text().splitlines())
    assert lines == ["0 agent --count 5 me/bench/abc123", "1 agent --count 5 me/bench/abc123"]
