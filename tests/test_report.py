"""The aggregator and the report, from records the real runner wrote."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from wandb.apis.public.runs import Run

from bench.analysis import load, report, tables, verdict
from bench.pipeline.execute import execute
from tests.conftest import make_spec
from tests.wandb_files import read_run

RUNS = [("b0", 1), ("b0", 2), ("mobilenet_v2", 1), ("mobilenet_v2", 2)]


@pytest.fixture(scope="module")
def results(tmp_path_factory, tfds_dir):
    """Four completed runs (two backbones x two seeds) and one failed, by the real runner."""
    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_DIR", str(root))
        patch.setenv("KERAS_HOME", str(root / "keras"))
        common = ["dataset=shapes", "image_size=32", "epochs=2", "freeze=unfrozen", "head=linear"]
        common += ["backbone.bn_momentum=0.9"]
        common += ["dataset.train_split='train[:96]'", "dataset.val_split='validation[:64]'"]
        common += [f"results_dir={root / 'runs'}"]
        for backbone, seed in RUNS:
            weights = "backbone.weights=none"
            execute(
                make_spec(
                    *common, f"backbone={backbone}", f"seed={seed}", weights, tfds_dir=tfds_dir
                )
            )
        failed = make_spec(
            *common, "backbone=b0", "seed=3", "backbone.weights=imagenet", tfds_dir=tfds_dir
        )
        execute(failed)
    return root


@pytest.fixture()
def loaded(results):
    return load.from_records(results / "runs")


def _records(results) -> dict[str, dict]:
    found = (json.loads(p.read_text()) for p in (results / "runs").glob("*.json"))
    return {r["run_id"]: r for r in found}


@pytest.mark.slow
def test_one_row_per_run_with_the_records_values(results, loaded):
    kept = _records(results)
    assert len(loaded.runs) == 5 and set(loaded.runs["run_id"]) == set(kept)
    for _, row in loaded.runs.iterrows():
        record = kept[row["run_id"]]
        assert row["backbone"] == record["config"]["backbone"]["name"]
        assert row["seed"] == record["config"]["seed"]
        assert row["lr"] == record["config"]["optimizer"]["lr"]
        assert row["tensorflow_version"] == record["env"]["tensorflow"]
        for metric, value in record["metrics"].items():
            assert (pd.isna(row[metric]) and value is None) or row[metric] == value
    assert pd.api.types.is_float_dtype(loaded.runs["best_val_accuracy"])
    assert pd.api.types.is_integer_dtype(loaded.runs["batch_size"])
    assert len(loaded.history) == 4 * 2  # the failed run trained no epoch
    assert set(loaded.history["backbone"]) == {"b0", "mobilenet_v2"}


@pytest.mark.slow
def test_repeated_seeds_become_mean_std_and_count(results, loaded):
    kept = _records(results).values()
    (table,) = tables.compare(loaded.runs).values()
    assert list(table.index) == ["b0", "mobilenet_v2"]
    for backbone in ("b0", "mobilenet_v2"):
        values = [
            r["metrics"]["best_val_accuracy"]
            for r in kept
            if r["config"]["backbone"]["name"] == backbone and r["status"] == "completed"
        ]
        assert table.loc[backbone, ("best_val_accuracy", "count")] == 2
        assert table.loc[backbone, ("best_val_accuracy", "mean")] == pytest.approx(np.mean(values))
        assert table.loc[backbone, ("best_val_accuracy", "std")] == pytest.approx(
            np.std(values, ddof=1)
        )
    shown = tables.display(table)
    assert re.fullmatch(r"0\.\d{3} ± 0\.\d{3} \(n=2\)", shown.loc["b0", "best_val_accuracy"])


@pytest.mark.slow
def test_a_truncated_record_is_reported_and_skipped(results, tmp_path, capsys):
    copy = tmp_path / "runs"
    shutil.copytree(results / "runs", copy)
    victim = sorted(copy.glob("*.json"))[0]
    victim.write_text(victim.read_text()[:200])
    loaded = load.from_records(copy)
    assert len(loaded.runs) == 4
    assert [Path(path).name for path, _ in loaded.skipped] == [victim.name]
    assert tables.main(["--runs", str(copy), "--out", str(tmp_path / "tables")]) == 0
    assert f"skipped {victim}" in capsys.readouterr().err


@pytest.mark.slow
def test_failed_runs_are_kept_and_listed(loaded, tmp_path, capsys):
    (failed,) = loaded.failed.itertuples()
    assert failed.error_type == "WeightsUnavailable" and "efficientnetb0_notop.h5" in failed.error
    assert tables.main(["--runs", str(Path(failed.path).parent), "--out", str(tmp_path)]) == 0
    assert f"failed run {failed.run_id}" in capsys.readouterr().out


@pytest.mark.slow
def test_tables_are_written_in_three_formats(results, tmp_path):
    assert tables.main(["--runs", str(results / "runs"), "--out", str(tmp_path)]) == 0
    for suffix in ("md", "csv", "tex"):
        assert (tmp_path / f"comparison_shapes.{suffix}").stat().st_size > 0
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert len(runs) == 5 and "error_type" in runs


def _api_run(record: dict) -> Run:
    """The public API's Run object, built from what the run's offline W&B files hold."""
    logged = read_run(Path(record["wandb"]["dir"]))
    config = {k: {"value": v} for k, v in logged["config"].items()}
    attrs = {
        "name": record["run_id"],
        "displayName": logged["run"].display_name,
        "state": "finished" if record["status"] == "completed" else "failed",
        "config": json.dumps(config),
        "summaryMetrics": json.dumps(logged["summary"]),
        "group": logged["run"].run_group or None,
        "tags": list(logged["run"].tags),
        "createdAt": record["started_at"],
        "jobType": "train",
    }
    return Run(None, "entity", "bench", record["run_id"], attrs=attrs)


@pytest.mark.slow
def test_wandb_runs_map_to_the_same_columns_as_records(results, loaded):
    kept = _records(results)
    from_wandb = load.build(
        [(load.record_from_wandb(_api_run(r), r["history"]), "wandb") for r in kept.values()], []
    )
    assert set(from_wandb.runs.columns) == set(loaded.runs.columns)
    both = loaded.runs.merge(from_wandb.runs, on="run_id", suffixes=("", "_wandb"))
    for column in [*load.AXES, *load.METRICS, "status", "error_type"]:
        left, right = both[column], both[f"{column}_wandb"]
        assert ((left == right) | (left.isna() & right.isna())).all(), column
    assert set(from_wandb.history.columns) == set(loaded.history.columns)


@pytest.mark.slow
def test_report_writes_tables_figures_and_a_page_with_a_verdict(results, tmp_path, capsys):
    out = tmp_path / "report"
    assert report.main(["--runs", str(results / "runs"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for stem in ("training_time", "val_accuracy", "tradeoff", "memory"):
        for suffix in ("png", "svg"):
            assert (out / "figures" / f"{stem}_shapes.{suffix}").stat().st_size > 0
    page = (out / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 4
    for data in images:
        assert Image.open(io.BytesIO(base64.b64decode(data))).size[0] > 300
    assert "Most accurate:" in page and "Failed runs" in page
    (table,) = tables.compare(load.from_records(results / "runs").runs).values()
    metric = verdict.primary_metric(table)
    assert metric == "test_accuracy"  # every run has a test split here
    best = table[(metric, "mean")].idxmax()
    mean, seconds = table.loc[best, (metric, "mean")], table.loc[best, ("train_time_s", "mean")]
    assert f"Most accurate: {best} with {metric} {mean:.3f} after {seconds:.1f} s" in page
    assert "WeightsUnavailable" in (out / "report.md").read_text()
    assert str(out / "report.html") in printed


def _runs(rows: list[tuple[str, int, float, float]]) -> pd.DataFrame:
    """Hand-made runs for the verdict's rules: (backbone, seed, accuracy, train time)."""
    frame = pd.DataFrame(rows, columns=["backbone", "seed", "best_val_accuracy", "train_time_s"])
    frame["status"], frame["dataset"], frame["params_total"] = "completed", "d", 1e6
    return frame


