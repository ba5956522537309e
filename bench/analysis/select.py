"""Each candidate at its own best: train fits, validation selects, test reports.

The axes of a study have roles. **Candidates** are what it compares (``--compare``,
``backbone`` by default). **Blocks** are the dataset and the seed. **Tuning** is every
other key that varies within a candidate (learning rate, optimizer, head, ...). For each
candidate on each dataset, its configuration is the tuning configuration with the highest
mean validation accuracy over its seeds (``final_val_accuracy``: the weights that are
tested), and the test split is read for what validation chose, as Kornblith, Shlens and
Le (2019) and VTAB do. A tuned candidate's score per seed is cross-fitted: the test
accuracy, on that seed, of the configuration the other seeds chose (bench.core.choose), so
the luck of the runs that won on validation does not carry into what is reported.

A run stopped as diverged is a result, at chance accuracy (one over the classes), for
its configuration; an interrupted or out-of-memory run is a missing seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from bench.analysis.tables import REPORT, SELECT, Comparison
from bench.core import choose

AS_CONFIGURED = "as configured"  # the label of a candidate's only configuration


@dataclass(frozen=True)
class Setting:
    """One tuning configuration of one candidate, and what its seeds scored."""

    candidate: str
    label: str  # "optimizer.lr=0.003", or "as configured"
    key: object  # its row of the comparison table
    val: dict[int, float]  # seed -> final validation accuracy (diverged: chance)
    test: dict[int, float]  # seed -> test accuracy (empty without a test split)
    hours: dict[int, float]  # seed -> training hours
    diverged: frozenset[int] = frozenset()

    @property
    def runs(self) -> int:
        return len(self.val)

    @property
    def mean_val(self) -> float:
        return sum(self.val.values()) / len(self.val) if self.val else float("-inf")

    @property
    def failure_rate(self) -> float:
        return len(self.diverged) / self.runs if self.runs else 0.0


@dataclass(frozen=True)
class Choice:
    """One candidate: every configuration it tried and the one validation chose."""

    label: str
    settings: tuple[Setting, ...]
    chosen: Setting

    @property
    def trials(self) -> int:
        """Completed runs (diverged included): configurations x seeds."""
        return sum(s.runs for s in self.settings)

    @property
    def hours(self) -> float:
        return sum(sum(s.hours.values()) for s in self.settings)

    def space(self) -> frozenset[str]:
        return frozenset(s.label for s in self.settings)


@dataclass
class Study:
    """One dataset's candidates, each at its own best."""

    dataset: str
    compare: list[str]
    tuning: list[str]
    choices: list[Choice]
    metric: str = REPORT  # what is reported: test accuracy, or validation when asked for no test
    test_examples: int | None = None
    num_classes: int | None = None
    comparison: Comparison | None = field(default=None, repr=False)

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.choices]

    def choice(self, label: str) -> Choice:
        """The candidate called ``label``."""
        return next(c for c in self.choices if c.label == label)

    def scores(self, label: str) -> dict[int, float]:
        """The reported metric per seed: cross-fitted when the candidate was tuned (each
        seed scored by the configuration the other seeds' validation chose, so no reported
        number comes from a run that chose it; bench.core.choose), else its own."""
        choice = self.choice(label)
        reported = {s.label: (s.test if self.metric == REPORT else s.val) for s in choice.settings}
        if len(choice.settings) > 1:
            fitted = choose.crossfit({s.label: s.val for s in choice.settings}, reported)
            if fitted:
                return {seed: score for seed, (_, score) in fitted.items()}
        return reported[choice.chosen.label]

    def names(self) -> dict:
        """One label per group of runs, the same in every text, table and figure: the
        candidate, and its configuration when it tried several."""
        found = {}
        for choice in self.choices:
            for setting in choice.settings:
                tuned = len(choice.settings) > 1
                found[setting.key] = f"{choice.label} {setting.label}" if tuned else choice.label
        return found

    def crossfitted(self, label: str) -> bool:
        """Whether the candidate's scores are cross-fitted (tuned, two or more seeds)."""
        choice = self.choice(label)
        return len(choice.settings) > 1 and len(choice.chosen.val) > 1

    @property
    def tuned(self) -> bool:
        return any(len(c.settings) > 1 for c in self.choices)

    @property
    def without_test(self) -> bool:
        return self.metric != REPORT


