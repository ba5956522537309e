"""Sweeps that survive: skip what is done, keep every attempt, claim each point once,
validate before anything runs, and stop cleanly on a signal."""

from __future__ import annotations

import contextlib
import dataclasses
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
from bench.launch import job, locks, oom
from tests.helpers import (
    SMALL_DATA,
    TINY,
    bench_env,
    bench_run,
    compose,
    hub_backbone,
    inject,
    load_records,
    make_spec,
)  # fmt: skip
from tests.pool_tasks import write_record
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
    assert attempts == ["a1.json", "a2.json"]
    assert kept.attempts == 2


def test_a_newer_attempt_replaces_an_older_failed_one(tmp_path):
    record.save(_record("p", Status.failed, "a1"), tmp_path)
    record.save(_record("p", Status.completed, "a2"), tmp_path)
    assert record.read(tmp_path / "p.json").job["attempt"] == "a2"


def test_ten_concurrent_writers_leave_ten_valid_records(tmp_path):
    with multiprocessing.get_context("spawn").Pool(10) as pool:
        pool.map(write_record, [(tmp_path, i) for i in range(10)])
    found = sorted(tmp_path.glob("*.json"))
    assert [p.name for p in found] == sorted(f"point{i}.json" for i in range(10))
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


def test_a_lock_from_another_host_is_taken_over_after_ten_minutes_without_heartbeat(tmp_path):
    path = locks.path_for(tmp_path, "p")
    path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "started_at": 0}))
    assert not isinstance(locks.claim(tmp_path, "p"), locks.Lock)  # fresh: still held
    nine = time.time() - 9 * 60  # the README's 10 minutes, not the code's own constant
    os.utime(path, (nine, nine))
    assert not isinstance(locks.claim(tmp_path, "p"), locks.Lock)
    eleven = time.time() - 11 * 60
    os.utime(path, (eleven, eleven))
    assert isinstance(locks.claim(tmp_path, "p"), locks.Lock)


def test_a_held_lock_is_touched_every_30_seconds(tmp_path, monkeypatch):
    """The README's heartbeat: 30 s, each beat a touch of the lock file. The test waits for
    beats at a hundredth of that interval (the thread reads the module's value)."""
    assert locks.HEARTBEAT_S == 30.0
    monkeypatch.setattr(locks, "HEARTBEAT_S", 0.3)
    lock = locks.claim(tmp_path, "p")
    old = time.time() - 3600
    os.utime(lock.path, (old, old))
    with lock:
        deadline = time.monotonic() + 30
        while lock.path.stat().st_mtime == old and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lock.path.stat().st_mtime > old + 3000  # touched: now, not an hour ago
    assert not lock.path.exists()  # released on leaving


def _folder(tmp_path: Path, classes: int) -> Path:
    root = tmp_path / "images"
    for index in range(classes):
        (root / f"class{index}").mkdir(parents=True)
    return root


