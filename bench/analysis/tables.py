"""Comparison tables from the tidy runs frame, and ``python -m bench.aggregate``.

python -m bench.aggregate                      # results/runs -> results/tables
python -m bench.aggregate --rows backbone --cols freeze
python -m bench.aggregate --wandb my-team/bench --group 2026-11-22_10-00-00
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from bench.analysis import cli
from bench.analysis.load import AXES, METRICS, Loaded


def varying_axes(runs: pd.DataFrame, exclude: tuple[str, ...] = ("seed",)) -> list[str]:
    """Axes that take more than one value among ``runs`` (seeds excluded)."""
    return [a for a in AXES if a in runs and a not in exclude and runs[a].nunique(dropna=False) > 1]


def compare(
    runs: pd.DataFrame, rows: list[str] | None = None, cols: list[str] | None = None
) -> dict[str, pd.DataFrame]:
    """Comparison tables per dataset: mean, std and count of each metric per group.

    Runs are grouped by ``rows`` + ``cols`` and every other axis that varies, so that only
    repeated seeds are ever averaged together.

    Returns:
        ``{dataset: table}``; each table has one row per group and columns
        ``(metric, stat)`` with stat in mean, std, count. ``cols`` stay in the index; see
        :func:`pivot` for the wide layout.
    """
    rows, cols = list(rows or ["backbone"]), list(cols or [])
    done = runs[runs["status"] == "completed"]
    tables = {}
    for dataset, part in done.groupby("dataset", sort=True):
        keys = rows + cols + [a for a in varying_axes(part) if a not in rows + cols + ["dataset"]]
        present = [m for m in METRICS if m in part and part[m].notna().any()]
        table = part.groupby(keys, dropna=False)[present].agg(["mean", "std", "count"])
        tables[str(dataset)] = table
    return tables


def pivot(table: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Moves the ``cols`` axes of a comparison table from its index to its columns."""
    return table.unstack(cols) if cols else table


def display(table: pd.DataFrame) -> pd.DataFrame:
    """Human-readable cells: ``mean ± std (n)``, memory in MiB, parameters in millions."""
    out = pd.DataFrame(index=table.index)
    for metric in dict.fromkeys(table.columns.get_level_values(0)):
        mean, std, count = (table[(metric, stat)] for stat in ("mean", "std", "count"))
        name, scale, digits = _unit(metric)
        out[name] = [
            _cell(m / scale, s / scale, int(n), digits)
            for m, s, n in zip(mean, std, count, strict=True)
        ]
    return out


def _unit(metric: str) -> tuple[str, float, int]:
    if metric.endswith("_bytes"):
        return metric.replace("_bytes", "_MiB"), 2**20, 0
    if metric.startswith("params_"):
        return f"{metric}_M", 1e6, 2
    if "accuracy" in metric:
        return metric, 1.0, 3
    return metric, 1.0, 1


def _cell(mean: float, std: float, count: int, digits: int) -> str:
    if pd.isna(mean):
        return "-"
    if count < 2 or pd.isna(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f} (n={count})"


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


def main(argv: list[str] | None = None) -> int:
    """Writes the tidy tables and the comparison tables; says where."""
    description = "Runs into tidy pandas tables: one row per run, and the comparison tables."
    parser = cli.arguments("python -m bench.aggregate", description, "results/tables")
    args = parser.parse_args(argv)
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
