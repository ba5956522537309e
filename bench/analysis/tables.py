"""Comparison tables from the tidy runs frame, and ``python -m bench.aggregate``.

python -m bench.aggregate                      # results/runs -> results/tables
python -m bench.aggregate --rows backbone --cols freeze
python -m bench.aggregate --wandb my-team/bench --group 2026-11-22_10-00-00
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.analysis import cli
from bench.analysis.load import METRICS, Loaded, identity_columns, phase_columns
from bench.core import stats

SELECT = "final_val_accuracy"  # chooses: the validation accuracy of the tested weights
REPORT = "test_accuracy"  # reports, for what validation chose
DIVERGED = "Diverged"  # a failed run's error type that is a result, not a missing seed
# A maximum over epochs: the epoch was chosen on the data it reports, and no kept model has
# it. runs.csv keeps it; no comparison table shows it.
NOT_SHOWN = ("best_val_accuracy",)


def scored(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs that are results: completed ones, and diverged ones at chance accuracy (one
    over the classes; ``diverged`` is 1 for them, so its mean is the failure rate)."""
    error = runs["error_type"] if "error_type" in runs else pd.Series(None, index=runs.index)
    diverged = (runs["status"] != "completed") & (error == DIVERGED)
    keep = runs[(runs["status"] == "completed") | diverged].copy()
    keep["diverged"] = diverged[keep.index].astype(float)
    hit = keep["diverged"] == 1
    if hit.any():
        classes = pd.to_numeric(keep.get("dataset.num_classes"), errors="coerce")
        for metric in (SELECT, REPORT):
            if metric in keep:
                keep[metric] = keep[metric].astype(float)
                keep.loc[hit, metric] = 1.0 / classes[hit]
    return keep


def group_keys(part: pd.DataFrame, rows: list[str], cols: list[str]) -> list[str]:
    """``rows`` + ``cols``, the resolution beside the backbone, and every identity key that
    varies among ``part``: only runs that differ in nothing but their seed share a group."""
    extra = ["image_size"] if "backbone" in rows + cols and "image_size" in part else []
    varying = [
        c for c in identity_columns(part)
        # dropna=False: a key null in some runs and set in others splits them too.
        if c != "dataset" and part[c].astype(str).nunique(dropna=False) > 1
    ]  # fmt: skip
    return list(dict.fromkeys(rows + cols + extra + varying))


@dataclass
class Comparison:
    """One dataset's comparison: the table (one row per group of runs that differ only in
    their seed) and each group's completed runs, for tests that pair seeds."""

    dataset: str
    table: pd.DataFrame
    members: dict = field(default_factory=dict)  # table index key -> that group's runs

    def seeds(self, metric: str, key) -> dict[int, float]:
        """``{seed: value}`` of ``metric`` for the group ``key`` (the mean of a seed that
        was read twice, as W&B may return a rerun)."""
        runs = self.members[key][["seed", metric]].dropna()
        return {
            int(seed): float(value) for seed, value in runs.groupby("seed")[metric].mean().items()
        }


def comparisons(
    runs: pd.DataFrame, rows: list[str] | None = None, cols: list[str] | None = None
) -> dict[str, Comparison]:
    """Per dataset, the comparison table and its groups' runs (see :func:`compare`)."""
    rows, cols = list(rows or ["backbone"]), list(cols or [])
    done = scored(runs)
    found = {}
    for dataset, part in done.groupby("dataset", sort=True):
        keys = group_keys(part, rows, cols)
        part = part.assign(**{k: _comparable(part[k]) for k in keys if part[k].dtype == object})
        measured = [m for m in METRICS if m not in NOT_SHOWN] + ["diverged"]
        metrics = [m for m in measured + phase_columns(part) if m in part and part[m].notna().any()]
        grouped = part.groupby(keys, dropna=False, sort=True)
        table = with_intervals(grouped[metrics].agg(["mean", "std", "count"]))
        # The same groups in the same (sorted) order: each index key names its runs.
        members = dict(zip(table.index, (group for _, group in grouped), strict=True))
        found[str(dataset)] = Comparison(str(dataset), table, members)
    return found


def compare(
    runs: pd.DataFrame, rows: list[str] | None = None, cols: list[str] | None = None
) -> dict[str, pd.DataFrame]:
    """Comparison tables per dataset: mean, std, count and 95% interval of each metric per group.

    Completed runs are grouped by :func:`group_keys`, so a row averages exactly the runs
    whose resolved configs and conditions differ only in ``seed``.

    Returns:
        ``{dataset: table}``; each table has one row per group and columns
        ``(metric, stat)`` with stat in mean, std, count, ci_low, ci_high. ``cols`` stay in
        the index; see :func:`pivot` for the wide layout.
    """
    return {name: found.table for name, found in comparisons(runs, rows, cols).items()}


