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
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import pandas as pd

from bench.analysis import cli, pairs, plots, ranks, serving, tables
from bench.analysis.load import METRICS, Loaded
from bench.analysis.verdict import verdict
from bench.core import schema, stats
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
    pairwise: pd.DataFrame = field(default_factory=pd.DataFrame)  # the verdict's family
    shared: pd.Series = field(default_factory=pd.Series)  # seeds each group shares with the best
    serving: list[str] = field(default_factory=list)  # the serving verdict
    serving_table: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass
class Budgets:
    """What a model may cost to serve, for the serving verdict (``--latency-budget-ms``,
    ``--size-budget-mb``)."""

    latency_ms: float = 10.0
    size_mb: float = 8.0


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


def sections(
    loaded: Loaded, comparisons: dict[str, tables.Comparison], out: Path,
    budgets: Budgets | None = None,
) -> list[Section]:  # fmt: skip
    """Builds every dataset's section, drawing its figures into ``out/figures``."""
    budgets = budgets or Budgets()
    found = []
    for dataset, comparison in comparisons.items():
        table = comparison.table
        keys = list(table.index.names)
        metric = pairs.primary_metric(table)
        stated = pairs.family(comparison, metric)
        # Curves of completed runs only: a failed run's partial epochs are not part of a mean.
        history = loaded.history[
            (loaded.history["dataset"] == dataset) & (loaded.history["status"] == "completed")
        ]
        figures_dir = out / "figures"
        figures = [
            plots.training_time(table, dataset, figures_dir),
            plots.accuracy_curves(history, keys, dataset, figures_dir),
            plots.tradeoff(table, metric, dataset, figures_dir),
            plots.memory(table, dataset, figures_dir),
        ]
        section = Section(dataset, verdict(comparison, stated), table,
                          reference(loaded.runs, dataset), figures, pairs.frame(stated, metric),
                          shared_seeds(table, stated))  # fmt: skip
        served = serving.serving(comparison)
        if served is not None:
            section.serving = serving.sentences(served, budgets.latency_ms, budgets.size_mb)
            section.serving_table = serving.display(served)
            if not served.exports.empty:
                section.figures.append(serving.fronts(served, dataset, figures_dir))
        found.append(section)
    return found


def shared_seeds(table: pd.DataFrame, stated: list[pairs.Pair]) -> pd.Series:
    """Per group, how many seeds it shares with the best group: the pairs its comparison
    with the best is tested on (empty for the best itself)."""
    counts = {plots.label(p.b): p.difference.pairs for p in stated[: len(table) - 1]}
    shared = [counts.get(plots.label(k)) for k in table.index]
    return pd.Series(shared, index=table.index, dtype="Int64")


@dataclass
class Across:
    """The ranking over datasets (its sentence, ranks and critical-difference diagram), or
    the sentence saying why there is none."""

    sentence: str
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    figure: Path | None = None


def across(comparisons: dict[str, tables.Comparison], out: Path) -> Across:
    """Ranks the groups over the datasets when there are two or more (bench.analysis.ranks)."""
    found = ranks.rank(comparisons)
    if found is None:
        names = ", ".join(comparisons)
        why = (
            f"these runs cover one dataset ({names}), and ranks need two or more"
            if len(comparisons) < 2
            else f"fewer than two groups ran on every dataset ({names})"
        )
        return Across(f"No ranking across datasets: {why}.")
    table = found.ranks.T.assign(**{"mean rank": found.ranks.mean()}).sort_values("mean rank")
    table = table.rename_axis("group").reset_index()
    return Across(found.sentence(), table, plots.critical_difference(found, out / "figures"))


@dataclass
class RaceSection:
    """One race (``<runs>/races/<name>.json``, bench.launch.race): its outcome and course."""

    name: str
    outcome: str
    course: pd.DataFrame


def races(runs_dir: str | Path) -> list[RaceSection]:
    """The races whose documents lie beside the records, oldest first."""
    found = []
    for path in sorted(Path(runs_dir).glob("races/*.json")):
        try:
            race = json.loads(path.read_text())
            found.append(RaceSection(path.stem, _race_outcome(race), _race_course(race)))
        except (OSError, ValueError, KeyError) as error:
            print(f"skipped race {path}: {error}", file=sys.stderr)
    return found


