"""A wheel that runs anywhere: configs and published numbers inside, outputs where the user is."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, bench_env


def _run(args: list, cwd: Path, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, **kwargs
    )


def _copy_of_the_tree(target: Path) -> Path:
    """The checkout's files (tracked, and new ones not ignored) copied to ``target``: the
    wheel is built there, so no build/ or *.egg-info lands in the repository and no stale
    build/lib ships deleted modules."""
    listed = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT)
    assert listed.returncode == 0, listed.stderr
    for name in filter(None, listed.stdout.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.mark.slow
def test_a_wheel_installed_elsewhere_runs_the_smoke_preset_and_reports_from_an_empty_folder(
    tmp_path, tfds_dir
):
    """The README's smoke run, from a wheel installed elsewhere: experiment=smoke then
    bench.report, in a folder of its own."""
    before = _top_level()
    source = _copy_of_the_tree(tmp_path / "source")
    build = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", tmp_path / "dist", source],
        cwd=tmp_path,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("bench-*.whl")
    # bench from the wheel alone, into a folder of its own; the stack comes from this
    # interpreter's environment (a virtual one or not), which PYTHONPATH goes before.
    site = tmp_path / "site"
    install = _run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site,
                    wheel], tmp_path)  # fmt: skip
    assert install.returncode == 0, install.stderr[-2000:]
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = {**bench_env(empty, tfds_dir), "PYTHONPATH": str(site)}
    where = _run(
        [sys.executable, "-c", "import bench.conf; print(bench.conf.__file__)"], empty, env
    )
    assert where.stdout.startswith(str(site)), "bench must come from the wheel, not the checkout"
    run = _run([sys.executable, "-m", "bench.run", "experiment=smoke", "wandb.mode=offline"],
               empty, env, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    (record,) = (empty / "results" / "runs").glob("*.json")
    assert json.loads(record.read_text())["status"] == "completed"
    assert list((empty / "wandb").glob("offline-run-*"))
    report = _run([sys.executable, "-m", "bench.report"], empty, env, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    page = (empty / "results" / "report" / "report.html").read_text()
    assert "Only mobilenet_v2 ran on shapes (test accuracy " in page
    assert "nothing to compare it with" in page
    assert (empty / "results" / "report" / "report.md").is_file()
    assert _top_level() == before  # no build/ or *.egg-info left in the repository


def _top_level() -> set[str]:
    return {p.name for p in ROOT.iterdir() if not p.name.startswith(".")}


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
