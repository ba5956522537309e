"""Runs into tidy pandas tables: one row per run, and the comparison tables.

Sources: result records (``results/runs/*.json``, the default) or the W&B API
(``--wandb ENTITY/PROJECT``); both pass through the same mapping, so they give the same
columns. The inputs are only read, never rewritten. A damaged record is reported by name
and skipped; failed runs stay in the table with their error.

    python -m bench.aggregate                      # results/runs -> results/tables
    python -m bench.aggregate --rows backbone --cols freeze
    python -m bench.aggregate --wandb my-team/bench --group 2026-11-22_10-00-00
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench import records

# Short column names for the axes and conditions of a run (the rest keep dotted names).
RENAMES = {
    "config.backbone.name": "backbone",
    "config.backbone.source": "source",
    "config.backbone.weights": "weights",
    "config.dataset.name": "dataset",
    "config.head.name": "head",
    "config.freeze.name": "freeze",
    "config.optimizer.name": "optimizer",
    "config.optimizer.lr": "lr",
    "config.augment.name": "augment",
    "error.type": "error_type",
    "error.message": "error",
    "wandb.id": "wandb_id",
    "wandb.url": "wandb_url",
    "wandb.mode": "wandb_mode",
    "job.group": "group",
    "env.strategy": "strategy_used",  # the class; config.strategy is what was asked for
}
_VERSIONS = ("python", "tensorflow", "keras", "tensorflow_hub", "tensorflow_datasets", "wandb")
RENAMES.update({f"env.{name}": f"{name}_version" for name in (*_VERSIONS, "hydra", "bench")})
AXES = [
    "experiment", "backbone", "source", "weights", "dataset", "head", "freeze", "optimizer",
    "lr", "augment", "batch_size", "epochs", "image_size", "precision", "seed",
]  # fmt: skip
METRICS = [
    "best_val_accuracy", "final_val_accuracy", "test_accuracy", "train_time_s",
    "epoch_time_s", "train_images_per_s", "peak_device_memory_bytes",
    "peak_host_rss_bytes", "params_total", "params_trainable",
]  # fmt: skip
_DROPPED = ("history", "schema_version", "wandb.dir")


@dataclass
class Loaded:
    """What was read: the runs, their epochs, and the inputs that had to be skipped."""

    runs: pd.DataFrame
    history: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def failed(self) -> pd.DataFrame:
        """The runs that did not complete, with their errors."""
        return self.runs[self.runs["status"] != "completed"]


def from_records(results_dir: str | Path) -> Loaded:
    """Reads every ``*.json`` record under ``results_dir`` (not recursively)."""
    found, skipped = [], []
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            record = records.read(path)
        except (OSError, ValueError) as error:
            skipped.append((str(path), f"unreadable: {error}"))
            continue
        problems = records.problems(record)
        if problems:
            skipped.append((str(path), "; ".join(problems[:3])))
            continue
        found.append({**record, "path": str(path)})
    return build(found, skipped)


def record_from_wandb(run, history: list[dict] | None = None) -> dict:
    """Maps a public-API ``wandb.apis.public.Run`` to the record layout.

    Args:
        run: The API run (its ``id``, ``config``, ``summary``, ``state``, ``group``...).
        history: Its per-epoch rows (``run.scan_history()``), if wanted.
    """
    config = {k: v for k, v in dict(run.config).items() if not k.startswith("_")}
    run_id = config.pop("run_id", run.id)
    env = config.pop("env", {})
    summary = dict(run.summary)
    status = summary.get("status") or ("completed" if run.state == "finished" else "failed")
    error = None
    if status != "completed":
        error = {"type": summary.get("error_type") or run.state, "message": summary.get("error")}
    keys = records.HISTORY_KEYS
    return {
        "run_id": run_id,
        "status": status,
        "started_at": run.created_at,
        "finished_at": None,
        "config": config,
        "env": env,
        "metrics": {key: summary.get(key) for key in records.METRIC_KEYS},
        "history": [{k: row.get(k) for k in keys} for row in history or [] if "epoch" in row],
        "wandb": {"mode": "online", "id": run.id, "url": getattr(run, "url", None)},
        "error": error,
        "job": {"group": run.group},
        "path": f"wandb:{run.entity}/{run.project}/{run.id}",
    }


def from_wandb(
    path: str, group: str | None = None, tag: str | None = None, history: bool = True
) -> Loaded:
    """Reads the training runs of a W&B project through the public API.

    Args:
        path: ``ENTITY/PROJECT``.
        group: Only runs of this group (a multirun).
        tag: Only runs with this tag (e.g. an experiment preset).
        history: Also fetch every epoch (``scan_history``, unsampled).
    """
    from bench import track  # wandb loads only for this source

    filters: dict = {"jobType": "train"}
    if group:
        filters["group"] = group
    if tag:
        filters["tags"] = {"$in": [tag]}
    found = []
    for run in track.api_runs(path, filters):
        rows = list(run.scan_history()) if history else None
        found.append(record_from_wandb(run, rows))
    return build(found, [])


def build(found: list[dict], skipped: list[tuple[str, str]]) -> Loaded:
    """The tidy tables from record dicts."""
    runs = runs_frame(found)
    return Loaded(runs=runs, history=history_frame(found, runs), skipped=skipped)


def runs_frame(found: list[dict]) -> pd.DataFrame:
    """One row per run: axes, metrics, status and error, conditions; numbers stay numbers."""
    if not found:
        return pd.DataFrame(columns=["run_id", "status", *AXES, *METRICS])
    no_error = {"type": None, "message": None}
    found = [{**r, "error": r.get("error") or no_error} for r in found]
    flat = pd.json_normalize(found, sep=".").drop(columns=list(_DROPPED), errors="ignore")
    renames = dict(RENAMES)
    for column in flat.columns:
        for prefix in ("metrics.", "env.", "config."):
            if column.startswith(prefix) and column not in renames:
                renames[column] = column[len(prefix) :]
    flat = flat.rename(columns=renames)
    flat = flat.drop(columns=[c for c in flat.columns if c.startswith("job.")])
    for column in flat.columns:
        if flat[column].map(lambda v: isinstance(v, list)).any():
            flat[column] = flat[column].map(
                lambda v: ",".join(map(str, v)) if isinstance(v, list) else v
            )
    first = ["run_id", "status", *AXES, *METRICS]
    return flat[[c for c in first if c in flat] + [c for c in flat if c not in first]]


def history_frame(found: list[dict], runs: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch rows in long format, with the run's id and its axes from ``runs``."""
    rows = [{"run_id": record["run_id"], **row} for record in found for row in record["history"]]
    history = pd.DataFrame(rows, columns=["run_id", *records.HISTORY_KEYS])
    keep = ["run_id", *(a for a in AXES if a in runs and a not in history)]
    return history.merge(runs[keep], on="run_id", how="left")


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