def study(comparison: Comparison, compare: list[str]) -> Study:
    """Each candidate of one dataset at the configuration validation chose."""
    table = comparison.table
    names = list(table.index.names)
    frame = table.index.to_frame(index=False)
    tuning = [n for n in names if n not in compare and _varies_within(frame, compare, n)]
    grouped: dict[str, list[Setting]] = {}
    for position, key in enumerate(table.index):
        row = frame.iloc[position]
        candidate = " / ".join(str(row[k]) for k in compare if k in row)
        label = ", ".join(f"{k}={row[k]}" for k in tuning) or AS_CONFIGURED
        grouped.setdefault(candidate, []).append(_setting(comparison, key, candidate, label))
    choices = [
        Choice(name, tuple(found), max(found, key=lambda s: s.mean_val))
        for name, found in grouped.items()
    ]
    runs = pd.concat(list(comparison.members.values()))
    has_test = REPORT in runs and runs[REPORT].notna().any()
    return Study(
        comparison.dataset, list(compare), tuning, choices, REPORT if has_test else SELECT,
        _first_int(runs, "splits.test.examples"), _first_int(runs, "dataset.num_classes"),
        comparison,
    )  # fmt: skip


def _varies_within(frame: pd.DataFrame, compare: list[str], name: str) -> bool:
    """Whether ``name`` takes two values within one candidate (a tuning key), rather than
    one per candidate (a descriptor, such as each backbone's native resolution)."""
    keys = [k for k in compare if k in frame]
    if not keys:
        return frame[name].nunique() > 1
    return bool((frame.groupby(keys, dropna=False)[name].nunique() > 1).any())


def _setting(comparison: Comparison, key, candidate: str, label: str) -> Setting:
    runs = comparison.members[key]
    diverged = runs.loc[runs["diverged"] == 1, "seed"] if "diverged" in runs else []
    hours = comparison.seeds("train_time_s", key) if "train_time_s" in runs else {}
    return Setting(
        candidate, label, key, comparison.seeds(SELECT, key),
        comparison.seeds(REPORT, key) if REPORT in runs else {},
        {seed: value / 3600 for seed, value in hours.items()},
        frozenset(int(s) for s in diverged),
    )  # fmt: skip


def _first_int(runs: pd.DataFrame, column: str) -> int | None:
    if column not in runs:
        return None
    found = pd.to_numeric(runs[column], errors="coerce").dropna()
    return int(found.iloc[0]) if not found.empty else None


def shared_budget(found: Study) -> Study | None:
    """The same study restricted to the configurations and seeds every candidate ran, when
    their search spaces or trial counts differ and they share a configuration; else None."""
    spaces = [c.space() for c in found.choices]
    trials = {c.trials for c in found.choices}
    if len(set(spaces)) == 1 and len(trials) == 1:
        return None
    common = frozenset.intersection(*spaces)
    if not common:
        return None
    seeds = set.intersection(*(set(s.val) for c in found.choices for s in c.settings))
    choices = []
    for choice in found.choices:
        kept = tuple(_only(s, seeds) for s in choice.settings if s.label in common)
        kept = tuple(s for s in kept if s.runs)
        if not kept:
            return None
        choices.append(Choice(choice.label, kept, max(kept, key=lambda s: s.mean_val)))
    return Study(found.dataset, found.compare, found.tuning, choices, found.metric,
                 found.test_examples, found.num_classes, found.comparison)  # fmt: skip


def _only(setting: Setting, seeds: set[int]) -> Setting:
    def keep(values: dict) -> dict:
        return {s: v for s, v in values.items() if s in seeds}

    return Setting(setting.candidate, setting.label, setting.key, keep(setting.val),
                   keep(setting.test), keep(setting.hours),
                   frozenset(setting.diverged & seeds))  # fmt: skip
