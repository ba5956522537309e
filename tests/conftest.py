"""Shared fixtures: a prepared shapes dataset, a tiny hub backbone, an offline environment, the
real command in the background, the runs several modules read, and the suite's time budget."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.helpers import SMALL_DATA, Launched, bench_env, command, hub_backbone, offline
from tests.shared_runs import SHARED, sweep, sweep_report  # noqa: F401  (fixtures)

# The time budget (docs/development.md): the whole suite within 12 minutes of wall clock on
# a 2-core machine (what CI waits for), and the end-to-end (slow) tests within 600 s of their
# summed test time (their share of the work, whatever the parallelism). Passing either is a
# warning, never a failure: a busy machine is not a broken build.
SUITE_BUDGET_S = 720.0
# Session fixtures that train, and the xdist group their readers share.
EXPENSIVE = {**dict.fromkeys(SHARED, "shared_runs"), "served": "served"}
SLOW_BUDGET_S = 600.0


@pytest.fixture(autouse=True)
def offline_env(tmp_path, monkeypatch):
    """Each test offline, in its own folder."""
    offline(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)


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


@pytest.fixture()
def tiny(hub_dir) -> list[str]:
    """A whole run about the harness: a few batches of shapes on the hub backbone. Of two
    overrides of one key the later wins (Hydra), so a test's own go after these."""
    return [*SMALL_DATA, *hub_backbone(hub_dir), "wandb.mode=disabled"]


@pytest.fixture()
def launch():
    """Starts ``python -m bench.run`` in the background: ``launch(tmp_path, tfds_dir, *args)``.
    Whatever is still running when the test ends is killed."""
    started: list[Launched] = []

    def start(tmp_path: Path, tfds_dir: Path | None, *args: str, env: dict | None = None):
        running = Launched(command(tmp_path, *args), tmp_path, env or bench_env(tmp_path, tfds_dir))
        started.append(running)
        return running

    yield start
    for running in started:
        if running.proc.poll() is None:
            running.kill()


# ---- The time budget -------------------------------------------------------------------

_spent = {"slow": 0.0, "all": 0.0}
_started = time.monotonic()


def pytest_runtest_logreport(report):
    """Adds each phase's time (setup, call, teardown) to the totals, on the controller."""
    _spent["all"] += report.duration
    if "slow" in report.keywords:
        _spent["slow"] += report.duration


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Prints where the time went against the budget; a warning past it, never a failure."""
    if hasattr(config, "workerinput"):
        return  # an xdist worker: the controller prints the totals
    wall = time.monotonic() - _started
    terminalreporter.section("time budget")
    lines = [
        f"test time {_spent['all']:.0f} s in {wall:.0f} s of wall clock; "
        f"suite budget {SUITE_BUDGET_S:.0f} s of wall clock",
        f"slow (end-to-end) tests {_spent['slow']:.0f} s of test time; "
        f"budget {SLOW_BUDGET_S:.0f} s",
    ]
    for line in lines:
        terminalreporter.write_line(line)
    for warning in budget_warnings(wall, _spent["slow"]):
        terminalreporter.write_line(f"WARNING: {warning} (see --durations)", yellow=True, bold=True)


def budget_warnings(wall: float, slow: float) -> list[str]:
    """What passes its budget: the suite's wall clock, the slow tests' summed test time."""
    found = []
    if wall > SUITE_BUDGET_S:
        found.append(f"the suite took {wall:.0f} s of wall clock, past its {SUITE_BUDGET_S:.0f} s")
    if slow > SLOW_BUDGET_S:
        found.append(
            f"slow tests took {slow:.0f} s of test time, past their {SLOW_BUDGET_S:.0f} s budget"
        )
    return found


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per core, at most four (each holds a TensorFlow of its own)."""
    return max(1, min(os.cpu_count() or 1, 4))


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups off the items
def pytest_collection_modifyitems(config, items):
    """Tests that read one expensive session fixture run on the same xdist worker, so the
    fixture is paid for once (``--dist loadgroup``)."""
    for item in items:
        groups = sorted({EXPENSIVE[n] for n in getattr(item, "fixturenames", ()) if n in EXPENSIVE})
        if groups:
            item.add_marker(pytest.mark.xdist_group(groups[0]))
