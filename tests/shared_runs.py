"""The runs several test modules read, trained once per session (fixtures that
tests/conftest.py imports).

``sweep`` is the multirun a user starts first, through the real command: two backbones by
two seeds, W&B offline, with a W&B API key in the environment that must be written
nowhere. Beside its records, two more runs of the same preset are executed in-process:
one that fails (ImageNet weights cannot be downloaded here) and one that differs from
MobileNetV2 seed 1 in one key, which the aggregator must never average with it.
``sweep_report`` is ``python -m bench.report`` over all of them. The end-to-end, W&B and
report tests read these outputs; none of them writes into the folders.
"""

from __future__ import annotations

import io
import subprocess
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import SMALL_DATA, bench_run, load_records, make_spec, offline

SHARED = {"sweep", "sweep_report"}  # conftest runs their readers on one xdist worker

MARKER = "bench-test-api-key-marker-0123456789abcdef"
SWEEP = [
    "-m", "backbone=b0,mobilenet_v2", "seed=1,2", "experiment=demo", "epochs=2", *SMALL_DATA,
    "wandb.mode=offline",
    # The preset tags itself [demo]; replacing that list shows the tracker adds the name.
    "wandb.tags=[mine]",
]  # fmt: skip
# MobileNetV2 seed 1 again, varied in one non-seed key.
VARIED = "optimizer.schedule=cosine"
FAILED = ["backbone=b0", "seed=3", "backbone.weights=imagenet"]


@dataclass
class Sweep:
    """What the session's sweep left: its folder (also ``WANDB_DIR``), its records and the
    command's output."""

    root: Path
    proc: subprocess.CompletedProcess
    multirun: list[dict]  # the records of the command's four jobs

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def records(self) -> list[dict]:
        """Every record in the folder: the multirun's and the two in-process runs'."""
        return load_records(self.root)


def _in_process(root: Path, tfds_dir: Path, *overrides: str) -> None:
    from bench.pipeline.execute import execute

    preset = ["experiment=demo", "epochs=2", *SMALL_DATA, "wandb.mode=offline"]
    spec = make_spec(*preset, *overrides, f"results_dir={root / 'runs'}", tfds_dir=tfds_dir)
    spec.job.experiment = "demo"  # what Hydra's choices tell a job of `experiment=demo`
    execute(spec)


@pytest.fixture(scope="session")
def sweep(tmp_path_factory, tfds_dir) -> Sweep:
    root = tmp_path_factory.mktemp("sweep")
    with pytest.MonkeyPatch.context() as patch:
        offline(patch, root)
        patch.setenv("WANDB_API_KEY", MARKER)
        proc = bench_run(root, tfds_dir, *SWEEP)
        assert proc.returncode == 0, proc.stderr[-3000:]
        multirun = load_records(root)
        _in_process(root, tfds_dir, "backbone=mobilenet_v2", "seed=1", VARIED)
        _in_process(root, tfds_dir, *FAILED)
    return Sweep(root, proc, multirun)


@pytest.fixture(scope="session")
def sweep_report(sweep, tmp_path_factory) -> tuple[Path, str]:
    """``python -m bench.report`` over the sweep's folder: where it wrote, what it printed."""
    from bench.analysis import report

    out = tmp_path_factory.mktemp("report") / "report"
    printed = io.StringIO()
    with redirect_stdout(printed):
        assert report.main(["--runs", str(sweep.runs), "--out", str(out)]) == 0
    return out, printed.getvalue()
