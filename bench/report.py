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
import html
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench import aggregate, plots

REFERENCE = Path(__file__).resolve().parent.parent / "results" / "reference" / "published.csv"


@dataclass
class Section:
    """One dataset's part of the report."""

    dataset: str
    verdict: list[str]
    table: pd.DataFrame
    reference: pd.DataFrame
    figures: list[Path] = field(default_factory=list)


def primary_metric(table: pd.DataFrame) -> str:
    """Test accuracy when every group has it, else the best validation accuracy."""
    metrics = table.columns.get_level_values(0)
    if "test_accuracy" in metrics and table[("test_accuracy", "count")].gt(0).all():
        return "test_accuracy"
    return "best_val_accuracy"


def _spread(table: pd.DataFrame, metric: str, a, b) -> float | None:
    """The seed-to-seed spread two groups are compared against, if both repeat seeds."""
    if min(table.loc[a, (metric, "count")], table.loc[b, (metric, "count")]) < 2:
        return None
    return max(table.loc[a, (metric, "std")], table.loc[b, (metric, "std")])


def _versus(table: pd.DataFrame, metric: str, a, b) -> str:
    """``a`` against ``b`` on ``metric``: a win by so many points, or a tie."""
    acc = table[(metric, "mean")]
    diff, spread = acc[a] - acc[b], _spread(table, metric, a, b)
    la, lb = plots.label(a), plots.label(b)
    scores = f"{acc[a]:.3f} vs {acc[b]:.3f}"
    if spread is not None and abs(diff) <= spread:
        return f"{la} and {lb} tie ({scores}, within the ±{spread:.3f} seed spread)"
    if diff < 0:
        la, lb, scores = lb, la, f"{acc[b]:.3f} vs {acc[a]:.3f}"
    return f"{la} beats {lb} by {abs(diff) * 100:.1f} points ({scores})"


def verdict(table: pd.DataFrame) -> list[str]:
    """Sentences a reader can act on, computed from one dataset's comparison table."""
    metric = primary_metric(table)
    acc, time = table[(metric, "mean")], table[("train_time_s", "mean")]
    best, fastest = acc.idxmax(), time.idxmin()
    lines = [
        f"Most accurate: {plots.label(best)} with {metric} {acc[best]:.3f} "
        f"after {time[best]:.1f} s of training."
    ]
    ties = [k for k in table.index if k != best and "tie" in _versus(table, metric, best, k)]
    if ties:
        lines.append(
            "Within the seed-to-seed spread of the best (a tie, not a loss): "
            + ", ".join(plots.label(k) for k in ties) + "."
        )  # fmt: skip
    lines.append(
        f"Fastest to train: {plots.label(fastest)} in {time[fastest]:.1f} s "
        f"({metric} {acc[fastest]:.3f})."
    )
    lines += mobilenet_vs_efficientnet(table, metric)
    if table[(metric, "count")].max() < 2:
        lines.append("One seed per group: differences are not tested against seed noise.")
    return lines


def mobilenet_vs_efficientnet(table: pd.DataFrame, metric: str) -> list[str]:
    """MobileNetV2 against each EfficientNet that shares all its other axes."""
    if "backbone" not in table.index.names:
        return []
    keys = table.index.to_frame(index=False).astype(str)
    rest = [name for name in keys.columns if name != "backbone"]
    time = table[("train_time_s", "mean")]
    lines = []
    for i in keys.index[keys["backbone"] == "mobilenet_v2"]:
        same = (keys[rest] == keys.loc[i, rest]).all(axis=1)
        for j in keys.index[same & keys["backbone"].str.fullmatch(r"b\d")]:
            a, b = table.index[i], table.index[j]
            speed = time[b] / time[a]
            lines.append(
                f"{_versus(table, metric, a, b)}; MobileNetV2 trains {speed:.1f}x as fast."
            )
    return lines


