"""A wheel that runs anywhere: configs and published numbers inside, outputs where the user is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, bench_env


def _run(args: list, cwd: Path, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, **kwargs
    )


@pytest.mark.slow
def test_a_wheel_installed_elsewhere_runs_and_reports_from_an_empty_folder(tmp_path, tfds_dir):
    build = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", tmp_path / "dist", ROOT],
        cwd=tmp_path,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("bench-*.whl")
    venv = tmp_path / "venv"
    # The stack comes from this interpreter's site-packages; bench only from the wheel.
    assert (
        _run([sys.executable, "-m", "venv", "--system-site-packages", venv], tmp_path).returncode
        == 0
    )
    python = venv / "bin" / "python"
    install = _run([python, "-m", "pip", "install", "--no-deps", "-q", wheel], tmp_path)
    assert install.returncode == 0, install.stderr[-2000:]
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = bench_env(empty, tfds_dir)
    env.pop("PYTHONPATH", None)
    where = _run([python, "-c", "import bench.conf; print(bench.conf.__file__)"], empty, env)
    assert str(venv) in where.stdout, "bench must come from the wheel, not the checkout"
    run = _run(
        [python, "-m", "bench.run", "backbone=mobilenet_v2", "experiment=demo", "epochs=1",
         "dataset.train_split='train[:10%]'", "wandb.mode=offline"],
        empty, env, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    (record,) = (empty / "results" / "runs").glob("*.json")
    assert json.loads(record.read_text())["status"] == "completed"
    assert list((empty / "wandb").glob("offline-run-*"))
    report = _run([python, "-m", "bench.report"], empty, env, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "mobilenet_v2" in (empty / "results" / "report" / "report.html").read_text()
    assert (empty / "results" / "report" / "report.md").is_file()


def _user_conf(tmp_path: Path) -> Path:
    conf = tmp_path / "my_conf"
    (conf / "dataset").mkdir(parents=True)
    (conf / "dataset" / "my_shapes.yaml").write_text(
        "defaults:\n  - shapes\n  - _self_\n\ntrain_split: train[:50%]\n"
    )
    return conf


@pytest.mark.parametrize("how", ["--config-dir", "hydra.searchpath"])
def test_users_add_their_own_option_files(tmp_path, how):
    conf = _user_conf(tmp_path)
    where = f"--config-dir={conf}" if how == "--config-dir" else f"hydra.searchpath=[file://{conf}]"
    # Overrides go before --cfg: Hydra's argparse takes them as leading positionals.
    args = [sys.executable, "-m", "bench.run", "dataset=my_shapes", where, "--cfg", "job"]
    proc = _run(args, tmp_path, dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "name: shapes" in proc.stdout and "train_split: train[:50%]" in proc.stdout