# case: (overrides, what the message must name)
VALIDATION = {
    "image size too small": (["image_size=16"], "image_size=16"),
    "freeze.blocks beyond the backbone": (
        ["freeze=top_blocks", "freeze.blocks=17", "backbone=b0"],
        "freeze.blocks=17",
    ),
    "unfreezing a TF1 hub handle": (
        ["backbone=b0", "backbone.source=hub", "freeze=unfrozen", "backbone.weights=imagenet"],
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
    "wandb online without credentials": (["wandb.mode=online"], "wandb.mode=online"),
}


@pytest.mark.parametrize("case", list(VALIDATION))
def test_every_config_error_stops_the_job_with_exit_2_naming_the_key(case, capsys):
    """The job's own check (the one the real command runs before Hydra writes anything; the
    real command is shown doing so in test_launch.py)."""
    overrides, key = VALIDATION[case]
    with pytest.raises(SystemExit) as stopped:
        job.validated(compose(*TINY, *overrides))
    assert stopped.value.code == EXIT_CONFIG_ERROR
    assert key in capsys.readouterr().err


def test_a_folder_with_one_class_stops_the_job_with_exit_2(tmp_path, capsys):
    root = _folder(tmp_path, 1)
    with pytest.raises(SystemExit) as stopped:
        job.validated(compose(*TINY, "dataset=folder", f"dataset.path={root}"))
    assert stopped.value.code == EXIT_CONFIG_ERROR
    err = capsys.readouterr().err
    assert f"dataset.path={root}" in err and "found 1 subfolders" in err


@pytest.mark.slow
def test_a_batch_the_replicas_cannot_share_exits_2_before_training(tmp_path, tfds_dir, tiny):
    # Only the worker knows the replica count: two logical CPUs stand in for two GPUs.
    env = inject(bench_env(tmp_path, tfds_dir), BENCH_TEST_CPU_REPLICAS="2")
    proc = bench_run(tmp_path, tfds_dir, *tiny, "strategy=mirrored", "batch_size=15", env=env)
    assert proc.returncode == EXIT_CONFIG_ERROR, proc.stderr[-2000:]
    assert "batch_size=15" in proc.stderr and "a multiple of 2" in proc.stderr
    assert "batch_size=14 or batch_size=16" in proc.stderr
    assert "Epoch 1/" not in proc.stdout and load_records(tmp_path) == []


@pytest.mark.slow
def test_done_points_are_skipped_and_a_killed_forced_rerun_keeps_the_completed_record(
    tmp_path, tfds_dir, tiny, launch
):
    """Completed points are skipped; ``force=true`` trains one again; killing that attempt
    leaves the completed record in place (now counting two attempts), the launcher reports
    the failure of its own attempt, never the earlier success, and the aggregator reads
    the completed records, not the failed attempt beside them."""
    args = ["-m", "seed=1,2", "epochs=2", *tiny]  # Keras prints no epoch line for epochs=1
    first = bench_run(tmp_path, tfds_dir, *args)
    assert first.returncode == 0, first.stderr[-2000:]
    before = {r["run_id"]: r for r in load_records(tmp_path)}
    again = bench_run(tmp_path, tfds_dir, *args)
    assert again.returncode == 0
    assert again.stdout.count("already completed") == 2 and "Epoch 1/2" not in again.stdout
    assert "2 jobs: 2 completed, 0 failed" in again.stdout
    assert {r["run_id"]: r for r in load_records(tmp_path)} == before
    forced = launch(tmp_path, tfds_dir, "seed=1", "epochs=2", *tiny, "force=true",
                    env=_held(tmp_path, tfds_dir, 1))  # fmt: skip
    forced.until("holding at epoch 1")
    forced.worker().kill()
    assert forced.finish() != 0
    rest = forced.output.split("holding at epoch 1", 1)[1]
    assert "job 1 failed" in rest and "job 1 completed" not in rest and "WorkerDied" in rest
    after = {r["run_id"]: r for r in load_records(tmp_path)}
    (seed_1,) = [run_id for run_id, r in before.items() if r["config"]["seed"] == 1]
    for run_id, kept in after.items():
        assert kept["status"] == "completed"
        if run_id != seed_1:
            assert kept == before[run_id]
            continue
        # The same completed record (the same attempt), now counting 2 attempts.
        assert {**kept, "attempts": 1} == before[run_id] and kept["attempts"] == 2
        found = list((tmp_path / "runs" / "attempts" / run_id).glob("*.json"))
        statuses = sorted(json.loads(p.read_text())["status"] for p in found)
        assert statuses == ["completed", "failed"]
    table = load.from_records(tmp_path / "runs").runs
    assert sorted(table["run_id"]) == sorted(before) and set(table["status"]) == {"completed"}


def _held(tmp_path: Path, tfds_dir: Path, epoch: int) -> dict:
    """A worker that waits at the start of ``epoch`` until a signal ends it (the test's cut
    lands there, however fast the epochs are)."""
    return inject(bench_env(tmp_path, tfds_dir), BENCH_TEST_HOLD_AT_EPOCH=str(epoch))


def _gone(worker: psutil.Process) -> bool:
    with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
        worker.wait(timeout=60)  # an orphan is reaped by init, or stays a zombie
    return not psutil.pid_exists(worker.pid) or worker.status() == psutil.STATUS_ZOMBIE


def test_a_stop_a_library_swallows_still_ends_fit_at_the_next_batch(monkeypatch):
    """The handler's exception can be lost (W&B's console capture catches ``Exception``
    around its callbacks, inside every write to stdout): the request stays set, and the
    next batch raises it again."""
    import tf_keras as keras

    from bench.core.errors import Interrupted
    from bench.pipeline import stop

    monkeypatch.setattr(stop, "_requested", [])
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    seen = []

    class Swallowing(keras.callbacks.Callback):  # stands in for W&B's write hook
        def on_train_batch_end(self, batch, logs=None):
            seen.append(batch)
            if batch == 2:
                try:
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(1)  # the handler runs, and raises, in here
                except Exception:  # noqa: BLE001
                    pass

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    stop.install()
    try:
        with pytest.raises(Interrupted, match="stopped by SIGTERM"):
            model.fit(np.zeros((20, 2)), np.zeros(20), batch_size=1, epochs=1, verbose=0,
                      callbacks=[Swallowing(), stop.StopOnRequest()])  # fmt: skip
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert seen == [0, 1, 2]  # stopped at the end of the batch the signal landed in


def _resumable(tiny: list[str]) -> list[str]:
    return ["epochs=4", *tiny]


# What a seed must replay: each epoch's shuffle and augmentation draws, dropout's masks and
# the counters of ReduceLROnPlateau (patience 1, so that it acts within four epochs).
REPLAYED = ["augment=keras_io", "optimizer.schedule=plateau", "optimizer.plateau_patience=1",
            "optimizer.plateau_factor=0.5", "head.dropout=0.5"]  # fmt: skip
NUMBERS = ("epoch", "phase", "loss", "accuracy", "val_loss", "val_accuracy", "lr")
KEPT = "keep_model=true"  # the final weights are compared too, from the kept SavedModels


def _weights(record) -> dict:
    """Every variable of a run's kept SavedModel, by its checkpoint key."""
    import tensorflow as tf

    model = record["model"] if isinstance(record, dict) else dataclasses.asdict(record.model)
    reader = tf.train.load_checkpoint(str(Path(model["path"]) / "variables" / "variables"))
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()}


