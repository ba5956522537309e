"""Which candidates the data separates across datasets: mean ranks, Friedman's test in
Iman and Davenport's F form, and Nemenyi's critical difference (Demšar 2006).

On each dataset every candidate, at its own best (bench.analysis.select), is ranked by the
mean test accuracy of its chosen configuration (1 = best, ties share the mean rank): one
metric for every dataset. Only candidates present on every dataset are ranked. Iman and
Davenport's F asks whether the mean ranks differ at all (Demšar recommends it over
Friedman's chi-square, which is conservative with few datasets); Wilcoxon's signed-rank
test does for two candidates. Only when it says they do does Nemenyi's critical difference
name the pairs it separates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from bench.analysis.select import Study

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


def _scores(studies: dict[str, Study]) -> dict[str, dict[str, float]]:
    """Per dataset, each candidate's mean test accuracy at its chosen configuration (a
    dataset without a test split ranks on validation; the sentence says so)."""
    return {
        dataset: {c.label: float(np.mean(list(study.scores(c.label).values())))
                  for c in study.choices if study.scores(c.label)}
        for dataset, study in studies.items()
    }  # fmt: skip


def iman_davenport(ranks: np.ndarray) -> tuple[float, float]:
    """Iman and Davenport's F from a datasets x candidates table of ranks, and its p-value.

    F = (N - 1) chi2_F / (N (k - 1) - chi2_F), with (k - 1) and (k - 1)(N - 1) degrees of
    freedom, where chi2_F is Friedman's statistic (Demšar 2006, section 3.2.2).
    """
    n, k = ranks.shape
    means = ranks.mean(axis=0)
    chi2 = 12 * n / (k * (k + 1)) * (float((means**2).sum()) - k * (k + 1) ** 2 / 4)
    denominator = n * (k - 1) - chi2
    if denominator <= 0:  # every dataset ranks the candidates alike
        return float("inf"), 0.0
    f = (n - 1) * chi2 / denominator
    return f, float(stats.f.sf(f, k - 1, (k - 1) * (n - 1)))


def rank(studies: dict[str, Study], level: float = LEVEL) -> Ranking | None:
    """The ranking over two or more datasets; None for fewer, or fewer than two candidates
    present on all of them."""
    if len(studies) < 2:
        return None
    scores = _scores(studies)
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
        statistic, p = iman_davenport(ranks.to_numpy())
        test = "Iman-Davenport F"
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
