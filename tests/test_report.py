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

from bench.analysis import load, report, tables
from tests.wandb_files import read_run


@pytest.fixture()
def loaded(sweep):
    return load.from_records(sweep.runs)


def _records(sweep) -> dict[str, dict]:
    return {r["run_id"]: r for r in sweep.records}


@pytest.mark.slow
def test_one_row_per_run_with_the_records_values(sweep, loaded):
    kept = _records(sweep)
    assert len(loaded.runs) == 6 and set(loaded.runs["run_id"]) == set(kept)
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
    assert len(loaded.history) == 5 * 2  # the failed run trained no epoch
    assert set(loaded.history["backbone"]) == {"b0", "mobilenet_v2"}


@pytest.mark.slow
def test_seeds_are_merged_and_a_run_varied_in_any_other_key_never_is(sweep, loaded):
    """Records from the real runner: b0 and mobilenet_v2 with seeds 1 and 2, and
    mobilenet_v2 seed 1 once more with a cosine schedule. Only the seed pairs share a row."""
    kept = _records(sweep).values()
    (table,) = tables.compare(loaded.runs).values()
    assert set(table.index.names) == {"backbone", "image_size", "optimizer.schedule"}
    table = table.droplevel("image_size").reorder_levels(["backbone", "optimizer.schedule"])
    counts = table[("final_val_accuracy", "count")].to_dict()
    assert counts == {("b0", "constant"): 2, ("mobilenet_v2", "constant"): 2,
                      ("mobilenet_v2", "cosine"): 1}  # fmt: skip
    table = table.xs("constant", level="optimizer.schedule")
    for backbone in ("b0", "mobilenet_v2"):
        values = [
            r["metrics"]["final_val_accuracy"]
            for r in kept
            if r["config"]["backbone"]["name"] == backbone and r["status"] == "completed"
            and r["config"]["optimizer"]["schedule"] == "constant"
        ]  # fmt: skip
        assert len(values) == 2
        assert table.loc[backbone, ("final_val_accuracy", "mean")] == pytest.approx(np.mean(values))
        assert table.loc[backbone, ("final_val_accuracy", "std")] == pytest.approx(
            np.std(values, ddof=1)
        )
    # The 95% interval of a mean of two: mean ± t(0.975, 1) * std / sqrt(2), t = 12.7062.
    row = table.loc["b0", "final_val_accuracy"]
    half = 12.706204736 * row["std"] / np.sqrt(2)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(
        (row["mean"] - half, row["mean"] + half)
    )
    shown = tables.display(table).loc["b0", "final_val_accuracy"]
    spread = (
        f" ± {row['std']:.3f} (n=2; 95% CI {row['ci_low']:.3f} to {row['ci_high']:.3f})"
        if row["std"] > 0
        else " (n=2)"  # two identical runs: no spread to show
    )
    assert shown == f"{row['mean']:.3f}{spread}"


@pytest.mark.slow
def test_a_truncated_record_is_reported_and_skipped(sweep, tmp_path, capsys):
    copy = tmp_path / "runs"
    shutil.copytree(sweep.runs, copy)
    victim = sorted(copy.glob("*.json"))[0]
    victim.write_text(victim.read_text()[:200])
    loaded = load.from_records(copy)
    assert len(loaded.runs) == 5
    assert [Path(path).name for path, _ in loaded.skipped] == [victim.name]
    assert tables.main(["--runs", str(copy), "--out", str(tmp_path / "tables")]) == 0
    assert f"skipped {victim}" in capsys.readouterr().err


@pytest.mark.slow
def test_failed_runs_are_kept_and_listed(sweep, loaded, tmp_path, capsys):
    (failed,) = loaded.failed.itertuples()
    assert failed.error_type == "WeightsUnavailable" and "efficientnetb0_notop.h5" in failed.error
    assert tables.main(["--runs", str(sweep.runs), "--out", str(tmp_path)]) == 0
    assert f"failed run {failed.run_id}" in capsys.readouterr().out


@pytest.mark.slow
def test_tables_are_written_in_three_formats(sweep, tmp_path):
    assert tables.main(["--runs", str(sweep.runs), "--out", str(tmp_path)]) == 0
    for suffix in ("md", "csv", "tex"):
        assert (tmp_path / f"comparison_shapes.{suffix}").stat().st_size > 0
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert len(runs) == 6 and "error_type" in runs