def _same_weights(a, b) -> None:
    found, expected = _weights(a), _weights(b)
    assert found.keys() == expected.keys()
    for key, value in expected.items():
        assert np.array_equal(found[key], value), key


def _numbers(history) -> list[tuple]:
    rows = [row if isinstance(row, dict) else dataclasses.asdict(row) for row in history]
    return [tuple(row[key] for key in NUMBERS) for row in rows]


def _uncut(tmp_path: Path, tfds_dir: Path, args: list[str]):
    """The same point trained in one go, in this process (deterministic on this CPU)."""
    from bench.pipeline.execute import execute

    uncut = execute(make_spec(*args, f"results_dir={tmp_path / 'uncut'}", "wandb.mode=disabled",
                              tfds_dir=tfds_dir))  # fmt: skip
    assert uncut.completed and uncut.env.deterministic and uncut.env.not_deterministic == []
    return uncut


def _wandb_kinds(record: dict) -> list[str]:
    (path,) = Path(record["wandb"]["dir"]).glob("run-*.wandb")
    return [r.WhichOneof("record_type") for r in wandb_records(path)]


def test_the_backup_is_saved_after_every_epoch_but_the_phases_last(tmp_path):
    """Keras deletes a phase's backup as its fit ends, and the finished phase is kept
    whole instead: after a 3-epoch phase's last epoch the backup still says epoch 2."""
    import tensorflow as tf
    import tf_keras as keras

    from bench.pipeline.checkpoint import RunCheckpoint

    kept = RunCheckpoint(make_spec(f"results_dir={tmp_path}").site)
    resumes_at: list[int] = []
    look = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: resumes_at.append(kept.resume_epoch("p", 0))
    )
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    data = tf.data.Dataset.from_tensor_slices((np.ones((4, 2)), np.ones((4, 1)))).batch(2)
    model.fit(data, epochs=3, callbacks=[kept.backup("p", 3), look], verbose=0)
    assert resumes_at == [1, 2, 2]