def _comparable(column: pd.Series) -> pd.Series:
    """Object keys as text, so that None, numbers and strings sort together."""
    return column.map(lambda v: "-" if v is None or v != v else str(v))


def with_intervals(table: pd.DataFrame) -> pd.DataFrame:
    """Adds each metric's 95% interval of the mean (NaN for a single run), metrics in order."""
    parts = {}
    for metric in dict.fromkeys(table.columns.get_level_values(0)):
        part = table[metric].copy()
        bounds = [
            stats.mean_interval(m, s, int(n)) or (float("nan"), float("nan"))
            for m, s, n in zip(part["mean"], part["std"], part["count"], strict=True)
        ]
        part["ci_low"] = [low for low, _ in bounds]
        part["ci_high"] = [high for _, high in bounds]
        parts[metric] = part
    return pd.concat(parts, axis=1)


def pivot(table: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Moves the ``cols`` axes of a comparison table from its index to its columns."""
    return table.unstack(cols) if cols else table


def display(table: pd.DataFrame) -> pd.DataFrame:
    """Human-readable cells: ``mean ± std (n; 95% CI)``, memory in MiB, parameters in millions."""
    out = pd.DataFrame(index=table.index)
    for metric in dict.fromkeys(table.columns.get_level_values(0)):
        columns = [table[(metric, k)] for k in ("mean", "std", "count", "ci_low", "ci_high")]
        name, scale, digits = _unit(metric)
        out[name] = [
            _cell(m / scale, s / scale, int(n), lo / scale, hi / scale, digits)
            for m, s, n, lo, hi in zip(*columns, strict=True)
        ]
    return out


def _unit(metric: str) -> tuple[str, float, int]:
    if metric.endswith("_bytes"):
        return metric.replace("_bytes", "_MiB"), 2**20, 0
    if metric.endswith("_MB"):  # already in megabytes (serving sizes)
        return metric, 1.0, 2
    if metric.startswith("params_"):
        return f"{metric}_M", 1e6, 2
    if "accuracy" in metric or "_ms" in metric:  # serving latency: often under 1 ms
        return metric, 1.0, 3
    return metric, 1.0, 1


def _cell(mean: float, std: float, count: int, low: float, high: float, digits: int) -> str:
    if pd.isna(mean):
        return "-"
    if count < 2 or pd.isna(std) or std == 0:  # one run, or identical runs (parameters)
        return f"{mean:.{digits}f} (n={count})"
    return (
        f"{mean:.{digits}f} ± {std:.{digits}f} "
        f"(n={count}; 95% CI {low:.{digits}f} to {high:.{digits}f})"
    )


def write_tables(loaded: Loaded, out: Path, rows: list[str], cols: list[str]) -> list[Path]:
    """Writes runs.csv, history.csv and per-dataset comparison tables (md, csv, tex)."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "runs.csv", out / "history.csv"]
    loaded.runs.to_csv(written[0], index=False)
    loaded.history.to_csv(written[1], index=False)
    for dataset, table in compare(loaded.runs, rows, cols).items():
        shown = display(table)
        if cols:
            shown = shown.unstack(cols).fillna("-")
            shown.columns = [" | ".join(map(str, column)) for column in shown.columns]
        shown = shown.reset_index()
        stem = out / f"comparison_{dataset}"
        pivot(table, cols).to_csv(stem.with_suffix(".csv"))
        stem.with_suffix(".md").write_text(shown.to_markdown(index=False) + "\n")
        stem.with_suffix(".tex").write_text(shown.to_latex(index=False, escape=True))
        written += [stem.with_suffix(s) for s in (".md", ".csv", ".tex")]
    return written


def parser():
    """``python -m bench.aggregate``'s options (the documentation is built from them)."""
    description = "Runs into tidy pandas tables: one row per run, and the comparison tables."
    return cli.arguments("python -m bench.aggregate", description, "results/tables")


def main(argv: list[str] | None = None) -> int:
    """Writes the tidy tables and the comparison tables; says where."""
    args = parser().parse_args(argv)
    loaded = cli.load(args)
    cli.report_inputs(loaded)
    if loaded.runs.empty:
        print(f"no runs found in {args.wandb or args.runs}", file=sys.stderr)
        return 1
    for path in write_tables(loaded, Path(args.out), cli.split(args.rows), cli.split(args.cols)):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