def reference(runs: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Published numbers next to ours, for runs of a preset that match a reference row."""
    published = pd.read_csv(REFERENCE)
    ours = runs[(runs["status"] == "completed") & (runs["dataset"] == dataset)]
    if ours.empty or "experiment" not in ours:
        return pd.DataFrame()
    keys = ["experiment", "backbone", "dataset", "freeze"]
    means = ours.groupby(keys, dropna=True)[list(aggregate.METRICS)].mean().reset_index()
    merged = published.rename(columns={"preset": "experiment"}).merge(means, on=keys)
    if merged.empty:
        return merged
    merged["ours"] = [row[row["metric"]] for _, row in merged.iterrows()]
    return merged[[*keys, "metric", "value", "ours", "source"]].rename(
        columns={"value": "published"}
    )


def sections(
    loaded: aggregate.Loaded, rows: list[str], cols: list[str], out: Path
) -> list[Section]:
    """Builds every dataset's section, drawing its figures into ``out/figures``."""
    found = []
    for dataset, table in aggregate.compare(loaded.runs, rows, cols).items():
        keys = list(table.index.names)
        history = loaded.history[loaded.history["dataset"] == dataset]
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


def markdown(loaded: aggregate.Loaded, found: list[Section], out: Path) -> str:
    """The report as Markdown, figures linked relative to ``out``."""
    parts = ["# bench report", "", _inputs(loaded), ""]
    for section in found:
        parts += [f"## {section.dataset}", ""]
        parts += [f"- {line}" for line in section.verdict] + [""]
        parts += [aggregate.display(section.table).reset_index().to_markdown(index=False), ""]
        if not section.reference.empty:
            parts += [
                "Published numbers next to ours:",
                "",
                section.reference.to_markdown(index=False),
                "",
            ]
        parts += [f"![{p.stem}]({p.relative_to(out)})" for p in section.figures] + [""]
    if not loaded.failed.empty:
        parts += ["## Failed runs", "", _failed(loaded).to_markdown(index=False), ""]
    return "\n".join(parts)


def page(loaded: aggregate.Loaded, found: list[Section]) -> str:
    """The report as one self-contained HTML page (figures embedded)."""
    body = [f"<h1>bench report</h1><p>{html.escape(_inputs(loaded))}</p>"]
    for section in found:
        body.append(f"<h2>{html.escape(section.dataset)}</h2><ul>")
        body += [f"<li>{html.escape(line)}</li>" for line in section.verdict]
        body.append("</ul>" + aggregate.display(section.table).reset_index().to_html(index=False))
        if not section.reference.empty:
            body.append(
                "<h3>Published numbers next to ours</h3>" + section.reference.to_html(index=False)
            )
        for png in section.figures:
            data = base64.b64encode(png.read_bytes()).decode()
            body.append(
                f'<figure><img alt="{png.stem}" src="data:image/png;base64,{data}"></figure>'
            )
    if not loaded.failed.empty:
        body.append("<h2>Failed runs</h2>" + _failed(loaded).to_html(index=False))
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:13px;display:block;overflow-x:auto}"
        "td,th{border:1px solid #ccc;padding:3px 6px}"
        "img{max-width:100%}"
    )
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>bench report</title>'
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>"
    )


def _inputs(loaded: aggregate.Loaded) -> str:
    done = int((loaded.runs["status"] == "completed").sum())
    text = f"{len(loaded.runs)} runs: {done} completed, {len(loaded.failed)} failed."
    if loaded.skipped:
        text += f" Skipped {len(loaded.skipped)} unreadable record(s): " + ", ".join(
            Path(path).name for path, _ in loaded.skipped
        )
    return text


def _failed(loaded: aggregate.Loaded) -> pd.DataFrame:
    columns = [
        c for c in ("run_id", "backbone", "dataset", "error_type", "error") if c in loaded.runs
    ]
    return loaded.failed[columns]


def wandb_report(args, found: list[Section]) -> str:
    """Publishes a W&B Report with the verdicts and panels of the runs (needs W&B online)."""
    from bench import track

    if not args.wandb or not track.has_credentials():
        raise SystemExit("--wandb-report needs --wandb ENTITY/PROJECT and W&B credentials.")
    return track.publish_report(args.wandb, args.group, {s.dataset: s.verdict for s in found})


def main(argv: list[str] | None = None) -> int:
    """Writes the tables, the figures, report.html and report.md; says where."""
    description = __doc__.split("\n\n")[0]
    parser = aggregate.arguments("python -m bench.report", description, "results/report")
    parser.add_argument("--wandb-report", action="store_true", help="also build a W&B Report")
    args = parser.parse_args(argv)
    loaded = aggregate.load(args)
    aggregate.report_inputs(loaded)
    if not (loaded.runs["status"] == "completed").any():
        print(f"no completed runs in {args.wandb or args.runs}; nothing to report", file=sys.stderr)
        return 1
    out = Path(args.out)
    rows, cols = aggregate.split(args.rows), aggregate.split(args.cols)
    tables = aggregate.write_tables(loaded, out / "tables", rows, cols)
    found = sections(loaded, rows, cols, out)
    (out / "report.md").write_text(markdown(loaded, found, out))
    (out / "report.html").write_text(page(loaded, found))
    print(f"wrote {len(tables)} tables to {out / 'tables'}")
    print(f"wrote {sum(len(s.figures) for s in found)} figures (PNG and SVG) to {out / 'figures'}")
    print(f"wrote {out / 'report.md'}\nwrote {out / 'report.html'}")
    for section in found:
        print(f"{section.dataset}: {section.verdict[0]}")
    if args.wandb_report:
        print(f"W&B report: {wandb_report(args, found)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
