"""``python -m bench.report``: the comparison as one HTML page and one Markdown file.

Per dataset: a verdict computed from the data, the comparison table, the published
numbers next to ours where a run matches a preset, and the figures (training time,
validation accuracy per epoch, accuracy against training time and parameters, peak
memory). With no arguments it reads ``results/runs`` and writes ``results/report``.

    python -m bench.report
    python -m bench.report --wandb my-team/bench --group 2026-11-22_10-00-00 --wandb-report
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import importlib.resources
import sys
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import pandas as pd

from bench.analysis import cli, plots, tables
from bench.analysis.load import METRICS, Loaded
from bench.analysis.verdict import primary_metric, verdict
from bench.core import schema
from bench.core.wandb_mode import has_credentials

# results/reference/ of the repository, shipped in the wheel as the bench.reference package.
REFERENCE = importlib.resources.files("bench.reference").joinpath("published.csv")
_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("bench.analysis", "templates"),
    autoescape=False,  # the template escapes text itself in its HTML branch
    keep_trailing_newline=True,
)


@dataclass
class Section:
    """One dataset's part of the report."""

    dataset: str
    verdict: list[str]
    table: pd.DataFrame
    reference: pd.DataFrame
    figures: list[Path] = field(default_factory=list)


@functools.cache
def recipe_length(preset: str) -> int:
    """Epochs a preset trains (head-only epochs included), from its composed config."""
    cfg = schema.compose([f"experiment={preset}"])
    return int(cfg.epochs) + int(cfg.freeze.head_epochs)


def reference(runs: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Published numbers next to ours, for runs of a preset that match a reference row.

    The ``recipe`` column says whether our runs trained as long as the published recipe
    or were shortened (``epochs=5`` on a 50-epoch preset), so the two are not read as peers.
    """
    with REFERENCE.open() as handle:
        published = pd.read_csv(handle)
    ours = runs[(runs["status"] == "completed") & (runs["dataset"] == dataset)]
    if ours.empty or "experiment" not in ours:
        return pd.DataFrame()
    ours = ours.assign(length=ours["epochs"] + ours["freeze.head_epochs"])
    keys = ["experiment", "backbone", "dataset", "freeze"]
    grouped = ours.groupby([*keys, "length"], dropna=True)
    means = grouped[list(METRICS)].mean().join(grouped.size().rename("n")).reset_index()
    merged = published.rename(columns={"preset": "experiment"}).merge(means, on=keys)
    if merged.empty:
        return merged
    merged["ours"] = [row[row["metric"]] for _, row in merged.iterrows()]
    merged["recipe"] = [
        _length_note(row["experiment"], int(row["length"])) for _, row in merged.iterrows()
    ]
    return merged[[*keys, "metric", "value", "ours", "n", "recipe", "source"]].rename(
        columns={"value": "published"}
    )


def _length_note(preset: str, ours: int) -> str:
    theirs = recipe_length(preset)
    if ours == theirs:
        return f"same length ({theirs} epochs)"
    return f"shortened: {ours} of {theirs} epochs, not comparable"


def sections(loaded: Loaded, rows: list[str], cols: list[str], out: Path) -> list[Section]:
    """Builds every dataset's section, drawing its figures into ``out/figures``."""
    found = []
    for dataset, table in tables.compare(loaded.runs, rows, cols).items():
        keys = list(table.index.names)
        # Curves of completed runs only: a failed run's partial epochs are not part of a mean.
        history = loaded.history[
            (loaded.history["dataset"] == dataset) & (loaded.history["status"] == "completed")
        ]
        figures_dir = out / "figures"
        figures = [
            plots.training_time(table, dataset, figures_dir),
            plots.accuracy_curves(history, keys, dataset, figures_dir),
            plots.tradeoff(table, primary_metric(table), dataset, figures_dir),
            plots.memory(table, dataset, figures_dir),
        ]
        found.append(
            Section(dataset, verdict(table), table, reference(loaded.runs, dataset), figures)
        )
    return found


def render(loaded: Loaded, found: list[Section], out: Path, html: bool) -> str:
    """The report from the one template: a self-contained HTML page, or Markdown.

    Args:
        loaded: The runs (for the inputs line and the failed runs).
        found: The sections.
        out: The report folder; Markdown links its figures relative to it.
        html: HTML (figures embedded) or Markdown.
    """
    shown = [
        dataclasses.replace(section, table=tables.display(section.table).reset_index())
        for section in found
    ]
    failed = None if loaded.failed.empty else _failed(loaded)
    return _TEMPLATES.get_template("report.j2").render(
        html=html,
        inputs=_inputs(loaded),
        sections=shown,
        failed=failed,
        table=_html_table if html else _markdown_table,
        figure=_embedded if html else (lambda png: f"![{png.stem}]({png.relative_to(out)})"),
    )


def _markdown_table(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False) + "\n"


def _html_table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False)


def _embedded(png: Path) -> str:
    data = base64.b64encode(png.read_bytes()).decode()
    return f'<figure><img alt="{png.stem}" src="data:image/png;base64,{data}"></figure>'


def _inputs(loaded: Loaded) -> str:
    done = int((loaded.runs["status"] == "completed").sum())
    text = f"{len(loaded.runs)} runs: {done} completed, {len(loaded.failed)} failed."
    if loaded.skipped:
        text += f" Skipped {len(loaded.skipped)} unreadable record(s): " + ", ".join(
            Path(path).name for path, _ in loaded.skipped
        )
    return text


def _failed(loaded: Loaded) -> pd.DataFrame:
    columns = [
        c for c in ("run_id", "backbone", "dataset", "error_type", "error") if c in loaded.runs
    ]
    return loaded.failed[columns]


def wandb_report(args, found: list[Section]) -> str:
    """Publishes a W&B Report with the verdicts and panels of the runs (needs W&B online)."""
    from bench.analysis import wandb_api  # wandb loads only for this option

    return wandb_api.publish_report(args.wandb, args.group, {s.dataset: s.verdict for s in found})


def main(argv: list[str] | None = None) -> int:
    """Writes the tables, the figures, report.html and report.md; says where."""
    description = __doc__.split("\n\n")[0]
    parser = cli.arguments("python -m bench.report", description, "results/report")
    parser.add_argument("--wandb-report", action="store_true", help="also build a W&B Report")
    args = parser.parse_args(argv)
    if args.wandb_report and not (args.wandb and has_credentials()):  # before any work
        raise SystemExit("--wandb-report needs --wandb ENTITY/PROJECT and W&B credentials.")
    loaded = cli.load(args)
    cli.report_inputs(loaded)
    if not (loaded.runs["status"] == "completed").any():
        print(f"no completed runs in {args.wandb or args.runs}; nothing to report", file=sys.stderr)
        return 1
    out = Path(args.out)
    rows, cols = cli.split(args.rows), cli.split(args.cols)
    written = tables.write_tables(loaded, out / "tables", rows, cols)
    found = sections(loaded, rows, cols, out)
    (out / "report.md").write_text(render(loaded, found, out, html=False))
    (out / "report.html").write_text(render(loaded, found, out, html=True))
    print(f"wrote {len(written)} tables to {out / 'tables'}")
    print(f"wrote {sum(len(s.figures) for s in found)} figures (PNG and SVG) to {out / 'figures'}")
    print(f"wrote {out / 'report.md'}\nwrote {out / 'report.html'}")
    for section in found:
        print(f"{section.dataset}: {section.verdict[0]}")
    if args.wandb_report:
        print(f"W&B report: {wandb_report(args, found)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
