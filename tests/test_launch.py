"""The launcher: config errors stop before anything runs (exit 2), jobs are counted right."""

from __future__ import annotations

import os

import pytest
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from bench.core.errors import EXIT_CONFIG_ERROR, ConfigError
from bench.launch import multirun, progress
from tests.helpers import TINY, bench_run


def _nothing_written(tmp_path) -> bool:
    return not any((tmp_path / name).exists() for name in ("runs", "wandb", "outputs", "multirun"))


def test_a_config_error_exits_2_naming_key_value_allowed_and_fix(tmp_path):
    proc = bench_run(tmp_path, None, *TINY, "epochs=0")
    assert proc.returncode == EXIT_CONFIG_ERROR, proc.stderr[-2000:]
    assert "epochs=0" in proc.stderr and "Allowed: a positive integer" in proc.stderr
    assert "Fix: pass epochs=1 or more" in proc.stderr
    assert _nothing_written(tmp_path)  # not even Hydra's output folder


def test_wandb_online_without_credentials_exits_2_before_anything_runs(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "WANDB_API_KEY"}
    env["NETRC"] = str(tmp_path / "no-netrc")
    proc = bench_run(tmp_path, None, *TINY, "wandb.mode=online", env=env)
    assert proc.returncode == EXIT_CONFIG_ERROR, proc.stderr[-2000:]
    assert "wandb.mode=online: no W&B credentials" in proc.stderr and "wandb login" in proc.stderr
    assert _nothing_written(tmp_path)


def test_a_multirun_with_one_bad_job_runs_none_and_lists_every_problem(tmp_path):
    proc = bench_run(tmp_path, None, "-m", *TINY, "backbone=b0,b9", "optimizer.lr=0.001,-1")
    assert proc.returncode == EXIT_CONFIG_ERROR, proc.stderr[-2000:]
    assert "3 of 4 jobs have config errors; nothing ran" in proc.stderr
    assert "Could not find 'backbone/b9'" in proc.stderr
    assert "optimizer.lr=-1.0" in proc.stderr
    assert _nothing_written(tmp_path)
    assert "job 1/4" not in proc.stdout


def _config(*task: str, params: dict | None = None):
    sweeper = {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"}
    sweeper["params"] = params or {}
    return OmegaConf.create({"hydra": {"sweeper": sweeper, "overrides": {"task": list(task)}}})


@pytest.mark.parametrize(
    "task, params",
    [
        (["backbone=b0,b1,b2", "seed=1,2"], None),
        (["seed=range(1,4)", "dataset.train_split='train[:10%]'", "epochs=1"], None),
        (["backbone=b0"], {"optimizer": "adam,sgd"}),
    ],
)
def test_jobs_expand_as_hydras_basic_sweeper_launches_them(task, params):
    arguments = [f"{k}={v}" for k, v in (params or {}).items()] + task
    parsed = OverridesParser.create().parse_overrides(arguments)
    (hydras,) = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    assert multirun.expand(_config(*task, params=params)) == hydras


def test_other_sweepers_are_not_expanded():
    config = _config("backbone=b0,b1")
    config.hydra.sweeper["_target_"] = "hydra_plugins.hydra_optuna_sweeper.OptunaSweeper"
    assert multirun.expand(config) is None


def test_the_summary_table_lists_every_job_with_missing_numbers_as_dashes():
    rows = [
        {"job": 2, "backbone": "b0", "status": "failed", "run_id": "bbb"},
        {"job": 1, "backbone": "mobilenet_v2", "status": "completed", "final_val_accuracy": 0.5,
         "train_time_s": 12.345, "run_id": "aaa"},
    ]  # fmt: skip
    lines = progress.format_table(rows).splitlines()
    assert lines[0].split()[:3] == ["job", "backbone", "dataset"]
    assert lines[1].split()[:2] == ["1", "mobilenet_v2"] and "0.500" in lines[1]
    assert "12.3" in lines[1] and lines[2].split()[1] == "b0" and " - " in lines[2]


def test_a_failed_jobs_summary_crosses_a_process_boundary():
    """The joblib launcher returns a job's exception pickled: a failed run's must arrive
    whole (it once failed to unpickle and took the whole multirun down)."""
    import pickle

    row = {"job": 3, "status": "failed"}
    again = pickle.loads(pickle.dumps(progress.RunFailed("run abc failed: Diverged", row)))
    assert (str(again), again.summary) == ("run abc failed: Diverged", row)


def test_user_errors_keep_their_fields_across_a_process_boundary():
    import pickle

    error = ConfigError("freeze.blocks", 9, "1 to 7", "pass freeze.blocks=7 or fewer")
    again = pickle.loads(pickle.dumps(error))
    assert (again.key, again.value, again.allowed, again.fix) == (
        "freeze.blocks", 9, "1 to 7", "pass freeze.blocks=7 or fewer",
    )  # fmt: skip
    assert str(again) == str(error)


@pytest.mark.slow
def test_optunas_sweeper_tunes_on_validation_and_its_trials_are_runs(tmp_path, tfds_dir, tiny):
    """hydra/sweeper=tune (Hydra's Optuna sweeper): each trial is a bench run whose record
    lands with the others, and the number Optuna maximises is the run's final validation
    accuracy, never its test accuracy."""
    import yaml

    from tests.helpers import load_records

    args = ["-m", "hydra/sweeper=tune", "hydra.sweeper.n_trials=2", "optimizer=adamw",
            "epochs=1", *tiny]  # fmt: skip
    proc = bench_run(tmp_path, tfds_dir, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = load_records(tmp_path)
    assert len(records) == 2 and {r["status"] for r in records} == {"completed"}
    (sweep_dir,) = (tmp_path / "multirun").iterdir()
    found = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    top = max(r["metrics"]["final_val_accuracy"] for r in records)
    assert found["best_value"] == pytest.approx(top)
    rates = [r["config"]["optimizer"]["lr"] for r in records
             if r["metrics"]["final_val_accuracy"] == top]  # fmt: skip
    assert any(found["best_params"]["optimizer.lr"] == pytest.approx(r) for r in rates)


def test_a_weight_decay_the_optimizer_would_ignore_is_a_config_error():
    from tests.helpers import make_spec

    with pytest.raises(ConfigError, match="optimizer=adam would ignore it"):
        make_spec("optimizer=adam", "optimizer.weight_decay=0.001")
    assert make_spec("optimizer=adamw", "optimizer.weight_decay=0.001").cfg.optimizer.weight_decay