def load(args: argparse.Namespace) -> Loaded:
    """Runs from the source the command line names."""
    if args.wandb:
        return from_wandb(args.wandb, args.group, args.tag)
    return from_records(args.runs)


def report_inputs(loaded: Loaded) -> None:
    """Says what was read, what was skipped and which runs failed."""
    done = int((loaded.runs["status"] == "completed").sum())
    print(f"read {len(loaded.runs)} runs: {done} completed, {len(loaded.failed)} failed")
    for path, reason in loaded.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    for _, run in loaded.failed.iterrows():
        print(f"failed run {run['run_id']} ({run.get('backbone')}): {run.get('error')}")


def arguments(prog: str, description: str, default_out: str) -> argparse.ArgumentParser:
    """The command-line options bench.aggregate and bench.report share."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--runs", default="results/runs", help="folder of records (default: %(default)s)"
    )
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read runs from W&B instead")
    parser.add_argument("--group", help="with --wandb: only this group (a multirun)")
    parser.add_argument("--tag", help="with --wandb: only runs with this tag")
    parser.add_argument(
        "--rows", default="backbone", help="axes for rows, comma-separated (default: %(default)s)"
    )
    parser.add_argument(
        "--cols", default="", help="axes for columns, comma-separated (default: none)"
    )
    parser.add_argument("--out", default=default_out, help="output folder (default: %(default)s)")
    return parser


def split(value: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]``."""
    return [part for part in value.split(",") if part]


def main(argv: list[str] | None = None) -> int:
    """Writes the tidy tables and the comparison tables; says where."""
    description = __doc__.split("\n\n")[0]
    args = arguments("python -m bench.aggregate", description, "results/tables").parse_args(argv)
    loaded = load(args)
    report_inputs(loaded)
    if loaded.runs.empty:
        print(f"no runs found in {args.wandb or args.runs}", file=sys.stderr)
        return 1
    for path in write_tables(loaded, Path(args.out), split(args.rows), split(args.cols)):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
