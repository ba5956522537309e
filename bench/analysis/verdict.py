"""One dataset's verdict: a headline that says what to use and how sure that is, one table
with a row per candidate, and the footing in a few lines under it.

Candidates are compared at their own best (bench.analysis.select): validation chooses each
one's configuration and names the leader; the test split reports. Every pair is one family
under Bergmann and Hommel's closed test (bench.analysis.pairs); a pair not shown different
is "equivalent" only when two one-sided tests put it within the margin, and otherwise "not
resolved", with about how many seeds would tell a difference of the margin apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from bench.analysis import budget, pairs
from bench.analysis.pairs import Pair
from bench.analysis.select import AS_CONFIGURED, Study, shared_budget
from bench.core import stats

METRIC_NAMES = {"test_accuracy": "test accuracy", "final_val_accuracy": "validation accuracy"}
NO_TEST = "validation, also used for selection"


@dataclass
class Verdict:
    """What one dataset's comparison decides."""

    headline: str
    table: pd.DataFrame  # one row per candidate
    notes: list[str] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    leader: str = ""

    @property
    def lines(self) -> list[str]:
        """The headline and the notes, for text outputs (W&B, the console)."""
        return [self.headline, *self.notes]


def metric_name(found: Study) -> str:
    """What the figures are: test accuracy, or validation accuracy also used for selection."""
    name = METRIC_NAMES.get(found.metric, found.metric)
    return f"{name} ({NO_TEST})" if found.without_test else name


def decide(
    found: Study, level: float = stats.LEVEL, margin: float = stats.MARGIN,
    reference: str | None = None,
) -> Verdict:  # fmt: skip
    """The verdict of one dataset's study."""
    stated = pairs.family(found, level, margin, reference)
    head = reference or pairs.leader(found)
    rows = pairs.against(stated, head)
    return Verdict(
        headline(found, head, rows, margin, reference is not None),
        glance(found, head, rows),
        notes(found, stated, level, margin),
        stated,
        head,
    )


def _mean(values: dict[int, float]) -> float:
    return sum(values.values()) / len(values)


def _interval(values: dict[int, float]) -> str:
    v = list(values.values())
    if len(v) < 2:
        return f"{_mean(values):.3f} (one seed)"
    sd = math.sqrt(sum((x - _mean(values)) ** 2 for x in v) / (len(v) - 1))
    low, high = stats.mean_interval(_mean(values), sd, len(v))
    return f"{_mean(values):.3f} [{low:.3f}, {high:.3f}]"


def _names(labels: list[str]) -> str:
    if len(labels) <= 3:
        return " and ".join([", ".join(labels[:-1]), labels[-1]] if len(labels) > 1 else labels)
    return f"{', '.join(labels[:2])} and {len(labels) - 2} others"


def headline(
    found: Study, head: str, rows: dict[str, Pair], margin: float, fixed: bool
) -> str:  # fmt: skip
    """At most two sentences: what to use and how sure that is, or what would settle it."""
    scores, what = found.scores(head), metric_name(found).split(" (")[0]
    if not rows:
        return (f"Only {head} ran on {found.dataset} ({what} {_interval(scores)}): there is "
                "nothing to compare it with.")  # fmt: skip
    by = {o: [b for b, p in rows.items() if p.outcome() == o] for o in
          (pairs.WORSE, pairs.BETTER, pairs.EQUIVALENT, pairs.OPEN, pairs.UNTESTED)}  # fmt: skip
    chose = "the reference" if fixed else "validation's choice"
    if len(by[pairs.UNTESTED]) == len(rows):
        return (f"{head} is {chose} ({what} {_mean(scores):.3f}), but one seed each cannot say "
                "how sure that is: rerun with seed=1,2,3.")  # fmt: skip
    if by[pairs.BETTER]:
        return (f"Validation chose {head}, but {_names(by[pairs.BETTER])} scored higher on test: "
                "look at both before choosing.")  # fmt: skip
    first = f"{head} ({what} {_interval(scores)})"
    beats = f" beats {_names(by[pairs.WORSE])}" if by[pairs.WORSE] else ""
    same = f"is within ±{margin * 100:.1f} points of {_names(by[pairs.EQUIVALENT])}"
    if not by[pairs.OPEN]:
        joined = " and ".join(p for p in (beats.strip(), same if by[pairs.EQUIVALENT] else "") if p)
        return f"Use {first}: it {joined}."
    needed = max((rows[b].seeds_needed or stats.MAX_SEEDS + 1) for b in by[pairs.OPEN])
    seeds = pairs.seeds_phrase(needed if needed <= stats.MAX_SEEDS else None)
    lead = f"{first} leads" + (f" and{beats}" if beats else "")
    return (f"{lead}; against {_names(by[pairs.OPEN])} it is not resolved: {seeds} each "
            f"would tell a {margin * 100:.1f}-point difference.")  # fmt: skip