def test_a_difference_inside_the_seed_spread_is_a_tie():
    runs = _runs([("b0", 1, 0.80, 10), ("b0", 2, 0.84, 11), ("mobilenet_v2", 1, 0.81, 5),
                  ("mobilenet_v2", 2, 0.85, 5)])  # fmt: skip
    (table,) = tables.compare(runs).values()
    lines = verdict.verdict(table)
    assert any("tie" in line and "mobilenet_v2" in line for line in lines)
    assert not any("beats" in line for line in lines)


def test_a_difference_beyond_the_spread_is_a_win():
    runs = _runs([("b0", 1, 0.70, 10), ("b0", 2, 0.71, 11), ("mobilenet_v2", 1, 0.80, 5),
                  ("mobilenet_v2", 2, 0.81, 5)])  # fmt: skip
    (table,) = tables.compare(runs).values()
    lines = verdict.verdict(table)
    assert lines[0].startswith("Most accurate: mobilenet_v2 with best_val_accuracy 0.805")
    assert "mobilenet_v2 beats b0 by 10.0 points (0.805 vs 0.705)" in " ".join(lines)
    assert "MobileNetV2 trains 2.1x as fast" in " ".join(lines)


def test_published_numbers_sit_next_to_matching_runs():
    runs = pd.DataFrame(
        [{"experiment": "keras_io_cifar100", "backbone": "b0", "dataset": "cifar100",
          "freeze": "two_phase", "status": "completed", "final_val_accuracy": 0.79,
          "best_val_accuracy": 0.80, **{m: 1.0 for m in load.METRICS[2:]}}]
    )  # fmt: skip
    joined = report.reference(runs, "cifar100").set_index("metric")
    assert joined.loc["final_val_accuracy", "published"] == 0.8072
    assert joined.loc["final_val_accuracy", "ours"] == 0.79
    assert "keras-io" in joined.loc["best_val_accuracy", "source"]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