class _LoggedRun(Run):
    """A public-API Run whose ``scan_history`` returns the epochs its offline files hold
    (the server would return them), and whose sampled ``history`` must not be used."""

    def __init__(self, logged: dict, **kwargs):
        super().__init__(None, "entity", "bench", logged["run"].run_id, **kwargs)
        self._rows = logged["history"]

    def scan_history(self, *args, **kwargs):
        return iter(self._rows)

    def history(self, *args, **kwargs):
        raise AssertionError("history() is sampled (500 rows): read scan_history()")


def _api_run(run_dir: Path) -> Run:
    """The public API's Run as the server would return it, from the run's offline W&B files
    alone: its config, summary, group, tags, start time, exit code and logged epochs."""
    logged = read_run(run_dir)
    meta = logged["run"]
    attrs = {
        "name": meta.run_id,
        "displayName": meta.display_name,
        "state": "finished" if logged["exit_code"] == 0 else "failed",
        "config": json.dumps({k: {"value": v} for k, v in logged["config"].items()}),
        "summaryMetrics": json.dumps(logged["summary"]),
        "group": meta.run_group or None,
        "tags": list(meta.tags),
        "createdAt": meta.start_time.ToJsonString(),
        "jobType": meta.job_type,
    }
    return _LoggedRun(logged, attrs=attrs)


@pytest.mark.slow
def test_wandb_runs_map_to_the_same_columns_as_records(sweep, loaded):
    dirs = [Path(r["wandb"]["dir"]) for r in _records(sweep).values()]
    api_runs = [_api_run(d) for d in dirs]
    from_wandb = load.build(
        [(load.record_from_wandb(run, list(run.scan_history())), "wandb") for run in api_runs], []
    )
    assert set(from_wandb.runs.columns) == set(loaded.runs.columns)
    both = loaded.runs.merge(from_wandb.runs, on="run_id", suffixes=("", "_wandb"))
    assert len(both) == len(loaded.runs)
    for column in [*load.AXES, *load.METRICS, "status", "error_type"]:
        left, right = both[column], both[f"{column}_wandb"]
        assert ((left == right) | (left.isna() & right.isna())).all(), column
    assert set(from_wandb.history.columns) == set(loaded.history.columns)
    assert len(from_wandb.history) == len(loaded.history)


class _FakeApi:
    """``wandb.Api`` with the given runs: records which project and filters were asked for."""

    asked: list = []

    def __init__(self, runs: list):
        self._runs = runs

    def __call__(self, *args, **kwargs):
        return self

    def runs(self, path, filters=None):
        _FakeApi.asked.append((path, filters))
        return list(self._runs)


@pytest.mark.slow
def test_aggregate_reads_runs_from_wandb_by_group_and_tag(sweep, tmp_path, monkeypatch):
    """``--wandb ENTITY/PROJECT --group G --tag T``: the public API is asked for training
    runs of that group and tag, and every epoch comes from ``scan_history``."""
    import wandb

    api_runs = [_api_run(Path(r["wandb"]["dir"])) for r in sweep.multirun]
    fake = _FakeApi(api_runs)
    _FakeApi.asked = []
    monkeypatch.setattr(wandb, "Api", fake)
    group = sweep.multirun[0]["job"]["group"]
    args = ["--wandb", "me/bench", "--group", group, "--tag", "demo", "--out", str(tmp_path)]
    assert tables.main(args) == 0
    assert _FakeApi.asked == [
        ("me/bench", {"jobType": "train", "group": group, "tags": {"$in": ["demo"]}})
    ]
    runs, history = pd.read_csv(tmp_path / "runs.csv"), pd.read_csv(tmp_path / "history.csv")
    assert sorted(runs["run_id"]) == sorted(r["run_id"] for r in sweep.multirun)
    assert len(history) == 4 * 2 and set(history["epoch"]) == {1, 2}


