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
import functools
import importlib.resources
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import pandas as pd

from bench.analysis import budget, cli, pairs, plots, ranks, select, serving, tables, verdict
from bench.analysis.load import METRICS, Loaded
from bench.analysis.verdict import Verdict
from bench.core import racing, schema, stats
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
    """One dataset's part of the report: the verdict first, then its footing."""

    dataset: str
    verdict: Verdict
    table: pd.DataFrame  # every configuration of every candidate
    reference: pd.DataFrame
    figures: list[Path] = field(default_factory=list)
    pairwise: pd.DataFrame = field(default_factory=pd.DataFrame)  # the verdict's family
    serving: list[str] = field(default_factory=list)  # the serving verdict
    serving_table: pd.DataFrame = field(default_factory=pd.DataFrame)
    metric: str = ""  # what the figures are (test, or validation also used for selection)
    study: select.Study | None = None


@dataclass
class Protocol:
    """How the report decides (``--compare``, ``--reference``, ``--margin``, ``--level``)."""

    compare: list[str] = field(default_factory=lambda: ["backbone"])
    reference: str | None = None
    margin: float = stats.MARGIN
    level: float = stats.LEVEL


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
    budgets: Budgets | None = None, protocol: Protocol | None = None,
) -> list[Section]:  # fmt: skip
    """Builds every dataset's section, drawing its figures into ``out/figures`` and writing
    its budget curves to ``out/tables``."""
    budgets, protocol = budgets or Budgets(), protocol or Protocol()
    found = []
    for dataset, comparison in comparisons.items():
        study = select.study(comparison, protocol.compare)
        decided = verdict.decide(study, protocol.level, protocol.margin, protocol.reference)
        section = Section(
            dataset, decided, _every_configuration(study), reference(loaded.runs, dataset),
            _figures(loaded, study, out), pairs.frame(decided.pairs, study.metric),
            metric=verdict.metric_name(study), study=study,
        )  # fmt: skip
        served = serving.serving(comparison)
        if served is not None:
            section.serving = serving.sentences(served, budgets.latency_ms, budgets.size_mb)
            section.serving_table = serving.display(served)
            if not served.exports.empty:
                section.figures.append(serving.fronts(served, dataset, out / "figures"))
        found.append(section)
    return found


def _figures(loaded: Loaded, study: select.Study, out: Path) -> list[Path]:
    """Training time, validation per epoch, accuracy against cost (the chosen configurations
    only: the test split reports what validation chose), memory and the budget curves."""
    table, dataset = study.comparison.table, study.dataset
    # Curves of completed runs only: a failed run's partial epochs are not part of a mean.
    history = loaded.history[
        (loaded.history["dataset"] == dataset) & (loaded.history["status"] == "completed")
    ]
    chosen = table.loc[[c.chosen.key for c in study.choices]]
    chosen.index = pd.Index([c.label for c in study.choices], name="candidate")
    names = study.names()
    labelled = table.set_axis(pd.Index([names[k] for k in table.index], name="group"))
    figures_dir = out / "figures"
    found = [
        plots.training_time(labelled, dataset, figures_dir),
        plots.accuracy_curves(history, list(table.index.names), dataset, figures_dir, names),
        plots.tradeoff(chosen, study.metric, dataset, figures_dir),
        plots.memory(labelled, dataset, figures_dir),
    ]
    curves = budget.curves(study)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    curves.to_csv(out / "tables" / f"budget_{dataset}.csv", index=False)
    if curves["n"].max() > 1:
        found.append(budget.plot(curves, dataset, figures_dir))
    return found


def _every_configuration(study: select.Study) -> pd.DataFrame:
    """Every configuration's figures, the chosen ones marked; test accuracy labelled as
    not used for selection (validation chose)."""
    table = study.comparison.table
    shown = tables.display(table).reset_index()
    chosen = {c.chosen.key for c in study.choices}
    shown.insert(0, "chosen", ["yes" if k in chosen else "" for k in table.index])
    return shown.rename(columns={"test_accuracy": "test_accuracy (not used for selection)"})


@dataclass
class Across:
    """The ranking over datasets (its sentence, ranks and critical-difference diagram), or
    the sentence saying why there is none."""

    sentence: str
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    figure: Path | None = None


def across(found: list[Section], out: Path) -> Across:
    """Ranks the candidates over the datasets when there are two or more (bench.analysis.ranks)."""
    studies = {section.dataset: section.study for section in found if section.study}
    ranking = ranks.rank(studies)
    if ranking is None:
        names = ", ".join(studies)
        why = (
            f"these runs cover one dataset ({names}), and ranks need two or more"
            if len(studies) < 2
            else f"fewer than two candidates ran on every dataset ({names})"
        )
        return Across(f"No ranking across datasets: {why}.")
    table = ranking.ranks.T.assign(**{"mean rank": ranking.ranks.mean()}).sort_values("mean rank")
    table = table.rename_axis("candidate").reset_index()
    return Across(ranking.sentence(), table, plots.critical_difference(ranking, out / "figures"))


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
            race = racing.RaceDocument.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as error:
            print(f"skipped race {path}: {error}", file=sys.stderr)
            continue
        found.append(RaceSection(path.stem, _race_outcome(race), _race_course(race)))
    return found


