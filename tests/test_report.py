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
VARIED = ["optimizer.schedule=cosine", "head.dropout=0.5"]  # head=linear has 0.2


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
        common += ["dataset.test_split='test[:64]'"]
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
        # b0 seed 1 again, each varied in one non-seed key: never to be merged with the above.
        for key in VARIED:
            weights = "backbone.weights=none"
            execute(make_spec(*common, "backbone=b0", "seed=1", weights, key, tfds_dir=tfds_dir))
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
    assert len(loaded.runs) == 7 and set(loaded.runs["run_id"]) == set(kept)
    for _, row in loaded.runs.iterrows():
        record = kept[row["run_id"]]
        assert row["backbone"] == record["config"]["backbone"]["name"]
        assert row["seed"] == record["config"]["seed"]
        assert row["lr"] == record["config"]["optimizer"]["lr"]
        assert row["tensorflow_version"] == record["env"]["tensorflow"]
        metrics = dict(record["metrics"])
        for name, figures in metrics.pop("phases").items():
            for figure, value in figures.items():
                metrics[f"phases.{name}.{figure}"] = value
        for metric, value in metrics.items():
            assert (pd.isna(row[metric]) and value is None) or row[metric] == value
    assert pd.api.types.is_float_dtype(loaded.runs["best_val_accuracy"])
    assert pd.api.types.is_integer_dtype(loaded.runs["batch_size"])
    assert len(loaded.history) == 6 * 2  # the failed run trained no epoch
    assert set(loaded.history["backbone"]) == {"b0", "mobilenet_v2"}


@pytest.mark.slow
def test_seeds_are_merged_and_runs_varied_in_any_other_key_never_are(results, loaded):
    """Records from the real runner: b0 and mobilenet_v2 with seeds 1 and 2, and b0 seed 1
    once more with each of VARIED. Only the seed pairs share a row."""
    kept = _records(results).values()
    (table,) = tables.compare(loaded.runs).values()
    assert set(table.index.names) == {
        "backbone",
        "image_size",
        "optimizer.schedule",
        "head.dropout",
    }
    names = ["backbone", "optimizer.schedule", "head.dropout"]
    table = table.droplevel("image_size").reorder_levels(names)
    counts = table[("best_val_accuracy", "count")].to_dict()
    assert counts == {
        ("b0", "constant", 0.2): 2, ("b0", "cosine", 0.2): 1, ("b0", "constant", 0.5): 1,
        ("mobilenet_v2", "constant", 0.2): 2,
    }  # fmt: skip
    table = table.xs(("constant", 0.2), level=("optimizer.schedule", "head.dropout"))
    for backbone in ("b0", "mobilenet_v2"):
        values = [
            r["metrics"]["best_val_accuracy"]
            for r in kept
            if r["config"]["backbone"]["name"] == backbone and r["status"] == "completed"
            and r["config"]["optimizer"]["schedule"] == "constant"
            and r["config"]["head"]["dropout"] == 0.2
        ]  # fmt: skip
        assert len(values) == 2
        assert table.loc[backbone, ("best_val_accuracy", "mean")] == pytest.approx(np.mean(values))
        assert table.loc[backbone, ("best_val_accuracy", "std")] == pytest.approx(
            np.std(values, ddof=1)
        )
    # The 95% interval of a mean of two: mean ± t(0.975, 1) * std / sqrt(2), t = 12.7062.
    row = table.loc["b0", "best_val_accuracy"]
    half = 12.706204736 * row["std"] / np.sqrt(2)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(
        (row["mean"] - half, row["mean"] + half)
    )
    shown = tables.display(table).loc["b0", "best_val_accuracy"]
    spread = (
        f" ± {row['std']:.3f} (n=2; 95% CI {row['ci_low']:.3f} to {row['ci_high']:.3f})"
        if row["std"] > 0
        else " (n=2)"  # two identical runs: no spread to show
    )
    assert shown == f"{row['mean']:.3f}{spread}"


@pytest.mark.slow
def test_a_truncated_record_is_reported_and_skipped(results, tmp_path, capsys):
    copy = tmp_path / "runs"
    shutil.copytree(results / "runs", copy)
    victim = sorted(copy.glob("*.json"))[0]
    victim.write_text(victim.read_text()[:200])
    loaded = load.from_records(copy)
    assert len(loaded.runs) == 6
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
    assert len(runs) == 7 and "error_type" in runs


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
    assert "Failed runs" in page
    # The most accurate group, computed from the record files alone.
    groups: dict[tuple, list[float]] = {}
    for r in _records(results).values():
        if r["status"] == "completed":
            c = r["config"]
            key = (c["backbone"]["name"], c["optimizer"]["schedule"], c["head"]["dropout"])
            groups.setdefault(key, []).append(r["metrics"]["test_accuracy"])
    top = max(np.mean(values) for values in groups.values())
    best = [key for key, values in groups.items() if np.mean(values) == top]  # ties possible
    (sentence,) = re.findall(r"Highest mean test_accuracy: ([^<]*) with ([^<]*)", page)
    named = set(sentence[0].split(" / "))
    (key,) = [k for k in best if named == {k[0], "32", k[1], str(k[2])}]
    assert sentence[1].startswith(f"{top:.3f} (")
    assert ("(one seed)" in sentence[1]) == (len(groups[key]) == 1)
    assert "WeightsUnavailable" in (out / "report.md").read_text()
    assert str(out / "report.html") in printed


