"""The comparisons one dataset's verdict makes, decided as one family.

Candidates are compared at their own best (bench.analysis.select), on the reported metric of
the configurations validation chose, paired by seed. Three or more candidates are a block
design (bench.core.stats.blocks): each candidate's own noise is estimated from the residuals
of every candidate's seeds at once (a candidate that missed a seed still lends the others),
which gives each pair more degrees of freedom than its own paired t while a noisier
candidate widens mostly its own comparisons; two candidates get their paired t, and sides
sharing fewer than two seeds Welch's t. Every pair of candidates is tested and all of them
are adjusted together: the best is chosen from the data, so only a family that holds every
pair covers any statement about it (Hsu's comparisons with the best would also do). The
adjustment is Bergmann and Hommel's (1988) closed test over the sets of hypotheses that can
be true together (bench.core.stats.bergmann_hommel), as the race's drops are; it rejects
all that Holm's step-down with Shaffer's count does, and more. With a ``reference`` fixed in
advance the family is the reference against each other candidate, as Dunnett's is, and
Holm's own count applies: any of those hypotheses can be true together.

A pair not shown different is called equivalent only when the two one-sided tests put it
within the declared margin (Holm-adjusted over those pairs); otherwise it is not resolved,
with about how many seeds would tell a difference of the margin apart.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import pandas as pd

from bench.analysis.select import Study
from bench.core import stats

WORSE, BETTER, EQUIVALENT, OPEN, UNTESTED = (
    "worse", "better", "equivalent", "not resolved", "not tested",
)  # fmt: skip


@dataclass(frozen=True)
class Pair:
    """``a`` against ``b`` (candidate labels) and how sure the comparison is."""

    a: str
    b: str
    difference: stats.Difference
    improvement: stats.Improvement | None = None
    equivalence_p: float | None = None  # Holm-adjusted over the pairs not shown different
    alpha: float = 1 - stats.LEVEL  # the family's strictest step (its first)
    margin: float = stats.MARGIN

    @property
    def seeds_needed(self) -> int | None:
        """Seeds per side that would tell a difference of ``margin`` apart at this pair's
        spread, at the family's strictest step; None when resolved or beyond 50 (computed when
        asked: the calibration benchmark decides thousands of families without it)."""
        d = self.difference
        if not d.tested or d.significant:
            return None
        return stats.seeds_needed(d, self.alpha, self.margin)

    @property
    def resolved(self) -> bool:
        return self.difference.significant

    @property
    def equivalent(self) -> bool:
        level = self.difference.level
        return (
            not self.resolved
            and self.equivalence_p is not None
            and (self.equivalence_p < 1 - level)
        )

    def outcome(self) -> str:
        """What the comparison says of ``b`` against ``a``."""
        d = self.difference
        if not d.tested:
            return UNTESTED
        if self.resolved:
            return WORSE if d.value > 0 else BETTER
        return EQUIVALENT if self.equivalent else OPEN

    def flipped(self) -> Pair:
        """The same pair read from ``b``'s side."""
        better = self.improvement and stats.reversed_improvement(self.improvement)
        return replace(self, a=self.b, b=self.a, difference=stats.flipped(self.difference),
                       improvement=better)  # fmt: skip

    def winner_first(self) -> Pair:
        return self if self.difference.value >= 0 else self.flipped()


def leader(found: Study) -> str:
    """The candidate validation ranks first: the highest mean validation accuracy of its
    chosen configuration (the test split only reports)."""
    return max(found.choices, key=lambda c: c.chosen.mean_val).label


def family(
    found: Study, level: float = stats.LEVEL, margin: float = stats.MARGIN,
    reference: str | None = None,
) -> list[Pair]:  # fmt: skip
    """Every pair of candidates (or the reference against each other one), tested once and
    adjusted together; each not shown different is checked for equivalence."""
    labels = found.labels
    if reference is not None:
        wanted = [(reference, other) for other in labels if other != reference]
    else:
        wanted = list(itertools.combinations(labels, 2))
    groups = [found.scores(label) for label in labels]
    index = [(labels.index(a), labels.index(b)) for a, b in wanted]
    raw = stats.blocks(groups, index, level)
    tested = stats.holm(raw) if reference is not None else stats.bergmann_hommel(raw, index)
    size = max([d.family for d in tested if d.tested], default=1)
    alpha = (1 - level) / size  # the strictest step: the seeds needed at the worst
    open_p = [
        stats.equivalence(d, margin) if d.tested and not d.significant else None for d in tested
    ]
    equivalent = stats.holm_p(open_p)
    pairs = []
    for (a, b), d, eq in zip(wanted, tested, equivalent, strict=True):
        better = stats.probability_of_improvement(found.scores(a), found.scores(b), level)
        pairs.append(Pair(a, b, d, better, eq, alpha, margin))
    return pairs


def against(pairs: list[Pair], head: str) -> dict[str, Pair]:
    """Each other candidate's pair, read from ``head``'s side (``head`` minus it)."""
    found = {}
    for pair in pairs:
        if pair.a == head:
            found[pair.b] = pair
        elif pair.b == head:
            found[pair.a] = pair.flipped()
    return found


def frame(pairs: list[Pair], metric: str) -> pd.DataFrame:
    """The family as a table: one row per comparison."""
    rows = []
    for pair in pairs:
        d, better = pair.difference, pair.improvement
        rows.append({
            "comparison": f"{pair.a} vs {pair.b}",
            "metric": metric,
            "test": d.test or "not tested (single seed)",
            "seeds": d.pairs if d.test == stats.PAIRED else f"{d.n_a} and {d.n_b}",
            "means": f"{d.a:.3f} vs {d.b:.3f}",
            "difference (points)": f"{d.value * 100:+.1f}",
            "95% CI (points)": points_range(d.interval),
            "adjusted p": "-" if d.p_adjusted is None else f"{d.p_adjusted:.3f}",
            "P(A > B)": "-" if better is None else f"{better.probability:.2f}",
            "outcome": describe(pair),
        })  # fmt: skip
    return pd.DataFrame(rows)


def describe(pair: Pair) -> str:
    """``a beats b``, ``equivalent within +-1.0``, ``not resolved: about N seeds`` ..."""
    outcome = pair.outcome()
    if outcome in (WORSE, BETTER):
        first = pair.winner_first()
        return f"{first.a} beats {first.b}"
    if outcome == EQUIVALENT:
        return f"equivalent within ±{pair.margin * 100:.1f}"
    if outcome == OPEN:
        return f"not resolved: {seeds_phrase(pair.seeds_needed)}"
    return UNTESTED


def seeds_phrase(needed: int | None) -> str:
    """``about 12 seeds`` or ``more than 50 seeds``."""
    return f"about {needed} seeds" if needed else f"more than {stats.MAX_SEEDS} seeds"


def points_range(bounds) -> str:
    return "-" if bounds is None else f"[{bounds[0] * 100:+.1f}, {bounds[1] * 100:+.1f}]"