@pytest.mark.slow
def test_report_writes_tables_figures_and_a_page_with_a_verdict(sweep, sweep_report):
    out, printed = sweep_report
    for stem in ("training_time", "val_accuracy", "tradeoff", "memory", "budget"):
        for suffix in ("png", "svg"):
            assert (out / "figures" / f"{stem}_shapes.{suffix}").stat().st_size > 0
    page = (out / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 5
    for data in images:
        assert Image.open(io.BytesIO(base64.b64decode(data))).size[0] > 300
    assert "Failed runs" in page
    # Validation chooses each backbone's schedule and the leader; test reports it. Worked
    # out from the record files alone.
    configs: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for r in _records(sweep).values():
        if r["status"] == "completed":
            c, m = r["config"], r["metrics"]
            scores = (m["final_val_accuracy"], m["test_accuracy"])
            configs.setdefault(c["backbone"]["name"], {}).setdefault(
                c["optimizer"]["schedule"], []).append(scores)  # fmt: skip
    chosen = {
        backbone: max(by.values(), key=lambda runs: np.mean([v for v, _ in runs]))
        for backbone, by in configs.items()
    }
    top = max(np.mean([v for v, _ in runs]) for runs in chosen.values())
    leaders = [b for b, runs in chosen.items() if np.mean([v for v, _ in runs]) == top]
    (headline,) = re.findall(r'<p class="headline">([^<]*)</p>', page)
    starts = [
        f"{start}{b} (test accuracy {np.mean([t for _, t in chosen[b]]):.3f}"
        for b in leaders for start in ("", "Use ")
    ]  # fmt: skip
    assert headline.startswith(tuple(starts)), headline
    assert len(headline.split()) <= 60
    assert not re.search(r"<td>(None|nan|NaN)</td>", page)
    assert "mobilenet_v2 2 configurations, 3 runs" in page  # b0 had one schedule
    assert "test_accuracy (not used for selection)" in page and "<td>yes</td>" in page
    assert "WeightsUnavailable" in (out / "report.md").read_text()
    assert str(out / "report.html") in printed
    assert (out / "tables" / "budget_shapes.csv").is_file()
    # The verdict's family as a table, and why one dataset gets no ranking.
    assert "Every comparison" in page and "paired t" in page
    assert "No ranking across datasets: these runs cover one dataset (shapes)" in page


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
def test_the_page_renders_offline_in_headless_chromium(sweep_report, tmp_path):
    if CHROMIUM is None:
        # CI installs Debian's chromium (.ci/run), so there a missing browser is a failure.
        if os.environ.get("CI"):
            pytest.fail("CI must run the page test: .ci/run installs chromium when it is missing")
        pytest.skip("no chromium here: apt-get install chromium (README 'Checking the page')")
    out, _ = sweep_report
    shot = tmp_path / "page.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    flags += ["--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'c'}"]
    url = (out / "report.html").as_uri()
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1200,4000", url],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (4000, 1200)
    # Text and tables alone darken under 1% of the page; the four embedded figures (axes,
    # bars, lines, labels) bring it well above that, so a page whose images did not load
    # fails here.
    assert (pixels < 128).mean() > 0.005


def test_wandb_report_without_wandb_stops_before_anything_is_written(tmp_path):
    out = tmp_path / "report"
    with pytest.raises(SystemExit, match="needs --wandb ENTITY/PROJECT and W&B credentials"):
        report.main(["--runs", str(tmp_path / "none"), "--out", str(out), "--wandb-report"])
    assert not out.exists()


def _runs(rows: list[tuple], sizes: dict | None = None) -> pd.DataFrame:
    """Hand-made runs for the verdict's rules: (backbone, seed, accuracy, train time)."""
    frame = pd.DataFrame(rows, columns=["backbone", "seed", "final_val_accuracy", "train_time_s"])
    frame["status"], frame["dataset"], frame["params_total"] = "completed", "d", 1e6
    frame["image_size"] = frame["backbone"].map(sizes or {}).fillna(224).astype(int)
    return frame


def test_runs_that_differ_in_any_config_key_or_condition_are_never_averaged():
    runs = _runs([("b0", 1, 0.80, 100), ("b0", 1, 0.90, 300), ("b0", 2, 0.82, 110)])
    runs["freeze.blocks"] = [1, 6, 1]
    runs["tensorflow_version"] = ["2.21.0", "2.21.0", "2.21.0"]
    (table,) = tables.compare(runs).values()
    assert table.index.names == ["backbone", "image_size", "freeze.blocks"]
    assert table.loc[("b0", 224, 1), ("final_val_accuracy", "count")] == 2
    assert table.loc[("b0", 224, 6), ("final_val_accuracy", "mean")] == 0.90
    runs["tensorflow_version"] = ["2.21.0", "2.20.0", "2.21.0"]
    runs["freeze.blocks"] = 1
    (table,) = tables.compare(runs).values()
    assert "tensorflow_version" in table.index.names and len(table) == 2


# Where and on what a run ran (README: never averaged): two seeds that differ in one of them.
CONDITIONS = {
    "effective_batch_size": (32, 16),  # oom_retry halved one
    "precision_used": ("float32", "mixed_float16"),
    "device_kinds": ("CPU", "GPU"),
    "strategy_used": ("DefaultStrategy", "MirroredStrategy"),
    "tensorflow_version": ("2.21.0", "2.20.0"),
}