def _runs(rows: list[tuple], sizes: dict | None = None) -> pd.DataFrame:
    """Hand-made runs for the verdict's rules: (backbone, seed, accuracy, train time)."""
    frame = pd.DataFrame(rows, columns=["backbone", "seed", "best_val_accuracy", "train_time_s"])
    frame["status"], frame["dataset"], frame["params_total"] = "completed", "d", 1e6
    frame["image_size"] = frame["backbone"].map(sizes or {}).fillna(224).astype(int)
    return frame


# Two seeds a side, each side ±0.01 around its mean: Welch's df = 2, se = 0.01 * sqrt(2), so
# the 95% interval of the difference is d ± 4.302653 * 0.014142 = d ± 0.06085.
def _pair(gap: float) -> pd.DataFrame:
    rows = [("b0", 1, 0.79, 10), ("b0", 2, 0.81, 11)]
    return _runs(rows + [("mobilenet_v2", 1, 0.79 + gap, 5), ("mobilenet_v2", 2, 0.81 + gap, 5)])


def test_a_difference_just_inside_the_interval_is_a_tie():
    (table,) = tables.compare(_pair(0.060)).values()
    lines = " ".join(verdict.verdict(table))
    assert "mobilenet_v2 at 224 px and b0 at 224 px tie" in lines
    assert "[-0.1, +12.1] points, Welch's t, includes zero" in lines
    assert "beats" not in lines


def test_a_difference_just_outside_the_interval_is_a_win():
    (table,) = tables.compare(_pair(0.062)).values()
    lines = " ".join(verdict.verdict(table))
    assert "mobilenet_v2 at 224 px beats b0 at 224 px by 6.2 points" in lines
    assert "95% CI of the difference [+0.1, +12.3] points, Welch's t" in lines
    assert "MobileNetV2 trains 2.1x as fast" in lines


def test_a_single_seed_side_is_not_tested():
    runs = _runs([("b0", 1, 0.90, 10), ("b0", 2, 0.80, 10), ("b0", 3, 0.85, 10),
                  ("mobilenet_v2", 1, 0.86, 5)])  # fmt: skip
    (table,) = tables.compare(runs).values()
    lines = " ".join(verdict.verdict(table))
    assert "mobilenet_v2 at 224 px vs b0 at 224 px: single seed, not tested" in lines
    assert "beats" not in lines and "tie" not in lines
    assert "seed=1,2,3" in lines


def test_the_verdict_compares_mobilenet_v2_with_every_efficientnet_at_native_sizes():
    native = {"b0": 224, "b1": 240, "b2": 260, "b3": 300, "mobilenet_v2": 224}
    rows = [
        (b, s, 0.80 + 0.01 * i + 0.001 * s, 10 + i) for i, b in enumerate(native) for s in (1, 2)
    ]
    (table,) = tables.compare(_runs(rows, native)).values()
    lines = [line for line in verdict.verdict(table) if "MobileNetV2 trains" in line]
    for backbone in ("b0", "b1", "b2", "b3"):
        assert sum(f"{backbone} at {native[backbone]} px" in line for line in lines) == 1
    assert all("mobilenet_v2 at 224 px" in line for line in lines) and len(lines) == 4


def test_a_non_native_size_is_only_compared_at_the_same_size():
    sizes = {"b1": 224, "mobilenet_v2": 160}  # neither matches the other nor is native for b1
    rows = [("b1", 1, 0.8, 10), ("b1", 2, 0.81, 10), ("mobilenet_v2", 1, 0.7, 5),
            ("mobilenet_v2", 2, 0.71, 5)]  # fmt: skip
    (table,) = tables.compare(_runs(rows, sizes)).values()
    assert not [line for line in verdict.verdict(table) if "MobileNetV2 trains" in line]


def test_runs_that_differ_in_any_config_key_or_condition_are_never_averaged():
    runs = _runs([("b0", 1, 0.80, 100), ("b0", 1, 0.90, 300), ("b0", 2, 0.82, 110)])
    runs["freeze.blocks"] = [1, 6, 1]
    runs["tensorflow_version"] = ["2.21.0", "2.21.0", "2.21.0"]
    (table,) = tables.compare(runs).values()
    assert table.index.names == ["backbone", "image_size", "freeze.blocks"]
    assert table.loc[("b0", 224, 1), ("best_val_accuracy", "count")] == 2
    assert table.loc[("b0", 224, 6), ("best_val_accuracy", "mean")] == 0.90
    runs["tensorflow_version"] = ["2.21.0", "2.20.0", "2.21.0"]
    runs["freeze.blocks"] = 1
    (table,) = tables.compare(runs).values()
    assert "tensorflow_version" in table.index.names and len(table) == 2