def glance(found: Study, head: str, rows: dict[str, Pair]) -> pd.DataFrame:
    """One row per candidate: its configuration, score, difference from ``head`` and the
    decision, training time and, when served, size and latency."""
    table = found.comparison.table if found.comparison is not None else None
    noise = test_noise(found)
    order = sorted(found.choices, key=lambda c: -_mean(found.scores(c.label)))
    out = []
    for choice in order:
        pair, chosen = rows.get(choice.label), choice.chosen
        row = {
            "candidate": choice.label,
            "configuration": _configuration(choice),
            metric_name(found).split(" (")[0]: _interval(found.scores(choice.label)),
            f"vs {head} (points)": _versus(pair),
            "adjusted p": "-" if pair is None or pair.difference.p_adjusted is None
            else f"{pair.difference.p_adjusted:.3f}",
            f"P({head} > it)": "-" if pair is None or pair.improvement is None
            else f"{pair.improvement.probability:.2f}",
            "decision": _decision(choice.label == head, pair, noise),
            "failed": f"{len(chosen.diverged)} of {chosen.runs}",
        }  # fmt: skip
        row.update(_costs(table, chosen.key))
        out.append(row)
    return pd.DataFrame(out)


def _configuration(choice) -> str:
    label = choice.chosen.label
    if len(choice.settings) == 1:
        return label if label != AS_CONFIGURED else "-"
    return f"{label} (best of {len(choice.settings)})"


def _versus(pair: Pair | None) -> str:
    if pair is None:
        return "-"
    d = pair.difference
    # The row's candidate minus the head: negative when it trails.
    value = f"{-d.value * 100:+.1f}"
    if d.interval is None:
        return value
    return f"{value} {pairs.points_range((-d.interval[1], -d.interval[0]))}"


def _decision(is_head: bool, pair: Pair | None, noise: float | None) -> str:
    if is_head:
        return "chosen"
    text = pairs.describe(pair) if pair is not None else "-"
    if pair is not None and pair.outcome() in (pairs.WORSE, pairs.BETTER):
        text = pair.outcome()
    if noise and pair is not None and abs(pair.difference.value) < noise:
        text += "; within test noise"
    return text


def _costs(table, key) -> dict[str, str]:
    """Training time per run and, when served, the int8 export's size and latency."""
    if table is None:
        return {}
    cells = {}
    columns = table.columns.get_level_values(0)
    for metric, name, fmt in (
        ("train_time_s", "train s", "{:.0f}"),
        ("serving.int8.size_bytes", "int8 MB", "{:.2f}"),
        ("serving.int8.p50_ms", "int8 ms", "{:.2f}"),
    ):  # fmt: skip
        if metric in columns:
            value = table.loc[key, (metric, "mean")]
            scale = 1e6 if metric.endswith("size_bytes") else 1.0
            cells[name] = "-" if pd.isna(value) else fmt.format(value / scale)
    return cells


def test_noise(found: Study) -> float | None:
    """The binomial standard error of an accuracy on the test split, at the candidates'
    mean accuracy: differences smaller than it are within the test set's own noise."""
    if found.without_test or not found.test_examples:
        return None
    scores = [v for c in found.choices for v in found.scores(c.label).values()]
    p = sum(scores) / len(scores) if scores else 0.5
    return math.sqrt(p * (1 - p) / found.test_examples)


def notes(found: Study, stated: list[Pair], level: float, margin: float) -> list[str]:
    """The footing: how configurations were chosen, budgets, the family, the test set's
    noise, and what a single seed cannot say."""
    found_notes = [_tuning(found)] if found.tuned else []
    found_notes += _budgets(found, level, margin)
    curve = budget.leads(budget.curves(found)) if found.tuned else None
    found_notes += [curve] if curve else []
    tested = [p.difference for p in stated if p.difference.tested]
    size = max([d.family for d in tested], default=0)
    if size:
        found_notes.append(
            f"Compared on {metric_name(found)}, paired by seed; adjusted over {size} "
            f"comparison{'s' * (size > 1)} at {level:.0%} by {tested[0].adjusted_by}; "
            f"equivalence by two one-sided tests within ±{margin * 100:.1f} points."
        )
    noise = test_noise(found)
    if noise:
        found_notes.append(
            f"The test split holds {found.test_examples} images: an accuracy there has a "
            f"standard error of about {noise * 100:.1f} points, which no seed count removes."
        )
    if found.without_test:
        found_notes.append(
            "This dataset ran without a test split (dataset.test_fraction=0): every figure is "
            f"{NO_TEST}, and reads high."
        )
    return found_notes


def _tuning(found: Study) -> str:
    parts = [
        f"{c.label} {c.chosen.label} (best of {len(c.settings)}, {c.trials} runs)"
        for c in found.choices
    ]
    return (
        "Each candidate at its own best on validation (final_val_accuracy), then read on "
        f"{METRIC_NAMES.get(found.metric, found.metric)}: " + "; ".join(parts) + "."
    )


def _budgets(found: Study, level: float, margin: float) -> list[str]:
    spaces = {c.label: (len(c.settings), c.trials) for c in found.choices}
    if len(set(spaces.values())) <= 1 and len({c.space() for c in found.choices}) <= 1:
        return []
    tried = "; ".join(f"{k} {n} configuration{'s' * (n > 1)}, {t} runs"
                      for k, (n, t) in spaces.items())  # fmt: skip
    text = f"Budgets differ ({tried})."
    shared = shared_budget(found)
    if shared is None:
        return [text + " They share no configuration; the budget curves compare them per trial."]
    common = ", ".join(sorted(s.label for s in shared.choices[0].settings))
    again = decide(shared, level, margin)
    return [f"{text} At the budget they share ({common}): {again.headline}"]