@pytest.mark.slow
def test_a_run_cut_after_its_second_epoch_resumes_with_each_epoch_once(
    tmp_path, tfds_dir, tiny, launch
):
    """SIGTERM to the launcher (SLURM's time limit, a sweep agent's stop): the worker stops,
    records ``Interrupted``, keeps its checkpoint and marks its W&B run pre-empted; the
    command exits 128 + 15. The same command again continues after epoch 2, in the same W&B
    run, and ends with the numbers and final weights of the run never cut, bit for bit
    (augmentation, dropout and a plateau schedule included)."""
    args = [*_resumable(tiny), *REPLAYED, "wandb.mode=offline", KEPT]
    launcher = launch(tmp_path, tfds_dir, *args, env=_held(tmp_path, tfds_dir, 3))
    launcher.until("holding at epoch 3")  # epochs 1 and 2 are finished and checkpointed
    worker = launcher.worker()
    launcher.proc.send_signal(signal.SIGTERM)
    assert launcher.finish() == 128 + signal.SIGTERM
    assert _gone(worker)
    (cut,) = load_records(tmp_path)
    assert cut["status"] == "failed" and cut["error"]["type"] == "Interrupted", cut["error"]
    assert list((tmp_path / "runs" / "checkpoints").iterdir())
    relaunch = bench_run(tmp_path, tfds_dir, *args)
    assert relaunch.returncode == 0, relaunch.stderr[-3000:]
    assert "Epoch 1/4" not in relaunch.stdout and "Epoch 3/4" in relaunch.stdout
    (done,) = load_records(tmp_path)
    assert done["status"] == "completed" and done["resumes"] == 1
    assert [row["epoch"] for row in done["history"]] == [1, 2, 3, 4]
    assert not (tmp_path / "runs" / "checkpoints" / done["run_id"]).exists()
    uncut = _uncut(tmp_path, tfds_dir, args)
    assert _numbers(done["history"]) == _numbers(uncut.history)
    assert done["metrics"]["test_accuracy"] == uncut.metrics.test_accuracy
    _same_weights(done, uncut)
    # One W&B run, marked pre-empted, then continued.
    assert cut["wandb"]["id"] == done["wandb"]["id"] == done["run_id"]
    assert "preempting" in _wandb_kinds(cut) and "preempting" not in _wandb_kinds(done)
    assert read_run(Path(done["wandb"]["dir"]))["run"].run_id == done["run_id"]


# how the run is cut: (whom, signal, the error its record names, the launcher's exit code)
CUTS = {
    "SIGKILL to the worker": ("worker", signal.SIGKILL, "WorkerDied", 1),
    "SIGINT to the launcher (Ctrl-C)": ("launcher", signal.SIGINT, "Interrupted", 130),
    # The launcher cannot forward SIGKILL: Linux tells the worker its parent died.
    "SIGKILL to the launcher": ("launcher", signal.SIGKILL, "Interrupted", -signal.SIGKILL),
}