def test_the_page_renders_offline_in_headless_chromium(results, tmp_path):
    if CHROMIUM is None:
        # CI installs Debian's chromium (.ci/run), so there a missing browser is a failure.
        if os.environ.get("CI"):
            pytest.fail("CI must run the page test: .ci/run installs chromium when it is missing")
        pytest.skip("no chromium here: apt-get install chromium (README 'Checking the page')")
    out = tmp_path / "report"
    assert report.main(["--runs", str(results / "runs"), "--out", str(out)]) == 0
    shot = tmp_path / "page.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    flags += ["--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'c'}"]
    url = (out / "report.html").as_uri()
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1200,4000", url],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", url], check=True, capture_output=True,
                         text=True, timeout=120).stdout  # fmt: skip
    assert dom.count("<img") == 4
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (4000, 1200) and (pixels < 128).mean() > 0.005


@pytest.mark.slow
def test_wandb_report_without_wandb_says_what_it_needs(results, tmp_path):
    with pytest.raises(SystemExit, match="needs --wandb ENTITY/PROJECT and W&B credentials"):
        report.main(["--runs", str(results / "runs"), "--out", str(tmp_path), "--wandb-report"])


def test_cols_put_an_axis_across_the_table(tmp_path):
    runs = _runs([("b0", 1, 0.70, 10), ("b0", 1, 0.80, 12), ("mobilenet_v2", 1, 0.75, 5)])
    runs["freeze"] = ["frozen", "finetune", "frozen"]
    (table,) = tables.compare(runs, ["backbone"], ["freeze"]).values()
    wide = tables.pivot(table, ["freeze"])
    assert wide.loc["b0", ("best_val_accuracy", "mean", "finetune")] == 0.80
    assert pd.isna(wide.loc["mobilenet_v2", ("best_val_accuracy", "mean", "finetune")])
    loaded = load.Loaded(runs=runs, history=pd.DataFrame(columns=["run_id"]))
    tables.write_tables(loaded, tmp_path, ["backbone"], ["freeze"])
    markdown = (tmp_path / "comparison_d.md").read_text()
    assert "best_val_accuracy | finetune" in markdown and "nan" not in markdown
