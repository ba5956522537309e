"""Which backbones the data separates across datasets: mean ranks, Friedman's test and
Nemenyi's critical difference (Demšar 2006).

On each dataset every group is ranked by its mean primary metric (1 = best, ties share
the mean rank). A group is matched across datasets by its keys other than the image
size (which follows the backbone) and the dataset; only groups present on every dataset
are ranked. Friedman's test asks whether the mean ranks differ at all (Wilcoxon's
signed-rank test for two groups); only when it says they do does Nemenyi's critical
difference name the pairs it separates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from bench.analysis.pairs import primary_metric
from bench.analysis.tables import Comparison

LEVEL = 0.95


@dataclass
class Ranking:
    """The groups' ranks over the datasets and what the tests make of them."""

    scores: pd.DataFrame  # datasets x groups: each group's mean primary metric
    ranks: pd.DataFrame  # the same, as ranks (1 = best)
    test: str
    statistic: float | None
    p: float | None
    cd: float  # Nemenyi's critical difference, in ranks
    separated: list[tuple[str, str]] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # groups missing on some dataset

    @property
    def mean_ranks(self) -> pd.Series:
        return self.ranks.mean().sort_values()

    def sentence(self) -> str:
        """One sentence: the mean ranks, the test, and which groups the data separates."""
        datasets = list(self.scores.index)
        ranked = ", ".join(f"{name} {rank:.2f}" for name, rank in self.mean_ranks.items())
        found = f"{self.test} p = {self.p:.3f}" if self.p is not None else f"no {self.test}"
        if self.separated:
            pairs = "; ".join(f"{a} from {b}" for a, b in self.separated)
            what = f"the data separates {pairs} (Nemenyi's critical difference {self.cd:.2f} ranks)"
        elif self.p is not None and self.p < 1 - LEVEL:
            what = (
                f"the ranks differ, but no pair by more than Nemenyi's critical difference "
                f"({self.cd:.2f} ranks)"
            )
        else:
            what = (
                "the data separates none of them (a pair would need mean ranks "
                f"{self.cd:.2f} apart)"
            )
        return (
            f"Across {len(datasets)} datasets ({', '.join(datasets)}), mean ranks (1 = best): "
            f"{ranked}. {found}: {what}."
        )


def _entities(comparisons: dict[str, Comparison]) -> tuple[list[str], dict]:
    names = []
    for found in comparisons.values():
        names += [n for n in found.table.index.names if n != "image_size"]
    names = list(dict.fromkeys(names))
    scores: dict[str, dict[str, float]] = {}
    for dataset, found in comparisons.items():
        metric = primary_metric(found.table)
        means = found.table[(metric, "mean")]
        scores[dataset] = {
            " / ".join(str(found.members[key][n].iloc[0]) for n in names): float(means[key])
            for key in found.table.index
        }
    return names, scores


def rank(comparisons: dict[str, Comparison], level: float = LEVEL) -> Ranking | None:
    """The ranking over two or more datasets; None for fewer, or fewer than two groups
    present on all of them."""
    if len(comparisons) < 2:
        return None
    _, scores = _entities(comparisons)
    common = set.intersection(*(set(s) for s in scores.values()))
    every = sorted(set().union(*(set(s) for s in scores.values())))
    if len(common) < 2:
        return None
    groups = sorted(common)
    frame = pd.DataFrame({g: [scores[d][g] for d in scores] for g in groups}, index=list(scores))
    ranks = frame.apply(lambda row: pd.Series(stats.rankdata(-row.to_numpy()), index=row.index),
                        axis=1)  # fmt: skip
    k, n = len(groups), len(frame)
    if k >= 3:
        statistic, p = stats.friedmanchisquare(*(frame[g].to_numpy() for g in groups))
        test = "Friedman"
    else:
        diffs = frame[groups[0]] - frame[groups[1]]
        statistic, p = (None, None) if (diffs == 0).all() else stats.wilcoxon(diffs)
        test = "Wilcoxon signed-rank"
    q = stats.studentized_range.ppf(level, k, np.inf) / math.sqrt(2)
    cd = float(q * math.sqrt(k * (k + 1) / (6 * n)))
    means = ranks.mean()
    separated = []
    if p is not None and p < 1 - level:
        ordered = list(means.sort_values().index)
        separated = [
            (a, b) for i, a in enumerate(ordered) for b in ordered[i + 1 :]
            if means[b] - means[a] > cd
        ]  # fmt: skip
    return Ranking(
        frame, ranks, test, None if statistic is None else float(statistic),
        None if p is None else float(p), cd, separated, [g for g in every if g not in common],
    )  # fmt: skip