@pytest.mark.slow
@pytest.mark.parametrize("how", list(CUTS))
def test_every_other_way_of_cutting_a_run_leaves_its_record_and_checkpoint(
    tmp_path, tfds_dir, tiny, launch, how
):
    """The cut alone (the relaunch after it is the test above): no worker outlives its
    launcher, the record says why the run stopped, the checkpoint stays for a relaunch."""
    whom, sig, expected, code = CUTS[how]
    launcher = launch(tmp_path, tfds_dir, *_resumable(tiny), env=_held(tmp_path, tfds_dir, 3))
    launcher.until("holding at epoch 3")
    worker = launcher.worker()
    (worker if whom == "worker" else psutil.Process(launcher.proc.pid)).send_signal(sig)
    assert launcher.finish() == code
    assert _gone(worker)
    (cut,) = load_records(tmp_path)
    assert cut["status"] == "failed" and cut["error"]["type"] == expected, launcher.output[-2000:]
    if expected == "WorkerDied":
        assert "SIGKILL" in cut["error"]["message"]
    (kept,) = (tmp_path / "runs" / "checkpoints").iterdir()
    rows = [json.loads(line) for line in (kept / "history.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]


# No dropout or stochastic depth: a relaunch then computes exactly what an uncut run does.
def _two_phase(tiny: list[str]) -> list[str]:
    return [*_resumable(tiny), "freeze=two_phase", "freeze.policy=unfrozen",
            "freeze.head_epochs=2", "epochs=2", "optimizer=adam", "optimizer.lr=0.001",
            "head.dropout=0"]  # fmt: skip


@pytest.fixture(scope="module")
def two_phase_uncut(tmp_path_factory, tfds_dir, hub_dir):
    tiny = [*SMALL_DATA, *hub_backbone(hub_dir), "wandb.mode=disabled"]
    args = [*_two_phase(tiny), *REPLAYED, KEPT]
    return args, _uncut(tmp_path_factory.mktemp("two-phase"), tfds_dir, args)


@pytest.mark.slow
@pytest.mark.parametrize("cut_at", [2, 4], ids=["in the head phase", "in the fine-tune phase"])
def test_a_two_phase_run_killed_in_either_phase_ends_as_the_uncut_run(
    tmp_path, tfds_dir, launch, two_phase_uncut, cut_at
):
    """SIGKILL to the worker after epoch 1 (head phase) or epoch 3 (fine-tune phase) of
    2 + 2: the relaunch trains only the epochs that were lost and ends with the uncut run's
    numbers and final weights, bit for bit. The fine-tune phase has its own optimizer:
    optimizer.lr / 10."""
    args, uncut = two_phase_uncut
    launcher = launch(tmp_path, tfds_dir, *args, env=_held(tmp_path, tfds_dir, cut_at))
    launcher.until(f"holding at epoch {cut_at}")
    launcher.worker().kill()
    launcher.finish()
    relaunch = bench_run(tmp_path, tfds_dir, *args)
    assert relaunch.returncode == 0, relaunch.stderr[-3000:]
    # Keras counts each phase's fit on its own: the head phase's epochs are "k/2".
    shown = [f"Epoch {n}/{2 if n <= 2 else 4}" for n in range(1, 5)]
    assert [text in relaunch.stdout for text in shown] == [n >= cut_at for n in range(1, 5)]
    (done,) = load_records(tmp_path)
    assert done["status"] == "completed" and done["resumes"] == 1
    assert [(row["epoch"], row["phase"]) for row in done["history"]] == [
        (1, "head"), (2, "head"), (3, "finetune"), (4, "finetune")
    ]  # fmt: skip
    assert [row["lr"] for row in done["history"]][1:3] == pytest.approx([1e-3, 1e-4], rel=1e-6)
    assert _numbers(done["history"]) == _numbers(uncut.history)
    assert done["metrics"]["test_accuracy"] == uncut.metrics.test_accuracy
    _same_weights(done, uncut)


@pytest.mark.slow
def test_two_launchers_racing_on_one_point_train_it_once(tmp_path, tfds_dir, tiny, launch):
    args = ["epochs=2", *tiny]
    first, second = launch(tmp_path, tfds_dir, *args), launch(tmp_path, tfds_dir, *args)
    for launcher in (first, second):
        launcher.finish()
    outputs = [first.output, second.output]
    assert sum("Epoch 1/2" in out for out in outputs) == 1, outputs
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
def test_a_folder_with_truncated_and_non_image_files_trains_and_reports_them(tmp_path, tiny):
    root = tmp_path / "images"
    for index, name in enumerate(("cats", "dogs")):
        _images(root / name, 12, index)
    good = (root / "cats" / "img0.png").read_bytes()
    (root / "cats" / "truncated.png").write_bytes(good[: len(good) // 3])
    (root / "dogs" / "notes.jpg").write_text("not an image at all")
    (root / "dogs" / "readme.txt").write_text("ignored: not an image extension")
    args = [*tiny, "dataset=folder", f"dataset.path={root}", "epochs=1", "batch_size=8",
            "dataset.val_split=null", "dataset.test_split=null"]  # fmt: skip
    proc = bench_run(tmp_path, None, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (done,) = load_records(tmp_path)
    assert done["status"] == "completed"
    assert done["skipped_files"] == {"count": 2, "first": ["cats/truncated.png", "dogs/notes.jpg"]}
    assert done["config"]["dataset"]["num_classes"] == 2
    assert "skipped 2 unreadable files" in proc.stdout


def test_a_folder_whose_files_are_all_unreadable_is_an_error(tmp_path):
    from bench.core import splits
    from bench.core.errors import DataUnavailable
    from bench.pipeline import folder

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(
        DataUnavailable, match=r"0 examples cannot give .*\(2 unreadable files skipped\)"
    ):
        folder.scan(str(tmp_path), splits.plan("files", None, None, 0.15, 0.15, 1))


@pytest.mark.slow
def test_a_multirun_goes_on_past_jobs_that_fail(tmp_path, tfds_dir, hub_dir, tiny):
    """Four jobs: a hub handle that does not load fails two of them (before anything trains,
    whatever the batch), an injected out-of-memory error a third; the fourth completes, and
    the command ends with exit code 1 and the count."""
    env = inject(bench_env(tmp_path, tfds_dir), BENCH_TEST_OOM_ABOVE="8")
    missing = tmp_path / "no_such_handle"
    args = ["-m", "epochs=1", *tiny, f"backbone.hub_handle={hub_dir},{missing}",
            "batch_size=8,16"]  # fmt: skip
    proc = bench_run(tmp_path, tfds_dir, *args, env=env)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "4 jobs: 1 completed, 3 failed" in proc.stdout
    found = {(r["config"]["backbone"]["hub_handle"], r["config"]["batch_size"]): r
             for r in load_records(tmp_path)}  # fmt: skip
    assert found[(str(hub_dir), 8)]["status"] == "completed"
    oom = found[(str(hub_dir), 16)]
    assert oom["error"]["type"] == "OutOfMemory" and "batch_size=16" in oom["error"]["message"]
    assert oom["effective_batch_size"] == 16
    for batch in (8, 16):  # the backbone fails first, whatever the batch
        failed = found[(str(missing), batch)]
        assert failed["status"] == "failed" and record.problems(failed) == []
        assert failed["error"]["type"] == "WeightsUnavailable"
        assert str(missing) in failed["error"]["message"] and failed["history"] == []


@pytest.mark.slow
def test_oom_retry_trains_the_point_at_half_the_batch(tmp_path, tfds_dir, tiny):
    env = inject(bench_env(tmp_path, tfds_dir), BENCH_TEST_OOM_ABOVE="16")
    args = ["epochs=1", *tiny, "oom_retry=true"]  # batch_size=32
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


def test_two_fresh_runs_of_one_point_give_identical_numbers(tmp_path, tfds_dir, tiny):
    """Fine-tuned with augmentation, dropout and a plateau schedule, twice: every epoch's
    loss, accuracy and learning rate, the test accuracy and the final weights, bit for bit."""
    args = ["epochs=2", *tiny, *REPLAYED, KEPT]
    first, second = (_uncut(tmp_path / str(n), tfds_dir, args) for n in (1, 2))
    assert _numbers(first.history) == _numbers(second.history)
    assert first.metrics.test_accuracy == second.metrics.test_accuracy
    _same_weights(first, second)


@pytest.mark.slow
def test_two_runs_under_mirroredstrategy_give_identical_numbers_and_weights(
    tmp_path, tfds_dir, tiny
):
    """Two logical CPUs stand in for two GPUs: each batch is split over two replicas and
    the gradients are summed across them. One multirun trains the same point into two
    folders, each job in its own worker; both end the same, bit for bit."""
    args = ["-m", *tiny, *REPLAYED, KEPT, "epochs=2", "strategy=mirrored",
            f"results_dir={tmp_path / 'a' / 'runs'},{tmp_path / 'b' / 'runs'}"]  # fmt: skip
    env = inject(bench_env(tmp_path, tfds_dir), BENCH_TEST_CPU_REPLICAS="2")
    proc = subprocess.run([sys.executable, "-m", "bench.run", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (first,), (second,) = (load_records(tmp_path / name) for name in ("a", "b"))
    for done in (first, second):
        assert done["env"]["strategy"] == "MirroredStrategy" and done["env"]["replicas"] == 2
        assert done["env"]["deterministic"] and done["env"]["not_deterministic"] == []
    assert _numbers(first["history"]) == _numbers(second["history"])
    assert first["metrics"]["test_accuracy"] == second["metrics"]["test_accuracy"]
    _same_weights(first, second)


@contextlib.contextmanager
def busy_cores():
    """Both cores of the machine kept busy by two spinning processes (only while the stop
    is under way: they slow every other test on the machine too)."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


@pytest.mark.slow
def test_sigterm_mid_epoch_with_both_cores_busy_ends_the_worker_with_an_interrupted_record(
    tmp_path, tfds_dir, tiny, launch
):
    """A stop must not wait for a long epoch or a loaded machine: the worker is gone by the
    time the launcher exits (at the latest after the grace period, when it is killed), and
    the record says Interrupted either way."""
    # W&B offline: its console capture once swallowed the stop (bench.pipeline.stop).
    long_epochs = [*tiny, "dataset.train_split='train[:1600]'", "batch_size=8", "epochs=2",
                   "wandb.mode=offline"]  # fmt: skip
    launcher = launch(tmp_path, tfds_dir, *long_epochs)
    launcher.until("Epoch 1/2")  # 200 steps an epoch: the stop lands inside it
    worker = launcher.worker()
    with busy_cores():
        time.sleep(2.0)
        stopped = time.monotonic()
        launcher.proc.send_signal(signal.SIGTERM)
        assert launcher.finish() == 128 + signal.SIGTERM
        print(f"launcher exited {time.monotonic() - stopped:.1f} s after SIGTERM")  # measured
        assert _gone(worker)
    (cut,) = load_records(tmp_path)
    assert cut["status"] == "failed" and cut["error"]["type"] == "Interrupted", cut["error"]


# Runs that train only a head on cached features (a frozen backbone, no augmentation).
HEADS = ["freeze=frozen", "head=linear", "wandb.mode=disabled"]


def test_a_job_that_serves_gets_a_fresh_worker_not_the_shared_one(tiny):
    """Its serve runs beside the worker, after it: an idle shared worker would hold what
    its earlier jobs left meanwhile."""
    from bench.launch import isolate

    assert isolate.shares(make_spec(*tiny, *HEADS))
    assert not isolate.shares(make_spec(*tiny, *HEADS, "keep_model=true", "serve=true"))
    assert not isolate.shares(make_spec(*tiny, *HEADS, "shared_worker=false"))


@pytest.mark.slow
def test_runs_on_cached_features_share_one_worker_with_the_numbers_of_fresh_ones(
    tmp_path, tfds_dir, tiny
):
    """Two head runs of a sweep run in one worker process (not the launcher's), and
    compute exactly what each computes in a fresh worker (``shared_worker=false``)."""
    args = ["-m", "epochs=2", *tiny, *HEADS, "optimizer=adam,sgd"]
    shared = bench_run(tmp_path, tfds_dir, *args)
    assert shared.returncode == 0, shared.stderr[-3000:]
    together = {r["run_id"]: r for r in load_records(tmp_path)}
    fresh = bench_run(tmp_path, tfds_dir, *args, "shared_worker=false", "force=true")
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    apart = {r["run_id"]: r for r in load_records(tmp_path)}
    assert len(together) == 2 and together.keys() == apart.keys()
    assert len({r["env"]["pid"] for r in together.values()}) == 1
    assert sorted(r["env"]["job_in_process"] for r in together.values()) == [1, 2]
    assert [r["env"]["job_in_process"] for r in apart.values()] == [1, 1]
    assert len({r["env"]["pid"] for r in apart.values()}) == 2
    for run_id, shared_run in together.items():
        assert shared_run["feature_cache"]["status"] in ("filled", "hit")
        assert _numbers(shared_run["history"]) == _numbers(apart[run_id]["history"])
        assert shared_run["metrics"]["test_accuracy"] == apart[run_id]["metrics"]["test_accuracy"]


@pytest.mark.slow
def test_a_killed_shared_worker_fails_its_job_and_the_next_job_gets_a_new_one(
    tmp_path, tfds_dir, tiny, launch
):
    """Jobs of 1, 3 and 2 epochs in a shared worker; the worker is killed while the second
    holds at epoch 3: that job's record says WorkerDied, and the third job completes in a
    new worker."""
    args = ["-m", *tiny, *HEADS, "epochs=1,3,2"]
    launcher = launch(tmp_path, tfds_dir, *args, env=_held(tmp_path, tfds_dir, 3))
    launcher.until("holding at epoch 3")
    (worker,) = psutil.Process(launcher.proc.pid).children()
    worker.send_signal(signal.SIGKILL)
    assert launcher.finish() == 1
    assert "3 jobs: 2 completed, 1 failed" in launcher.output
    runs = {r["config"]["epochs"]: r for r in load_records(tmp_path)}
    assert runs[3]["status"] == "failed" and runs[3]["error"]["type"] == "WorkerDied"
    assert runs[1]["status"] == runs[2]["status"] == "completed"
    assert runs[1]["env"]["pid"] == worker.pid != runs[2]["env"]["pid"]
