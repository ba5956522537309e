"""Scale-out on existing engines: Hydra's launcher plugins with bench's defaults."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException

from bench.core import cluster, schema
from bench.core.errors import ConfigError
from bench.launch import agents
from tests.helpers import SMALL_DATA, bench_env, bench_run, hub_backbone, load_records, make_spec


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
def test_a_joblib_multirun_gives_each_job_its_own_worker_and_record(tmp_path, tfds_dir, tiny):
    args = ["-m", "hydra/launcher=joblib", "seed=1,2", "epochs=1", *tiny]
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


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _worker_env(tmp_path, tfds_dir, cluster: dict, index: int) -> dict:
    env = bench_env(tmp_path, tfds_dir)
    env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
    env["NO_PROXY"] = env["no_proxy"] = "localhost,127.0.0.1"  # gRPC between the workers
    return env


def test_the_chief_is_worker_0_and_the_others_get_private_results_dirs(monkeypatch):
    cluster_spec = {"worker": ["a:1", "b:2"]}
    for index, chief in ((0, True), (1, False)):
        task = {"type": "worker", "index": index}
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster_spec, "task": task}))
        spec = make_spec("dataset=shapes", "results_dir=/r", "wandb.mode=offline")
        assert cluster.role().chief is chief and cluster.role().workers == 2
        expected = "/r" if chief else "/r/workers/worker-1"
        assert spec.cfg.results_dir == expected
        assert (spec.cfg.wandb.mode.value == "offline") is chief
        assert chief or spec.cfg.feature_cache_dir == "/r/features"  # read from the chief's


def test_a_worker_takes_a_point_the_chief_completed_as_done(tmp_path, monkeypatch):
    from bench.core import record
    from bench.core.record import Record, Status
    from bench.launch import job

    task = {"type": "worker", "index": 1}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                "task": task}))  # fmt: skip
    spec = make_spec("dataset=shapes", f"results_dir={tmp_path}", "wandb.mode=disabled")
    assert job.completed(spec) is None
    done = Record(run_id=spec.run_id, status=Status.completed, started_at=record.now(),
                  finished_at=record.now(), config=spec.config_dict())  # fmt: skip
    record.write(done, tmp_path)  # the chief's results_dir, not this worker's own
    assert job.completed(spec).run_id == spec.run_id


# Two runs for two workers on the tests' own hub SavedModel: fine-tuned whole, and frozen
# (its features carry information) trained on the feature cache.
TWO_WORKER_CASES = {
    "fine-tuned": ["epochs=2", "freeze=unfrozen"],
    "frozen on cached features": ["epochs=3", "freeze=frozen", "head.dropout=0"],
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(TWO_WORKER_CASES))
def test_two_workers_on_localhost_train_one_run_into_one_record_and_one_wandb_run(
    tmp_path, tfds_dir, hub_dir, case
):
    args = [*SMALL_DATA, *hub_backbone(hub_dir), *TWO_WORKER_CASES[case], "wandb.mode=offline",
            "keep_model=true"]  # fmt: skip
    cluster_spec = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    command = [sys.executable, "-m", "bench.run", *args, f"results_dir={tmp_path / 'runs'}"]
    envs = [_worker_env(tmp_path, tfds_dir, cluster_spec, index) for index in range(2)]
    workers = [
        subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for env in envs
    ]  # fmt: skip
    try:
        outputs = [worker.communicate(timeout=600) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err[-3000:]
    (done,) = load_records(tmp_path)  # the chief's
    assert done["status"] == "completed"
    assert [row["epoch"] for row in done["history"]] == list(range(1, done["config"]["epochs"] + 1))
    assert all(0.0 <= row["accuracy"] <= 1.0 for row in done["history"])
    env = done["env"]
    assert (env["strategy"], env["replicas"], env["workers"]) == (
        "MultiWorkerMirroredStrategy", 2, 2,
    )  # fmt: skip
    # The other worker kept its own record of the same run, privately, and logged nothing.
    (other,) = (tmp_path / "runs" / "workers" / "worker-1").glob("*.json")
    theirs = json.loads(other.read_text())
    assert theirs["run_id"] == done["run_id"] and theirs["status"] == "completed"
    assert theirs["wandb"]["mode"] == "disabled"
    assert len(list((tmp_path / "wandb").glob("offline-run-*"))) == 1
    # One model per run, kept by the chief; a head trained on cached features is kept on
    # its backbone (the parameters of the whole model).
    assert (Path(done["model"]["path"]) / "saved_model.pb").is_file()
    assert done["model"]["params"] == done["metrics"]["params_total"]  # the whole model
    assert theirs["model"]["path"] is None
    assert [p.name for p in (tmp_path / "runs" / "models").iterdir()] == [done["run_id"]]
    assert not list((tmp_path / "runs" / "workers").rglob("saved_model*"))  # saved, then deleted
    expected_cache = "filled" if case.startswith("frozen") else "unused"
    assert done["feature_cache"]["status"] == expected_cache
    if expected_cache == "filled":  # filled once, by the chief alone
        assert len(list((tmp_path / "runs").rglob("*.npz"))) == 1
        assert not list((tmp_path / "runs" / "workers").rglob("features"))


@pytest.mark.parametrize("rule, factor", [("none", 1), ("linear", 4)])
def test_linear_lr_scaling_multiplies_every_rate_by_the_replicas(rule, factor):
    import contextlib

    from bench.pipeline import model, train

    four = SimpleNamespace(num_replicas_in_sync=4, scope=contextlib.nullcontext)  # injected
    spec = make_spec("backbone=mobilenet_v2", "backbone.weights=none", "image_size=32",
                     "optimizer=sgd", "optimizer.lr=0.01", "optimizer.min_lr=0.001",
                     "freeze=two_phase", "epochs=2", f"lr_scaling={rule}")  # fmt: skip
    head, finetune = spec.plan.phases_at(replicas=4)
    assert (head.optimizer.lr, head.optimizer.min_lr) == pytest.approx(
        (0.01 * factor, 0.001 * factor)
    )
    assert finetune.optimizer.lr == pytest.approx(0.001 * factor)  # lr / 10, scaled too
    built = model.build(spec, num_classes=3)
    train.prepare_phase(train.Training(built, None, spec, four, (head, finetune)), built.model,
                        head, 10)  # fmt: skip
    assert float(built.model.optimizer.learning_rate) == pytest.approx(0.01 * factor)


def test_an_unknown_lr_scaling_rule_is_a_config_error():
    with pytest.raises(ConfigError, match="lr_scaling"):
        make_spec("lr_scaling=sqrt")