@pytest.mark.parametrize("condition", list(CONDITIONS))
def test_seeds_run_under_different_conditions_are_never_averaged(condition):
    runs = _runs([("b0", 1, 0.80, 100), ("b0", 2, 0.90, 300)])
    runs[condition] = CONDITIONS[condition][0]
    (together,) = tables.compare(runs).values()
    assert together[("final_val_accuracy", "count")].tolist() == [2]  # the control: merged
    runs[condition] = list(CONDITIONS[condition])
    (table,) = tables.compare(runs).values()
    assert condition in table.index.names
    assert table[("final_val_accuracy", "count")].tolist() == [1, 1]


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
    assert "best_val_accuracy" not in joined.index  # a maximum over epochs: never a result
    short = report.reference(pd.DataFrame([run(1)]), "cifar100").set_index("metric")
    assert short.loc["final_val_accuracy", "recipe"] == "shortened: 2 of 50 epochs, not comparable"


def test_cols_put_an_axis_across_the_table(tmp_path):
    runs = _runs([("b0", 1, 0.70, 10), ("b0", 1, 0.80, 12), ("mobilenet_v2", 1, 0.75, 5)])
    runs["freeze"] = ["frozen", "finetune", "frozen"]
    (table,) = tables.compare(runs, ["backbone"], ["freeze"]).values()
    wide = tables.pivot(table, ["freeze"])
    assert wide.loc[("b0", 224), ("final_val_accuracy", "mean", "finetune")] == 0.80
    assert pd.isna(wide.loc[("mobilenet_v2", 224), ("final_val_accuracy", "mean", "finetune")])
    loaded = load.Loaded(runs=runs, history=pd.DataFrame(columns=["run_id"]))
    tables.write_tables(loaded, tmp_path, ["backbone"], ["freeze"])
    markdown = (tmp_path / "comparison_d.md").read_text()
    assert "final_val_accuracy | finetune" in markdown and "nan" not in markdown


def _wandb_run(run_id: str, config: dict, accuracy: float) -> Run:
    """A public-API Run as the W&B server returns it, with the given config."""
    attrs = {
        "name": run_id, "displayName": run_id, "state": "finished",
        "config": json.dumps({k: {"value": v} for k, v in config.items()}),
        "summaryMetrics": json.dumps({"status": "completed", "final_val_accuracy": accuracy,
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
    assert table[("final_val_accuracy", "count")].sum() == 3


def test_history_from_wandb_keeps_the_latest_attempt_of_each_epoch():
    epochs = [(1, 0.1), (2, 0.2), (1, 0.5), (2, 0.6), (3, 0.7)]  # crashed after 2, resumed
    logged = [
        {"epoch": e, "phase": "train", "val_accuracy": v, "_step": i}
        for i, (e, v) in enumerate(epochs)
    ]
    logged.append({"_step": 9, "comparison": "table"})
    rows = load.latest_epochs(logged)
    assert [(r.epoch, r.val_accuracy) for r in rows] == [(1, 0.5), (2, 0.6), (3, 0.7)]


@pytest.mark.slow
def test_the_verdict_fits_1280_px_without_scrolling_sideways(sweep_report, tmp_path):
    """Rendered in Chromium at 1280 px, the headline and the verdict's table need no
    sideways scroll: a script added to a copy of the page measures them."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the page test: .ci/run installs chromium when it is missing")
        pytest.skip("no chromium here: apt-get install chromium")
    out, _ = sweep_report
    measure = (
        "<script>const t=document.querySelector('table.glance');"
        "const h=document.querySelector('p.headline');"
        "document.title=[t.scrollWidth<=t.clientWidth,t.getBoundingClientRect().right<=1280,"
        "h.getBoundingClientRect().right<=1280].join(',');</script>"
    )
    page = tmp_path / "page.html"
    page.write_text((out / "report.html").read_text().replace("</body>", measure + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'c'}",
             "--window-size=1280,900", "--virtual-time-budget=3000", "--dump-dom"]  # fmt: skip
    dom = subprocess.run([CHROMIUM, *flags, page.as_uri()], check=True, capture_output=True,
                         text=True, timeout=120).stdout  # fmt: skip
    (title,) = re.findall(r"<title>([^<]*)</title>", dom)
    assert title == "true,true,true", title
