"""How sure a comparison is, for seeds of trained models (numpy and scipy only: the verdict
and the race both decide with it).

Two groups of runs that share seeds share their luck (shuffle order, augmentation, the
head's initial weights), so their seed-matched differences are the sharpest evidence: the
paired t interval of the mean difference, with five or more pairs also a bootstrap one.
Groups without two shared seeds fall back to Welch's t on all their runs. The statements
one verdict (or one race round) makes at once are a family: Holm's method controls the
chance that any of them is wrong. P(A > B) over the pairs is a second reading (rliable,
Agarwal et al. 2021), and :func:`seeds_needed` says how many seeds would settle a
difference that is not yet resolved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

LEVEL = 0.95
MAX_SEEDS = 50  # beyond this many seeds per side a difference is practically a tie
BOOTSTRAP_FROM = 5  # pairs; fewer give a bootstrap too coarse to report
BOOTSTRAP_RESAMPLES = 4999
POWER = 0.8

PAIRED = "paired t"
WELCH = "Welch's t"
BLOCKS = "block t"  # paired by seed, the seed noise pooled over every group (a race's)


def mean_interval(mean: float, std: float, count: int, level: float = LEVEL):
    """The t interval of a mean over ``count`` runs; None for a single run."""
    if count < 2 or math.isnan(std):
        return None
    half = float(stats.t.ppf(0.5 + level / 2, count - 1)) * std / math.sqrt(count)
    return mean - half, mean + half


@dataclass(frozen=True)
class Difference:
    """``a`` minus ``b`` on one metric, and how sure it is.

    ``test`` is ``paired t`` (over ``pairs`` seeds both sides ran), ``Welch's t`` (on all
    ``n_a`` and ``n_b`` runs) or None (a side with a single run: not tested). ``p`` is the
    two-sided p-value of the test, ``p_adjusted`` the same after Holm's method over the
    ``family`` of comparisons made together (1 until :func:`holm` adjusts it).
    """

    a: float  # each group's mean over all its runs
    b: float
    n_a: int
    n_b: int
    estimate: float = 0.0  # the difference the test is about (paired: the mean difference)
    pairs: int = 0
    test: str | None = None
    interval: tuple[float, float] | None = None
    p: float | None = None
    bootstrap: tuple[float, float] | None = None
    spread: float | None = None  # the sd of the paired differences, or Welch's pooled sd
    p_adjusted: float | None = None
    family: int = 1
    level: float = LEVEL

    @property
    def value(self) -> float:
        return self.estimate

    @property
    def tested(self) -> bool:
        return self.test is not None

    @property
    def significant(self) -> bool:
        """Resolved: the (Holm-adjusted) p-value is below 1 - level."""
        p = self.p_adjusted if self.p_adjusted is not None else self.p
        return self.tested and p is not None and p < 1 - self.level


def compare(
    a: Mapping[int, float], b: Mapping[int, float], level: float = LEVEL, seed: int = 0
) -> Difference:
    """Group ``a`` minus group ``b``, each given as ``{seed: value}``.

    Paired on the seeds both have when there are two or more; else Welch's t on all runs
    when each side has two or more; else untested.
    """
    va, vb = _values(a), _values(b)
    mean_a, mean_b = float(np.mean(va)), float(np.mean(vb))
    shared = sorted(set(a) & set(b))
    base = Difference(mean_a, mean_b, len(va), len(vb), mean_a - mean_b, len(shared), level=level)
    if len(shared) >= 2:
        d = np.array([a[s] - b[s] for s in shared], dtype=float)
        return _paired(base, d, level, seed)
    if min(len(va), len(vb)) >= 2:
        return _welch(base, va, vb, level)
    return base


def against(
    groups: Sequence[Mapping[int, float]], best: int, level: float = LEVEL
) -> list[Difference]:
    """``groups[best]`` minus each other group, seeds as blocks: a two-way layout (group by
    seed, additive) on the seeds every group ran, whose residual variance, pooled over all
    the groups with (k - 1)(n - 1) degrees of freedom, is the noise of every difference.

    Three or more groups over two or more shared seeds give each difference its share of
    one estimate of the seed noise, where a paired t has n - 1 degrees of freedom of its
    own: 8 instead of 2 for five groups of three seeds. The price is the assumption that
    the noise is alike across groups; a group much noisier than the rest widens every
    interval. Otherwise each difference is :func:`compare`'s.
    """
    shared = sorted(set.intersection(*(set(g) for g in groups)))
    if len(groups) < 3 or len(shared) < 2:
        return [compare(groups[best], g, level) for i, g in enumerate(groups) if i != best]
    x = np.array([[g[s] for s in shared] for g in groups], dtype=float)
    k, n = x.shape
    residual = x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + x.mean()
    df = (k - 1) * (n - 1)
    sd = math.sqrt(float((residual**2).sum()) / df * 2)  # of one seed's difference
    se = sd / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + level / 2, df)) * se
    found = []
    for i, g in enumerate(groups):
        if i == best:
            continue
        a, b = _values(groups[best]), _values(g)
        d = float((x[best] - x[i]).mean())
        p = float(2 * stats.t.sf(abs(d / se), df)) if se else (0.0 if d else 1.0)
        found.append(Difference(
            float(a.mean()), float(b.mean()), len(a), len(b), d, n, BLOCKS,
            (d - half, d + half), p, spread=sd, level=level,
        ))  # fmt: skip
    return found


def _values(group: Mapping[int, float]) -> np.ndarray:
    return np.array([group[s] for s in sorted(group)], dtype=float)


def _paired(base: Difference, d: np.ndarray, level: float, seed: int) -> Difference:
    n, mean, sd = len(d), float(d.mean()), float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    if se == 0:
        interval, p = (mean, mean), (0.0 if mean != 0 else 1.0)
    else:
        half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se
        interval = (mean - half, mean + half)
        p = float(2 * stats.t.sf(abs(mean / se), n - 1))
    boot = None
    if n >= BOOTSTRAP_FROM and sd > 0:
        result = stats.bootstrap(
            (d,), np.mean, confidence_level=level, n_resamples=BOOTSTRAP_RESAMPLES,
            random_state=np.random.default_rng(seed),
        )  # fmt: skip
        ci = result.confidence_interval
        boot = (float(ci.low), float(ci.high))
    return replace(base, estimate=mean, test=PAIRED, interval=interval, p=p, bootstrap=boot,
                   spread=sd)  # fmt: skip


def _welch(base: Difference, va: np.ndarray, vb: np.ndarray, level: float) -> Difference:
    var_a, var_b = float(va.var(ddof=1)) / len(va), float(vb.var(ddof=1)) / len(vb)
    diff, se = base.estimate, math.sqrt(var_a + var_b)
    spread = math.sqrt((float(va.var(ddof=1)) + float(vb.var(ddof=1))) / 2)
    if se == 0:
        return replace(base, test=WELCH, interval=(diff, diff), p=0.0 if diff else 1.0,
                       spread=spread)  # fmt: skip
    df = (var_a + var_b) ** 2 / (var_a**2 / (len(va) - 1) + var_b**2 / (len(vb) - 1))
    half = float(stats.t.ppf(0.5 + level / 2, df)) * se
    p = float(2 * stats.t.sf(abs(diff / se), df))
    return replace(base, test=WELCH, interval=(diff - half, diff + half), p=p, spread=spread)


def holm(found: Sequence[Difference]) -> list[Difference]:
    """The same comparisons with Holm-adjusted p-values over the family of the tested ones.

    Step-down: the i-th smallest of m p-values is multiplied by (m - i + 1), and each
    adjusted value is at least the one before it, capped at 1.
    """
    tested = [i for i, d in enumerate(found) if d.tested]
    m = len(tested)
    out = list(found)
    running = 0.0
    for rank, i in enumerate(sorted(tested, key=lambda i: found[i].p)):
        running = max(running, min(1.0, (m - rank) * found[i].p))
        out[i] = replace(found[i], p_adjusted=running, family=m)
    return out


def wilson(successes: float, n: int, level: float = LEVEL) -> tuple[float, float]:
    """The Wilson score interval of a proportion (sound for a handful of trials, where a
    bootstrap of a proportion collapses to a point once every trial agrees)."""
    if n == 0:
        return 0.0, 1.0
    z = float(stats.norm.ppf(0.5 + level / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Improvement:
    """P(A > B) over seed-matched pairs (a tie counts half), with its interval."""

    probability: float
    pairs: int
    interval: tuple[float, float]


def probability_of_improvement(
    a: Mapping[int, float], b: Mapping[int, float], level: float = LEVEL
) -> Improvement | None:
    """How often ``a`` beats ``b`` on the seeds both ran; None without a shared seed."""
    shared = sorted(set(a) & set(b))
    if not shared:
        return None
    wins = sum(1.0 if a[s] > b[s] else 0.5 if a[s] == b[s] else 0.0 for s in shared)
    return Improvement(wins / len(shared), len(shared), wilson(wins, len(shared), level))


def seeds_needed(found: Difference, alpha: float | None = None) -> int | None:
    """About how many seeds per side would resolve ``found``'s difference at its spread
    with 80% power (two-sided, at ``alpha``, default 1 - level); None beyond
    :data:`MAX_SEEDS` (practically a tie) or when there is no spread to go by.

    Paired: a one-sample t test of the mean difference; Welch: two samples of n each with
    the pooled spread.
    """
    alpha = (1 - found.level) if alpha is None else alpha
    effect, spread = abs(found.value), found.spread
    if not found.tested or not spread or effect == 0:
        return None
    for n in range(2, MAX_SEEDS + 1):
        if found.test in (PAIRED, BLOCKS):  # a block t's own degrees of freedom: fewer
            df, noncentral = n - 1, effect / (spread / math.sqrt(n))
        else:
            df, noncentral = 2 * n - 2, effect / (spread * math.sqrt(2 / n))
        critical = stats.t.ppf(1 - alpha / 2, df)
        power = stats.nct.sf(critical, df, noncentral) + stats.nct.cdf(-critical, df, noncentral)
        if power >= POWER:
            return n
    return None


def flipped(found: Difference) -> Difference:
    """``b`` minus ``a``: the same test read the other way round."""
    low, high = found.interval or (0.0, 0.0)
    boot = found.bootstrap and (-found.bootstrap[1], -found.bootstrap[0])
    return replace(
        found, a=found.b, b=found.a, n_a=found.n_b, n_b=found.n_a, estimate=-found.estimate,
        interval=None if found.interval is None else (-high, -low), bootstrap=boot,
    )  # fmt: skip


def reversed_improvement(found: Improvement) -> Improvement:
    """P(B > A) from P(A > B)."""
    low, high = found.interval
    return Improvement(1 - found.probability, found.pairs, (1 - high, 1 - low))
