"""Sweeps that survive: skip what is done, keep every attempt, claim each point once,
validate before anything runs, and stop cleanly on a signal."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from bench.analysis import load
from bench.core import record
from bench.core.errors import EXIT_CONFIG_ERROR
from bench.core.record import ErrorInfo, Record, Status
from bench.launch import locks, oom
from tests.conftest import TINY, bench_env, bench_run, inject, load_records
from tests.wandb_files import read_run
from tests.wandb_files import records as wandb_records


def _record(run_id: str, status: Status, attempt: str) -> Record:
    error = ErrorInfo("X", "boom") if status == Status.failed else None
    return Record(run_id=run_id, status=status, started_at=record.now(),
                  finished_at=record.now(), config={"seed": 1}, error=error,
                  job={"attempt": attempt})  # fmt: skip


def test_a_failed_attempt_never_replaces_a_completed_record(tmp_path):
    record.save(_record("p", Status.completed, "a1"), tmp_path)
    record.save(_record("p", Status.failed, "a2"), tmp_path)
    kept = record.read(tmp_path / "p.json")
    assert kept.completed and kept.job["attempt"] == "a1"
    attempts = sorted(p.name for p in (tmp_path / "attempts" / "p").iterdir())
    assert len(attempts) == 2 and all(name.endswith(".json") for name in attempts)
    assert kept.attempts == 2


def test_a_newer_attempt_replaces_an_older_failed_one(tmp_path):
    record.save(_record("p", Status.failed, "a1"), tmp_path)
    record.save(_record("p", Status.completed, "a2"), tmp_path)
    assert record.read(tmp_path / "p.json").job["attempt"] == "a2"


def _write_many(args):
    directory, index = args
    record.save(_record(f"point{index}", Status.completed, f"a{index}"), directory)


def test_ten_concurrent_writers_leave_ten_valid_records(tmp_path):
    with multiprocessing.get_context("spawn").Pool(10) as pool:
        pool.map(_write_many, [(tmp_path, i) for i in range(10)])
    found = sorted(tmp_path.glob("*.json"))
    assert len(found) == 10
    assert all(record.problems(json.loads(p.read_text())) == [] for p in found)
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_point_is_claimed_once(tmp_path):
    lock = locks.claim(tmp_path, "p")
    assert isinstance(lock, locks.Lock)
    other = locks.claim(tmp_path, "p")
    assert other["pid"] == os.getpid() and other["host"] == socket.gethostname()
    lock.release()
    assert isinstance(locks.claim(tmp_path, "p"), locks.Lock)


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = locks.path_for(tmp_path, "p")
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "started_at": 0}))
    lock = locks.claim(tmp_path, "p")
    assert isinstance(lock, locks.Lock)
    assert locks.holder(path)["pid"] == os.getpid()


def test_a_lock_without_heartbeat_from_another_host_is_taken_over(tmp_path):
    path = locks.path_for(tmp_path, "p")
    path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "started_at": 0}))
    assert not isinstance(locks.claim(tmp_path, "p"), locks.Lock)  # fresh: still held
    old = time.time() - locks.STALE_AFTER_S - 60
    os.utime(path, (old, old))
    assert isinstance(locks.claim(tmp_path, "p"), locks.Lock)


def _bench(tmp_path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "bench.run", *args, f"results_dir={tmp_path / 'runs'}"]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)


def _folder(tmp_path: Path, classes: int) -> Path:
    root = tmp_path / "images"
    for index in range(classes):
        (root / f"class{index}").mkdir(parents=True)
    return root


# case: (overrides, what the message must name)
VALIDATION = {
    "unknown option": (["backbone=b9"], "backbone"),
    "image size too small": (["image_size=16"], "image_size=16"),
    "freeze.blocks beyond the backbone": (
        ["freeze=top_blocks", "freeze.blocks=17", "backbone=b0"],
        "freeze.blocks=17",
    ),
    "unfreezing a TF1 hub handle": (
        ["backbone.source=hub", "freeze=unfrozen", "backbone.weights=imagenet"],
        "backbone.hub_handle=",
    ),
    "weights file missing": (["backbone.weights=/no/such.h5"], "backbone.weights=/no/such.h5"),
    "folder path missing": (["dataset=folder", "dataset.path=/no/such"], "dataset.path=/no/such"),
    "zero epochs": (["epochs=0"], "epochs=0"),
    "negative epochs": (["epochs=-3"], "epochs=-3"),
    "negative learning rate": (["optimizer.lr=-0.1"], "optimizer.lr=-0.1"),
    "zero learning rate": (["optimizer.lr=0"], "optimizer.lr=0"),
    "zero batch size": (["batch_size=0"], "batch_size=0"),
    "negative batch size": (["batch_size=-8"], "batch_size=-8"),
}


@pytest.mark.parametrize("case", list(VALIDATION))
def test_every_config_error_exits_2_naming_the_key_and_writes_nothing(tmp_path, case):
    overrides, key = VALIDATION[case]
    proc = _bench(tmp_path, *TINY, *overrides)
    assert proc.returncode == EXIT_CONFIG_ERROR, proc.stderr[-2000:]
    assert key in proc.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "wandb").exists()
    assert not (tmp_path / "outputs").exists()  # not even Hydra's output folder


def test_a_folder_with_one_class_exits_2(tmp_path):
    root = _folder(tmp_path, 1)
    proc = _bench(tmp_path, *TINY, "dataset=folder", f"dataset.path={root}")
    assert proc.returncode == EXIT_CONFIG_ERROR
    assert f"dataset.path={root}" in proc.stderr and "found 1 subfolders" in proc.stderr


@pytest.mark.slow
def test_a_batch_the_replicas_cannot_share_exits_2_before_training(tmp_path, tfds_dir):
    # Only the worker knows the replica count: two logical CPUs stand in for two GPUs.
    env = inject(bench_env(tmp_path, tfds_dir), BENCH_TEST_CPU_REPLICAS="2")
    proc = bench_run(tmp_path, tfds_dir, *TINY, "strategy=mirrored", "batch_size=15", env=env)
    assert proc.returncode == EXIT_CONFIG_ERROR, proc.stderr[-2000:]
    assert "batch_size=15" in proc.stderr and "a multiple of 2" in proc.stderr
    assert "batch_size=14 or batch_size=16" in proc.stderr
    assert "Epoch 1/" not in proc.stdout and load_records(tmp_path) == []


@pytest.mark.slow
def test_a_second_invocation_trains_nothing_and_a_failed_forced_rerun_keeps_the_record(
    tmp_path, tfds_dir
):
    args = ["-m", "seed=1,2", "backbone=mobilenet_v2", "epochs=1", *TINY, "wandb.mode=disabled"]
    first = bench_run(tmp_path, tfds_dir, *args)
    assert first.returncode == 0, first.stderr[-2000:]
    before = {r["run_id"]: r for r in load_records(tmp_path)}
    again = bench_run(tmp_path, tfds_dir, *args)
    assert again.returncode == 0
    assert again.stdout.count("already completed") == 2 and "Epoch 1/1" not in again.stdout
    assert "2 jobs: 2 completed, 0 failed" in again.stdout
    assert {r["run_id"]: r for r in load_records(tmp_path)} == before
    # Forced again with the data gone: the attempt fails, the completed record stays.
    no_data = tmp_path / "no_data"  # TFDS_DATA_DIR with nothing prepared, no download
    forced = bench_run(tmp_path, no_data, *args, "force=true", "dataset.download=false")
    assert forced.returncode != 0
    after = {r["run_id"]: r for r in load_records(tmp_path)}
    for run_id, kept in after.items():  # the same completed record, now counting 2 attempts
        assert kept["status"] == "completed" and kept["attempts"] == 2
        assert {**kept, "attempts": 1} == before[run_id]
        found = list((tmp_path / "runs" / "attempts" / run_id).glob("*.json"))
        assert sorted(json.loads(p.read_text())["status"] for p in found) == ["completed", "failed"]
    # The aggregator reads the completed records, not the failed attempts beside them.
    table = load.from_records(tmp_path / "runs").runs
    assert sorted(table["run_id"]) == sorted(before) and set(table["status"]) == {"completed"}


def _launch(tmp_path, tfds_dir, *args):
    command = [sys.executable, "-m", "bench.run", *args, f"results_dir={tmp_path / 'runs'}"]
    return subprocess.Popen(
        command, cwd=tmp_path, env=bench_env(tmp_path, tfds_dir), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _until(proc: subprocess.Popen, text: str) -> list[str]:
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"{text!r} never appeared:\n{''.join(seen)[-3000:]}")


RESUMABLE = ["epochs=4", *TINY, "backbone=mobilenet_v2", "wandb.mode=disabled"]


# how the run is cut: (whom, signal, the error its record names)
CUTS = {
    "SIGKILL to the worker": ("worker", signal.SIGKILL, "WorkerDied"),
    "SIGTERM to the launcher": ("launcher", signal.SIGTERM, "Interrupted"),
    # The launcher cannot forward SIGKILL: Linux tells the worker its parent died.
    "SIGKILL to the launcher": ("launcher", signal.SIGKILL, "Interrupted"),
}


def _wandb_kinds(record: dict) -> list[str]:
    (path,) = Path(record["wandb"]["dir"]).glob("run-*.wandb")
    return [r.WhichOneof("record_type") for r in wandb_records(path)]


@pytest.mark.slow
@pytest.mark.parametrize("how", list(CUTS))
def test_a_run_cut_after_its_second_epoch_resumes_with_each_epoch_once(tmp_path, tfds_dir, how):
    whom, sig, expected = CUTS[how]
    # W&B offline once (its files are read back), off otherwise (it costs seconds a start).
    wandb = "wandb.mode=offline" if sig == signal.SIGTERM else "wandb.mode=disabled"
    launcher = _launch(tmp_path, tfds_dir, *RESUMABLE, wandb)
    _until(launcher, "Epoch 3/4")  # epochs 1 and 2 are finished and checkpointed
    (worker,) = psutil.Process(launcher.pid).children()
    (worker if whom == "worker" else psutil.Process(launcher.pid)).send_signal(sig)
    rest = launcher.stdout.read()  # the worker holds the pipe too: this waits for both
    assert launcher.wait(timeout=120) != 0
    with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
        worker.wait(timeout=60)  # an orphan is reaped by init, or stays a zombie
    assert not psutil.pid_exists(worker.pid) or worker.status() == psutil.STATUS_ZOMBIE
    (cut,) = load_records(tmp_path)
    assert cut["status"] == "failed"
    assert cut["error"]["type"] == expected, rest[-2000:]
    assert list((tmp_path / "runs" / "checkpoints").iterdir())
    relaunch = bench_run(tmp_path, tfds_dir, *RESUMABLE, wandb)
    assert relaunch.returncode == 0, relaunch.stderr[-3000:]
    assert "Epoch 1/4" not in relaunch.stdout and "Epoch 3/4" in relaunch.stdout
    (done,) = load_records(tmp_path)
    assert done["status"] == "completed" and done["resumes"] == 1
    assert [row["epoch"] for row in done["history"]] == [1, 2, 3, 4]
    assert not (tmp_path / "runs" / "checkpoints" / done["run_id"]).exists()
    if wandb.endswith("offline"):  # one W&B run, marked pre-empted, then continued
        assert cut["wandb"]["id"] == done["wandb"]["id"] == done["run_id"]
        assert "preempting" in _wandb_kinds(cut) and "preempting" not in _wandb_kinds(done)
        assert read_run(Path(done["wandb"]["dir"]))["run"].run_id == done["run_id"]


# No dropout or stochastic depth: a relaunch then computes exactly what an uncut run does.
TWO_PHASE = [*RESUMABLE, "backbone=b0", "freeze=two_phase", "freeze.head_epochs=2", "epochs=2",
             "optimizer=adam", "optimizer.lr=0.001", "head.dropout=0",
             "backbone.drop_connect_rate=0"]  # fmt: skip


@pytest.mark.slow
def test_a_two_phase_run_cut_after_its_head_phase_resumes_with_the_trained_head(tmp_path, tfds_dir):
    reference = tmp_path / "reference"  # the same run, never cut
    reference.mkdir()
    uncut = bench_run(reference, tfds_dir, *TWO_PHASE)
    assert uncut.returncode == 0, uncut.stderr[-3000:]
    launcher = _launch(tmp_path, tfds_dir, *TWO_PHASE)
    _until(launcher, "Epoch 3/4")  # the head phase (epochs 1, 2) is finished and kept
    (worker,) = psutil.Process(launcher.pid).children()
    worker.kill()
    launcher.communicate(timeout=120)
    relaunch = bench_run(tmp_path, tfds_dir, *TWO_PHASE)
    assert relaunch.returncode == 0, relaunch.stderr[-3000:]
    assert "Epoch 3/4" in relaunch.stdout
    assert not any(f"Epoch {n}/4" in relaunch.stdout for n in (1, 2))
    (done,), (expected,) = load_records(tmp_path), load_records(reference)
    assert done["status"] == "completed" and done["resumes"] == 1
    history = done["history"]
    assert [(row["epoch"], row["phase"]) for row in history] == [
        (1, "head"), (2, "head"), (3, "finetune"), (4, "finetune")
    ]  # fmt: skip
    # The fine-tune phase's own optimizer: optimizer.lr / 10 (finetune_lr null).
    assert [row["lr"] for row in history] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4], rel=1e-6)
    # It fine-tunes the head the head phase trained (a fresh head would start elsewhere):
    # the same losses as the run that was never cut, to float32 round-off.
    losses = [row["loss"] for row in expected["history"]]
    assert [row["loss"] for row in history] == pytest.approx(losses, rel=1e-4)


@pytest.mark.slow
def test_two_launchers_racing_on_one_point_train_it_once(tmp_path, tfds_dir):
    args = ["epochs=2", *TINY, "wandb.mode=disabled"]
    first, second = _launch(tmp_path, tfds_dir, *args), _launch(tmp_path, tfds_dir, *args)
    outputs = [p.communicate(timeout=600)[0] for p in (first, second)]
    trained = sum("Epoch 1/2" in out for out in outputs)
    assert trained == 1, outputs
    assert sum("being trained by" in out or "already completed" in out for out in outputs) == 1
    (done,) = load_records(tmp_path)
    assert done["status"] == "completed" and done["attempts"] == 1


def _images(folder: Path, count: int, seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        pixels = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{index}.png")


@pytest.mark.slow
def test_a_folder_with_truncated_and_non_image_files_trains_and_reports_them(tmp_path):
    root = tmp_path / "images"
    for index, name in enumerate(("cats", "dogs")):
        _images(root / name, 12, index)
    good = (root / "cats" / "img0.png").read_bytes()
    (root / "cats" / "truncated.png").write_bytes(good[: len(good) // 3])
    (root / "dogs" / "notes.jpg").write_text("not an image at all")
    (root / "dogs" / "readme.txt").write_text("ignored: not an image extension")
    args = ["dataset=folder", f"dataset.path={root}", "backbone=mobilenet_v2",
            "backbone.weights=none", "image_size=32", "epochs=1", "batch_size=8",
            "wandb.mode=disabled"]  # fmt: skip
    proc = _bench(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (done,) = load_records(tmp_path)
    assert done["status"] == "completed"
    assert done["skipped_files"] == {"count": 2, "first": ["cats/truncated.png", "dogs/notes.jpg"]}
    assert done["config"]["dataset"]["num_classes"] == 2
    assert "skipped 2 unreadable files" in proc.stdout


def test_a_folder_whose_files_are_all_unreadable_is_an_error(tmp_path):
    from bench.core.errors import DataUnavailable
    from bench.pipeline import folder

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataUnavailable, match="split is empty"):
        folder.load(str(tmp_path), 0.2, seed=1)


@pytest.mark.slow
def test_a_multirun_survives_a_bad_weights_file_and_an_out_of_memory_job(tmp_path, tfds_dir):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an HDF5 file")
    env = inject(bench_env(tmp_path, tfds_dir), BENCH_TEST_OOM_ABOVE="8")
    tiny = [o for o in TINY if not o.startswith(("batch_size=", "wandb.mode=", "backbone.w"))]
    args = ["-m", f"backbone.weights=none,{bad}", "batch_size=8,16", "epochs=1", *tiny]
    proc = bench_run(tmp_path, tfds_dir, *args, "wandb.mode=disabled", env=env)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "4 jobs: 1 completed, 3 failed" in proc.stdout
    found = {(r["config"]["backbone"]["weights"], r["config"]["batch_size"]): r
             for r in load_records(tmp_path)}  # fmt: skip
    assert found[("none", 8)]["status"] == "completed"
    oom = found[("none", 16)]
    assert oom["error"]["type"] == "OutOfMemory" and "batch_size=16" in oom["error"]["message"]
    assert oom["effective_batch_size"] == 16
    for batch in (8, 16):  # the weights fail first, whatever the batch
        broken = found[(str(bad), batch)]
        assert broken["status"] == "failed" and broken["error"]["type"] != "OutOfMemory"


@pytest.mark.slow
def test_oom_retry_trains_the_point_at_half_the_batch(tmp_path, tfds_dir):
    env = inject(bench_env(tmp_path, tfds_dir), BENCH_TEST_OOM_ABOVE="16")
    args = ["epochs=1", *TINY[:-1], "oom_retry=true", "wandb.mode=disabled"]  # batch_size=32
    proc = bench_run(tmp_path, tfds_dir, *args, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "trying again at batch_size=16" in proc.stdout
    (done,) = load_records(tmp_path)
    assert done["status"] == "completed" and done["attempts"] == 2
    assert done["config"]["batch_size"] == 32 and done["effective_batch_size"] == 16
    (run_id,) = [p.name for p in (tmp_path / "runs" / "attempts").iterdir()]
    tried = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "attempts" / run_id).iterdir()]
    assert sorted(r["effective_batch_size"] for r in tried) == [16, 32]


def test_oom_retry_halves_down_to_its_floor():
    assert [oom.smaller_batch(b) for b in (64, 16, 15, 8)] == [32, 8, None, None]


def _cgroup(tmp_path: Path, v2: bool, kills: int) -> tuple[Path, Path]:
    tmp_path.mkdir()
    proc_cgroup = tmp_path / "cgroup"
    if v2:
        proc_cgroup.write_text("0::/job\n")
        events = tmp_path / "fs" / "job" / "memory.events"
        text = f"low 0\nhigh 0\nmax 3\noom 2\noom_kill {kills}\n"
    else:
        proc_cgroup.write_text("4:memory:/job\n0::/\n")
        events = tmp_path / "fs" / "memory" / "job" / "memory.oom_control"
        text = f"oom_kill_disable 0\nunder_oom 0\noom_kill {kills}\n"
    events.parent.mkdir(parents=True)
    events.write_text(text)
    return tmp_path / "fs", proc_cgroup


@pytest.mark.parametrize("v2", [True, False], ids=["cgroup-v2", "cgroup-v1"])
def test_a_sigkill_counted_by_the_memory_cgroup_is_out_of_memory(tmp_path, v2):
    before = oom.kill_count(*_cgroup(tmp_path / "a", v2, kills=1))
    after = oom.kill_count(*_cgroup(tmp_path / "b", v2, kills=2))
    assert (before, after) == (1, 2)
    assert oom.killed_by_oom(-signal.SIGKILL, before, after)
    assert not oom.killed_by_oom(-signal.SIGKILL, before, before)  # killed by someone else
    assert not oom.killed_by_oom(1, before, after)
    assert oom.kill_count(tmp_path / "none", tmp_path / "no_such_file") is None