def _race_outcome(race: racing.RaceDocument) -> str:
    outcome, settings = race.outcome, race.settings
    head = outcome.winner or outcome.leading
    state = "won" if outcome.winner else "leads"
    saved = outcome.grid_runs - outcome.runs
    text = (
        f"{head} {state} on {race.metric}: {outcome.why}. {outcome.runs} runs of the "
        f"{outcome.grid_runs} a full grid of {settings['max_seeds']} seeds would train "
        f"({saved} saved), {outcome.training_hours:.2f} h of training."
    )
    for candidate, config in outcome.chosen.items():
        test = outcome.test_accuracy.get(candidate)
        score = "-" if test is None else f"{test:.3f}"
        text += (f" {candidate} chose {config} on validation: test accuracy {score} over "
                 f"{outcome.test_seeds.get(candidate, 0)} seeds.")  # fmt: skip
    for name, dropped in outcome.dropped.items():
        text += f" {name} dropped in round {dropped['round']}: {dropped['reason']}."
    return text


def _race_course(race: racing.RaceDocument) -> pd.DataFrame:
    rows = []
    for entry in race.rounds:
        for s in entry.standings:
            rows.append({
                "round": entry.round, "seeds": entry.seeds, "entrant": s.entrant,
                "mean": "-" if s.mean is None else f"{s.mean:.3f}",
                "95% CI": "-" if not s.interval else f"{s.interval[0]:.3f} to {s.interval[1]:.3f}",
                "completed": len(s.seeds), "failed": len(s.failed), "state": _course_state(s),
                "seeds each to settle": _settle(s),
            })  # fmt: skip
    return pd.DataFrame(rows)


def _course_state(s: racing.Standing) -> str:
    if s.state == "dropped":
        return f"dropped (round {s.dropped_at})"
    return "equivalent" if s.equivalent else s.state


def _settle(standing: racing.Standing) -> str:
    """An entrant still racing: about how many seeds each would tell the margin apart."""
    if standing.state == "dropped" or not standing.test or standing.equivalent:
        return "-"
    needed = standing.seeds_needed
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
    return _TEMPLATES.get_template("report.j2").render(
        html=html,
        inputs=_inputs(loaded),
        sections=found,
        across=overall,
        races=raced or [],
        failed=None if loaded.failed.empty else _failed(loaded),
        table=_html_table if html else _markdown_table,
        figure=_embedded if html else (lambda png: f"![{png.stem}]({png.relative_to(out)})"),
    )


def _markdown_table(frame: pd.DataFrame, kind: str = "") -> str:
    return frame.fillna("-").to_markdown(index=False) + "\n"


def _html_table(frame: pd.DataFrame, kind: str = "") -> str:
    return frame.to_html(index=False, classes=kind or None, na_rep="-")


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

    lines = {s.dataset: s.verdict.lines for s in found}
    return wandb_api.publish_report(args.wandb, args.group, lines)


def _options(parser) -> None:
    """The report's own options: how it decides, and the serving budgets."""
    parser.add_argument("--wandb-report", action="store_true", help="also build a W&B Report")
    parser.add_argument(
        "--compare", default="backbone",
        help="the candidates: config keys, comma-separated; every other key that varies is "
        "tuned on validation (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--reference", default=None,
        help="a candidate fixed in advance: compare every other one with it alone",
    )  # fmt: skip
    parser.add_argument(
        "--margin", type=float, default=stats.MARGIN * 100,
        help="the difference that matters, in accuracy points: pairs within it are "
        "'equivalent' when two one-sided tests show it (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--latency-budget-ms", type=float, default=Budgets.latency_ms,
        help="the serving verdict's batch-1 latency budget (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--size-budget-mb", type=float, default=Budgets.size_mb,
        help="the serving verdict's model-size budget (default: %(default)s)",
    )  # fmt: skip


def parser():
    """``python -m bench.report``'s options (the documentation is built from them)."""
    found = cli.arguments("python -m bench.report", __doc__.split("\n\n")[0], "results/report")
    _options(found)
    return found


def main(argv: list[str] | None = None) -> int:
    """Writes the tables, the figures, report.html and report.md; says where."""
    args = parser().parse_args(argv)
    if args.wandb_report and not (args.wandb and has_credentials()):  # before any work
        raise SystemExit("--wandb-report needs --wandb ENTITY/PROJECT and W&B credentials.")
    loaded = cli.load(args)
    cli.report_inputs(loaded)
    if not (loaded.runs["status"] == "completed").any():
        print(f"no completed runs in {args.wandb or args.runs}; nothing to report", file=sys.stderr)
        return 1
    out = Path(args.out)
    protocol = Protocol(cli.split(args.compare), args.reference, args.margin / 100)
    written = tables.write_tables(loaded, out / "tables", protocol.compare, cli.split(args.cols))
    comparisons = tables.comparisons(loaded.runs, protocol.compare)
    budgets = Budgets(args.latency_budget_ms, args.size_budget_mb)
    found = sections(loaded, comparisons, out, budgets, protocol)
    overall = across(found, out)
    raced = [] if args.wandb else races(args.runs)
    (out / "report.md").write_text(render(loaded, found, overall, out, False, raced))
    (out / "report.html").write_text(render(loaded, found, overall, out, True, raced))
    print(f"wrote {len(written)} tables to {out / 'tables'}")
    figures = sum(len(s.figures) for s in found) + (overall.figure is not None)
    print(f"wrote {figures} figures (PNG and SVG) to {out / 'figures'}")
    print(f"wrote {out / 'report.md'}\nwrote {out / 'report.html'}")
    for section in found:
        print(f"{section.dataset}: {section.verdict.headline}")
    if args.wandb_report:
        print(f"W&B report: {wandb_report(args, found)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