def test_published_numbers_sit_next_to_matching_runs():
    def run(epochs: int) -> dict:
        return {"experiment": "keras_io_cifar100", "backbone": "b0", "dataset": "cifar100",
                "freeze": "two_phase", "status": "completed", "final_val_accuracy": 0.79,
                "best_val_accuracy": 0.80, "epochs": epochs, "freeze.head_epochs": epochs,
                **{m: 1.0 for m in load.METRICS[2:]}}  # fmt: skip

    joined = report.reference(pd.DataFrame([run(25)]), "cifar100").set_index("metric")
    assert joined.loc["final_val_accuracy", "published"] == 0.8072
    assert joined.loc["final_val_accuracy", "ours"] == 0.79
    assert joined.loc["final_val_accuracy", "recipe"] == "same length (50 epochs)"
    assert "keras-io" in joined.loc["best_val_accuracy", "source"]
    short = report.reference(pd.DataFrame([run(1)]), "cifar100").set_index("metric")
    assert short.loc["final_val_accuracy", "recipe"] == "shortened: 2 of 50 epochs, not comparable"


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
    assert wide.loc[("b0", 224), ("best_val_accuracy", "mean", "finetune")] == 0.80
    assert pd.isna(wide.loc[("mobilenet_v2", 224), ("best_val_accuracy", "mean", "finetune")])
    loaded = load.Loaded(runs=runs, history=pd.DataFrame(columns=["run_id"]))
    tables.write_tables(loaded, tmp_path, ["backbone"], ["freeze"])
    markdown = (tmp_path / "comparison_d.md").read_text()
    assert "best_val_accuracy | finetune" in markdown and "nan" not in markdown


def _wandb_run(run_id: str, config: dict, accuracy: float) -> Run:
    """A public-API Run as the W&B server returns it, with the given config."""
    attrs = {
        "name": run_id, "displayName": run_id, "state": "finished",
        "config": json.dumps({k: {"value": v} for k, v in config.items()}),
        "summaryMetrics": json.dumps({"status": "completed", "best_val_accuracy": accuracy,
                                      "train_time_s": 10.0}),
        "group": "g", "tags": [], "createdAt": "2026-11-22T10:00:00", "jobType": "train",
    }  # fmt: skip
    return Run(None, "entity", "bench", run_id, attrs=attrs)


MULTIRUN_CONFIG = {
    "backbone": {"name": "b0"}, "dataset": {"name": "shapes"}, "head": {"name": "linear"},
    "freeze": {"name": "frozen"}, "optimizer": {"name": "adam", "lr": 0.001},
    "augment": {"name": "none"}, "batch_size": 32, "epochs": 2, "image_size": 224, "seed": 1,
}  # fmt: skip


def test_a_sweep_agent_run_aggregates_with_multirun_runs():
    # What an agent leaves: its parameters flat, replacing or shadowing the nested values.
    agent = {**MULTIRUN_CONFIG, "backbone": "b1", "optimizer.lr": 0.01, "image_size": 240}
    with_copy = {**agent, "bench_config": {**MULTIRUN_CONFIG, "seed": 2}}
    found = [
        (load.record_from_wandb(_wandb_run("a", MULTIRUN_CONFIG, 0.8)), "wandb"),
        (load.record_from_wandb(_wandb_run("b", agent, 0.7)), "wandb"),
        (load.record_from_wandb(_wandb_run("c", with_copy, 0.9)), "wandb"),
    ]
    runs = load.build(found, []).runs.set_index("run_id")
    assert runs.loc["a", "backbone"] == "b0" and runs.loc["a", "lr"] == 0.001
    assert runs.loc["b", "backbone"] == "b1" and runs.loc["b", "lr"] == 0.01  # the agent's value
    assert runs.loc["c", "seed"] == 2  # bench_config, the whole nested config, wins
    (table,) = tables.compare(runs.reset_index()).values()
    assert table[("best_val_accuracy", "count")].sum() == 3


def test_history_from_wandb_keeps_the_latest_attempt_of_each_epoch():
    epochs = [(1, 0.1), (2, 0.2), (1, 0.5), (2, 0.6), (3, 0.7)]  # crashed after 2, resumed
    logged = [
        {"epoch": e, "phase": "train", "val_accuracy": v, "_step": i}
        for i, (e, v) in enumerate(epochs)
    ]
    logged.append({"_step": 9, "comparison": "table"})
    rows = load.latest_epochs(logged)
    assert [(r.epoch, r.val_accuracy) for r in rows] == [(1, 0.5), (2, 0.6), (3, 0.7)]