def _race_outcome(race: dict) -> str:
    outcome, settings = race["outcome"], race["settings"]
    head = outcome["winner"] or outcome["leading"]
    state = "won" if outcome["winner"] else "leads"
    saved = outcome["grid_runs"] - outcome["runs"]
    text = (
        f"{head} {state} on {race['metric']}: {outcome['why']}. {outcome['runs']} runs of the "
        f"{outcome['grid_runs']} a full grid of {settings['max_seeds']} seeds would train "
        f"({saved} saved), {outcome['training_hours']:.2f} h of training."
    )
    for name, dropped in outcome["dropped"].items():
        text += f" {name} dropped in round {dropped['round']}: {dropped['reason']}."
    return text


def _race_course(race: dict) -> pd.DataFrame:
    rows = []
    for entry in race["rounds"]:
        for s in entry["standings"]:
            low_high = s["interval"]
            rows.append({
                "round": entry["round"], "seeds": entry["seeds"], "candidate": s["candidate"],
                "mean": None if s["mean"] is None else round(s["mean"], 3),
                "95% CI": None if not low_high else f"{low_high[0]:.3f} to {low_high[1]:.3f}",
                "completed": len(s["seeds"]), "failed": len(s["failed"]), "state": s["state"],
                "seeds each to settle": _settle(s),
            })  # fmt: skip
    return pd.DataFrame(rows)


def _settle(standing: dict) -> str:
    """A challenger still racing: about how many seeds each would tell it from the leader."""
    if standing["state"] != "racing" or not standing.get("test"):  # older race.json: absent
        return "-"
    needed = standing.get("seeds_needed")
    return f"about {needed}" if needed else f"more than {stats.MAX_SEEDS}"


def render(loaded: Loaded, found: list[Section], overall: Across, out: Path, html: bool,
           raced: list[RaceSection] | None = None) -> str:  # fmt: skip
    """The report from the one template: a self-contained HTML page, or Markdown.

    Args:
        loaded: The runs (for the inputs line and the failed runs).
        found: The sections.
        overall: The ranking across datasets.
        out: The report folder; Markdown links its figures relative to it.
        html: HTML (figures embedded) or Markdown.
    """
    shown = [
        dataclasses.replace(section, table=_displayed(section).reset_index()) for section in found
    ]
    failed = None if loaded.failed.empty else _failed(loaded)
    return _TEMPLATES.get_template("report.j2").render(
        html=html,
        inputs=_inputs(loaded),
        sections=shown,
        across=overall,
        races=raced or [],
        failed=failed,
        table=_html_table if html else _markdown_table,
        figure=_embedded if html else (lambda png: f"![{png.stem}]({png.relative_to(out)})"),
    )


def _displayed(section: Section) -> pd.DataFrame:
    shown = tables.display(section.table)
    if not section.shared.empty:
        shown["seeds shared with the best"] = section.shared.astype(object).where(
            section.shared.notna(), "-"
        )
    return shown


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
    parser.add_argument(
        "--latency-budget-ms", type=float, default=Budgets.latency_ms,
        help="the serving verdict's batch-1 latency budget (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--size-budget-mb", type=float, default=Budgets.size_mb,
        help="the serving verdict's model-size budget (default: %(default)s)",
    )  # fmt: skip
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
    comparisons = tables.comparisons(loaded.runs, rows, cols)
    budgets = Budgets(args.latency_budget_ms, args.size_budget_mb)
    found, overall = sections(loaded, comparisons, out, budgets), across(comparisons, out)
    raced = [] if args.wandb else races(args.runs)
    (out / "report.md").write_text(render(loaded, found, overall, out, False, raced))
    (out / "report.html").write_text(render(loaded, found, overall, out, True, raced))
    print(f"wrote {len(written)} tables to {out / 'tables'}")
    figures = sum(len(s.figures) for s in found) + (overall.figure is not None)
    print(f"wrote {figures} figures (PNG and SVG) to {out / 'figures'}")
    print(f"wrote {out / 'report.md'}\nwrote {out / 'report.html'}")
    for section in found:
        print(f"{section.dataset}: {section.verdict[0]}")
    if args.wandb_report:
        print(f"W&B report: {wandb_report(args, found)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
