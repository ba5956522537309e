"""Helpers the tests share: the real config, the real command (with deadlines), the offline
environment and the small runs the harness tests train."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
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
RUN_TIMEOUT_S = 600  # one real command; a stalled worker fails its test instead of hanging CI


def options(group: str) -> list[str]:
    """Every option file of a config group."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def offline(patch: pytest.MonkeyPatch, root: Path) -> None:
    """The environment every test and fixture runs in: no W&B server, no credentials, no
    cached Keras weights, W&B files under ``root``."""
    patch.setenv("WANDB_MODE", "offline")
    patch.setenv("WANDB_DIR", str(root))
    patch.setenv("WANDB_SILENT", "true")
    patch.delenv("WANDB_API_KEY", raising=False)
    patch.setenv("NETRC", str(root / "no-netrc"))  # a developer's ~/.netrc stays out
    patch.setenv("KERAS_HOME", str(root / "keras_home"))


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


# A few batches of the shapes dataset at the smallest size the backbones take: for tests
# about the harness, where the data's only job is to flow. TFDS split syntax, quoted
# because Hydra's grammar reads [...] as a list.
SMALL_DATA = [
    "dataset=shapes",
    "image_size=32",
    "batch_size=32",
    "head=linear",
    "dataset.train_split='train[:64]'",
    "dataset.val_split='validation[:32]'",
    "dataset.test_split='test[:32]'",
    "keep_model=false",  # saving the model is tests/test_serving.py's subject, not theirs
]
# The cheaper of the registry's two families, from scratch, for tests that need a real
# Keras application (weights, BatchNorm, blocks) but not a particular one.
TINY = [*SMALL_DATA, "backbone=mobilenet_v2", "backbone.weights=none", "freeze=unfrozen",
        "wandb.mode=offline"]  # fmt: skip


def hub_backbone(hub_dir: Path) -> list[str]:
    """Overrides for the tests' own hub SavedModel as a trainable backbone: two conv layers,
    so a run costs what the harness costs, not what a backbone costs."""
    return ["backbone.source=hub", f"backbone.hub_handle={hub_dir}", "freeze=unfrozen"]


def write_folder(root: Path, classes=("ants", "bees", "wasps"), per_class: int = 10) -> Path:
    """A class-per-subfolder image folder of random pixels (0..255, so both ends occur),
    one size per image."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in classes:
        (root / label).mkdir(parents=True)
        for index in range(per_class):
            pixels = rng.integers(0, 256, size=(20 + index, 30, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{index}.png")
    return root


def inject(env: dict, **faults: str) -> dict:
    """``env`` with test faults switched on in worker processes (tests/inject/sitecustomize.py),
    e.g. ``inject(env, BENCH_TEST_OOM_ABOVE="16")``."""
    where = str(ROOT / "tests" / "inject")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [where, env.get("PYTHONPATH")]))
    return {**env, **faults}


def command(tmp_path: Path, *args: str) -> list[str]:
    """``python -m bench.run ARGS`` with records in ``tmp_path/runs``."""
    return [sys.executable, "-m", "bench.run", *args, f"results_dir={tmp_path / 'runs'}"]


def bench_run(tmp_path: Path, tfds_dir: Path | None, *args: str, **kwargs):
    """Runs ``python -m bench.run ARGS`` in ``tmp_path``, records in ``tmp_path/runs``."""
    env = kwargs.pop("env", None) or bench_env(tmp_path, tfds_dir)
    kwargs.setdefault("timeout", RUN_TIMEOUT_S)
    return subprocess.run(
        command(tmp_path, *args), cwd=tmp_path, env=env, capture_output=True, text=True, **kwargs
    )  # fmt: skip


def load_records(tmp_path: Path) -> list[dict]:
    """The records a ``bench_run`` in ``tmp_path`` wrote, as the JSON a user reads."""
    paths = sorted((tmp_path / "runs").glob("*.json"))
    return [json.loads(path.read_text()) for path in paths]


class Launched:
    """A command running in the background, its output (stdout and stderr) read line by line
    with a deadline, so that a stalled worker fails the test instead of hanging it."""

    def __init__(self, args: list[str], cwd: Path, env: dict):
        self.proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )  # fmt: skip
        self.seen: list[str] = []
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    @property
    def output(self) -> str:
        return "".join(self.seen)

    def _next(self, deadline: float, waiting_for: str) -> str | None:
        try:
            line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            self.kill()
            tail = self.output[-3000:]
            raise AssertionError(f"timed out waiting for {waiting_for}:\n{tail}") from None
        if line is not None:
            self.seen.append(line)
        return line

    def until(self, text: str, timeout: float = RUN_TIMEOUT_S) -> None:
        """Reads until a line contains ``text``."""
        deadline = time.monotonic() + timeout
        while (line := self._next(deadline, repr(text))) is not None:
            if text in line:
                return
        raise AssertionError(f"{text!r} never appeared:\n{self.output[-3000:]}")

    def finish(self, timeout: float = RUN_TIMEOUT_S) -> int:
        """Reads to the end of the output (the worker holds the pipe too, so this waits for
        both) and returns the exit code."""
        deadline = time.monotonic() + timeout
        while self._next(deadline, "the end of the output") is not None:
            pass
        return self.proc.wait(timeout=max(deadline - time.monotonic(), 1.0))

    def worker(self) -> psutil.Process:
        """The one worker process of a single run."""
        (child,) = psutil.Process(self.proc.pid).children()
        return child

    def kill(self) -> None:
        """Kills the command and everything it started."""
        try:
            family = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            family = []
        for process in [*family, psutil.Process(self.proc.pid)]:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
