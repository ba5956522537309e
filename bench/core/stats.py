"""How sure a comparison is, for seeds of trained models (numpy and scipy only: the verdict
and the race both decide with it).

Two groups of runs that share seeds share their luck (shuffle order, augmentation, the
head's initial weights), so their seed-matched differences are the sharpest evidence: the
paired t interval of the mean difference, with five or more pairs also a bootstrap one.
Three or more groups are one layout of groups by seeds (:func:`blocks`). Groups without two
shared seeds fall back to Welch's t on all their runs. The statements one verdict (or one
race round) makes at once are a family: Holm's method, or Bergmann and Hommel's closed test
when the family is every pair (:func:`bergmann_hommel`, :func:`closed_step`), controls the
chance that any of them is wrong. P(A > B) over the pairs is a second reading (rliable,
Agarwal et al. 2021), and :func:`seeds_needed` says how many seeds would settle a
difference that is not yet resolved.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

LEVEL = 0.95
MAX_SEEDS = 50  # seeds per side beyond which seeds_needed says "more than 50"
# Pairs from which a BCa bootstrap interval of the mean difference is also given. Measured
# (benchmarks/calibration.py --bootstrap, 95% nominal): it covers 83% at 5 normal pairs,
# 88% at 10, 92% at 20-30 and 94% at 40; under t(3) noise still about 90% at 100. Below
# 40 it is left out; the t interval is the one every decision uses.
BOOTSTRAP_FROM = 40
BOOTSTRAP_RESAMPLES = 4999
POWER = 0.8
# The difference that matters, in accuracy (1 point): a pair is "equivalent" only when its
# two one-sided tests put it within +-MARGIN, and seeds_needed is for telling MARGIN apart.
MARGIN = 0.01

PAIRED = "paired t"
WELCH = "Welch's t"
BLOCKS = "block t"  # seeds as blocks, each group's own noise (a race's default)
POOLED = "pooled block t"  # seeds as blocks, one noise pooled over every group
HOLM = "Holm's method"  # how a family's p-values were adjusted (Difference.adjusted_by)
SHAFFER = "Holm's method with Shaffer's count"
BERGMANN_HOMMEL = "Bergmann and Hommel's closed test"
# Means up to which the closed test enumerates every way they can be equal (set partitions:
# 21,147 for 9, 115,975 for 10); beyond, Holm's step-down with Shaffer's count stands in.
EXHAUSTIVE_UP_TO = 9


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
    ``n_a`` and ``n_b`` runs), a block t of :func:`blocks`, or None (a side with a single
    run: not tested). ``p`` is the two-sided p-value of the test, ``p_adjusted`` the same
    adjusted over the ``family`` of comparisons made together (None until :func:`holm`,
    :func:`shaffer` or :func:`bergmann_hommel` adjusts it).
    """

    a: float  # each side's mean over the values the test used (paired: the shared seeds)
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
    adjusted_by: str | None = None  # HOLM, SHAFFER or BERGMANN_HOMMEL, once adjusted
    level: float = LEVEL
    se: float | None = None  # the standard error of ``estimate`` the test used
    df: float | None = None  # and its degrees of freedom

    @property
    def value(self) -> float:
        return self.estimate

    @property
    def tested(self) -> bool:
        return self.test is not None

    @property
    def significant(self) -> bool:
        """Resolved: the (adjusted) p-value is below 1 - level."""
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
        # The stated means are those the test compares: the seeds both sides ran.
        on = replace(base, a=float(np.mean([a[s] for s in shared])), n_a=len(shared),
                     b=float(np.mean([b[s] for s in shared])), n_b=len(shared))  # fmt: skip
        return _paired(on, d, level, seed)
    if min(len(va), len(vb)) >= 2:
        return _welch(base, va, vb, level)
    return base


def blocks(
    groups: Sequence[Mapping[int, float]], wanted: Sequence[tuple[int, int]],
    level: float = LEVEL, pooled: bool = False,
) -> list[Difference]:  # fmt: skip
    """``groups[i]`` minus ``groups[j]`` for each ``(i, j)`` wanted, the seeds as blocks.

    Every value of every group forms a two-way layout (group by seed, additive), fitted by
    least squares; the seeds need not be balanced. Its residuals measure each group's own
    noise, with the seed's shared luck taken out, from all the groups at once: a group
    that stopped early (a race's dropped entrant, up to the seed that dropped it) still
    lends the seeds it ran, so two entrants left in a race are not reduced to the
    differences of their own pairs. The mean difference of a pair is over the seeds that
    pair ran.

    - ``pooled=False`` (a race's default, ``blocks``): each group's residual variance
      ``v_i = RSS_i / sum(1 - h)`` over its cells (h: the fit's leverage; in a balanced
      layout ``RSS_i k / ((n - 1)(k - 1))``) is its own, so a group much noisier than the
      rest widens mostly its own comparisons (the seed effects carry about 1/k^2 of it to
      the others). The difference's variance is ``v_i + v_j`` with Satterthwaite's degrees
      of freedom for ``RSS_i / df_i + RSS_j / df_j``, each group's part weighted by its own
      variance (M the residual maker; balanced and alike:
      ``(n - 1)(2 - 2/k)^2 / (1 + (1 - 2/k)^2)``, scaled by
      ``(v_i + v_j)^2 / (2 (v_i^2 + v_j^2))`` as the two differ).
    - ``pooled=True`` (``pooled``): one variance for every group, ``N - rank`` degrees
      of freedom (balanced: ``(k - 1)(n - 1)``); the most power, if the noise is alike.

    A layout of fewer than three groups, or a pair with fewer than two shared seeds or no
    residual degrees of freedom: that pair's own :func:`compare`.
    """
    if len(groups) < 3:
        return [compare(groups[i], groups[j], level) for i, j in wanted]
    fit = _Layout.of(groups)
    return [fit.difference(groups, i, j, pooled, level) for i, j in wanted]


@dataclass(frozen=True)
class _Layout:
    """The least-squares fit of value = group + seed over every cell (group, seed)."""

    who: np.ndarray  # each cell's group
    design: np.ndarray  # cells x (groups + seeds), one-hot
    inverse: np.ndarray  # the pseudo-inverse of design' design
    residual: np.ndarray
    df: np.ndarray  # each group's residual degrees of freedom, sum(1 - leverage)
    pooled_df: float

    @classmethod
    def of(cls, groups: Sequence[Mapping[int, float]]) -> _Layout:
        cells = [(i, s, v) for i, g in enumerate(groups) for s, v in g.items()]
        seeds = {s: j for j, s in enumerate(sorted({s for _, s, _ in cells}))}
        design = np.zeros((len(cells), len(groups) + len(seeds)))
        for row, (i, s, _) in enumerate(cells):
            design[row, i] = design[row, len(groups) + seeds[s]] = 1.0
        inverse = np.linalg.pinv(design.T @ design)
        y = np.array([v for *_, v in cells], dtype=float)
        residual = y - design @ (inverse @ (design.T @ y))
        leverage = np.einsum("ij,jk,ik->i", design, inverse, design)
        who = np.array([i for i, _, _ in cells])
        df = np.array([float((1 - leverage[who == i]).sum()) for i in range(len(groups))])
        rank = round(float(leverage.sum()))  # the hat matrix's trace is the design's rank
        return cls(who, design, inverse, residual, df, float(len(cells) - rank))

    def variance(self, i: int, pooled: bool) -> float:
        if pooled:
            return float((self.residual**2).sum()) / self.pooled_df
        return float((self.residual[self.who == i] ** 2).sum()) / self.df[i]

    def pair_df(self, i: int, j: int, variances: tuple[float, float]) -> float:
        """Satterthwaite's degrees of freedom of ``v_i + v_j``: 2 E^2 / Var of the quadratic
        form in the residuals, from the residual maker restricted to the two groups' cells.
        Each group's share of the variance is weighted by its own estimate, so a noisy
        group with few seeds brings its own few degrees of freedom. With alike noise this
        is ``tr(WM)^2 / tr(WMWM)``; balanced, the formula in :func:`blocks`."""
        cells = (self.who == i) | (self.who == j)
        part, mine = self.design[cells], self.who[cells] == i
        maker = np.eye(len(part)) - part @ self.inverse @ part.T
        weight = np.where(mine, 1 / self.df[i], 1 / self.df[j])
        spread = weight[:, None] * weight[None, :] * maker**2
        own_i, own_j = (
            float(spread[np.ix_(mine, mine)].sum()),
            float(spread[np.ix_(~mine, ~mine)].sum()),
        )
        across = float(spread[np.ix_(mine, ~mine)].sum())
        var_i, var_j = variances
        denominator = var_i**2 * (own_i + across) + var_j**2 * (own_j + across)
        if denominator == 0:  # no spread at all: the alike-noise value
            return 4.0 / float(spread.sum())  # tr(WM) is 2: each group's weights sum to one
        return (var_i + var_j) ** 2 / denominator

    def difference(self, groups, i: int, j: int, pooled: bool, level: float) -> Difference:
        shared = set(groups[i]) & set(groups[j])
        usable = self.pooled_df > 0 if pooled else min(self.df[i], self.df[j]) > 1e-9
        if len(shared) < 2 or not usable:
            return compare(groups[i], groups[j], level)
        variances = (self.variance(i, pooled), self.variance(j, pooled))
        df = self.pooled_df if pooled else self.pair_df(i, j, variances)
        return _block(groups[i], groups[j], variances, df, pooled, level)


def _block(a, b, variances: tuple[float, float], df: float, pooled: bool,
           level: float) -> Difference:  # fmt: skip
    """One pair of :func:`blocks`: ``df`` is the pooled variance's, or that of ``v_a + v_b``."""
    var_a, var_b = variances
    seeds = sorted(set(a) & set(b))
    mean_a, mean_b = float(np.mean([a[s] for s in seeds])), float(np.mean([b[s] for s in seeds]))
    d, total = mean_a - mean_b, var_a + var_b
    se = math.sqrt(total / len(seeds))
    if se == 0:
        interval, p = (d, d), (0.0 if d else 1.0)
    else:
        half = float(stats.t.ppf(0.5 + level / 2, df)) * se
        interval, p = (d - half, d + half), float(2 * stats.t.sf(abs(d / se), df))
    return Difference(mean_a, mean_b, len(seeds), len(seeds), d, len(seeds),
                      POOLED if pooled else BLOCKS, interval, p, spread=math.sqrt(total),
                      level=level, se=se, df=df)  # fmt: skip


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
                   spread=sd, se=se, df=n - 1)  # fmt: skip


def _welch(base: Difference, va: np.ndarray, vb: np.ndarray, level: float) -> Difference:
    var_a, var_b = float(va.var(ddof=1)) / len(va), float(vb.var(ddof=1)) / len(vb)
    diff, se = base.estimate, math.sqrt(var_a + var_b)
    spread = math.sqrt((float(va.var(ddof=1)) + float(vb.var(ddof=1))) / 2)
    if se == 0:
        return replace(base, test=WELCH, interval=(diff, diff), p=0.0 if diff else 1.0,
                       spread=spread, se=0.0, df=len(va) + len(vb) - 2)  # fmt: skip
    df = (var_a + var_b) ** 2 / (var_a**2 / (len(va) - 1) + var_b**2 / (len(vb) - 1))
    half = float(stats.t.ppf(0.5 + level / 2, df)) * se
    p = float(2 * stats.t.sf(abs(diff / se), df))
    return replace(base, test=WELCH, interval=(diff - half, diff + half), p=p, spread=spread,
                   se=se, df=df)  # fmt: skip


def holm(found: Sequence[Difference], family: int | None = None) -> list[Difference]:
    """The same comparisons with Holm-adjusted p-values over the family of the tested ones.

    Args:
        found: The comparisons.
        family: The family's size when it holds more hypotheses than were tested (a race
            counts the pairs it no longer tests); default: the tested ones.
    """
    adjusted = holm_p([d.p if d.tested else None for d in found], family)
    return _adjusted(found, adjusted, max(family or 0, sum(d.tested for d in found)), HOLM)


def _adjusted(found, adjusted, size: int, method: str) -> list[Difference]:
    return [
        replace(d, p_adjusted=q, family=size, adjusted_by=method) if q is not None else d
        for d, q in zip(found, adjusted, strict=True)
    ]


@functools.cache
def possible_true(k: int) -> frozenset[int]:
    """How many of the k(k-1)/2 hypotheses "i and j are equal" among ``k`` means can be
    true together (Shaffer 1986): the means fall into groups of equal ones, and a group of
    ``g`` makes g(g-1)/2 true. For 5 means: 0, 1, 2, 3, 4, 6 and 10, never 5, 7, 8 or 9."""
    if k <= 1:
        return frozenset({0})
    return frozenset(
        g * (g - 1) // 2 + rest for g in range(1, k + 1) for rest in possible_true(k - g)
    )


def most_true(k: int, rejected: int) -> int:
    """Shaffer's (1986) static count: the most hypotheses of all pairs of ``k`` means that
    can still be true once ``rejected`` of them are rejected. Holm divides the level by
    ``k(k-1)/2 - rejected``; this divides it by the largest possible number of true
    hypotheses not above that, which is never more and is often fewer (5 means, one
    rejected: 6, not 9). Holm's guarantee stands: until a true hypothesis is rejected,
    every rejection is of a false one, so the true ones are at most this many (their
    number is one of the possible ones), and each is held to the level over their number
    or less. Holm's argument, with the impossible counts left out."""
    left = k * (k - 1) // 2 - rejected
    return max(t for t in possible_true(k) if t <= left) if left > 0 else 0


def shaffer(found: Sequence[Difference], pairs: Sequence[tuple[int, int]]) -> list[Difference]:
    """The comparisons with p-values adjusted over every pair of the means they compare by
    Holm's step-down with Shaffer's (1986) count (:func:`most_true`): the i-th smallest
    p-value is multiplied by the most hypotheses that can still be true once the i - 1
    before it are rejected, not by m - i + 1; each adjusted value is at least the one
    before it. ``pairs[n]`` names the two means ``found[n]`` compares; a mean in no tested
    pair (a single run) is in no claim, and so not in the family."""
    ps = [d.p if d.tested else None for d in found]
    means = len({m for n, p in enumerate(ps) if p is not None for m in pairs[n]})
    adjusted = holm_p(ps, steps=lambda rank: most_true(means, rank))
    return _adjusted(found, adjusted, means * (means - 1) // 2, SHAFFER)


@functools.cache
def exhaustive(k: int) -> np.ndarray:
    """Bergmann and Hommel's (1988) exhaustive sets of the hypotheses "i and j are equal"
    over every pair of ``k`` means: the sets that can be true together, one per way the
    means fall into groups of equal ones (a set partition), each the pairs inside its groups.

    Returns:
        A boolean array, one row per non-empty set, one column per pair in
        ``itertools.combinations(range(k), 2)`` order.
    """
    groups = _partitions(k)
    i, j = np.triu_indices(k, 1)
    return groups[:, i] == groups[:, j]


@functools.cache
def _partitions(k: int) -> np.ndarray:
    """Every way ``k`` means fall into groups with at least one group of two or more, one
    row per way: each mean's group (a restricted growth string)."""
    labels = [[0]]
    for _ in range(k - 1):
        labels = [row + [g] for row in labels for g in range(max(row) + 2)]
    groups = np.array(labels)
    return groups[[len(set(row)) < k for row in labels]]


@functools.cache
def divisors(k: int) -> np.ndarray:
    """The race's split of the level in each of :func:`exhaustive`'s sets: the level is
    divided equally among the set's groups of equal means, and a group's share equally
    among its pairs. With five means, the set {a, b} beside {c, d, e} holds a = b to the
    level over 2 and each of c, d, e's pairs to the level over 6 (Bonferroni over the
    set's size, as the verdict's closed test does, holds every one of its pairs to the level
    over 4).

    Args:
        k: The means.

    Returns:
        An int array shaped as :func:`exhaustive`'s: the divisor of each pair in each set, 0
        for a pair not in the set.
    """
    groups, sets = _partitions(k), exhaustive(k)
    i, _ = np.triu_indices(k, 1)
    found = np.zeros(sets.shape, dtype=int)
    for row, labels in enumerate(groups):
        sizes = np.bincount(labels)
        pairs_in = sizes * (sizes - 1) // 2
        found[row] = np.where(sets[row], (sizes >= 2).sum() * pairs_in[labels[i]], 0)
    return found


@functools.cache
def by_size(k: int) -> np.ndarray:
    """Bonferroni over each of :func:`exhaustive`'s sets' size: every pair of a set held to
    the level over the set's number of pairs, as :func:`bergmann_hommel` (the verdict's
    closure) holds it; shaped as :func:`divisors`, which the race splits by group instead.

    Args:
        k: The means.

    Returns:
        An int array: the divisor of each pair in each set, 0 for a pair not in the set.
    """
    sets = exhaustive(k)
    return sets * sets.sum(axis=1)[:, None]


def bergmann_hommel(
    found: Sequence[Difference], pairs: Sequence[tuple[int, int]]
) -> list[Difference]:  # fmt: skip
    """The comparisons with p-values adjusted over every pair of the means they compare by
    Bergmann and Hommel's (1988) closed test: a hypothesis is rejected when every
    exhaustive set that holds it (:func:`exhaustive`) is, each set by Bonferroni over its
    own size, so its adjusted p-value is the largest, over those sets, of the set's size
    times its smallest p-value. It never exceeds Shaffer's (García and Herrera 2008).
    A mean in no tested pair is in no claim and not in the family. Beyond
    EXHAUSTIVE_UP_TO means (or with none tested), :func:`shaffer`.

    Args:
        found: The comparisons, each with its raw p-value (untested ones stay as they are).
        pairs: ``pairs[n]``, the two means ``found[n]`` compares.

    Returns:
        The comparisons with ``p_adjusted``, ``family`` and ``adjusted_by`` set.
    """
    ps = [d.p if d.tested else None for d in found]
    means = sorted({m for n, p in enumerate(ps) if p is not None for m in pairs[n]})
    if not 2 <= len(means) <= EXHAUSTIVE_UP_TO:
        return shaffer(found, pairs)
    sets = exhaustive(len(means))
    column = {pair: n for n, pair in enumerate(itertools.combinations(range(len(means)), 2))}
    raw = np.ones(sets.shape[1])  # a pair not tested is in the family at p = 1
    at = [column[tuple(sorted(map(means.index, pairs[n])))] if p is not None else None
          for n, p in enumerate(ps)]  # fmt: skip
    for n, col in enumerate(at):
        if col is not None:
            raw[col] = ps[n]
    each = np.minimum(1.0, sets.sum(axis=1) * np.where(sets, raw, np.inf).min(axis=1))
    adjusted = [None if col is None else float(each[sets[:, col]].max()) for col in at]
    return _adjusted(found, adjusted, len(column), BERGMANN_HOMMEL)


def closed_step(
    k: int, crosses: Callable[[int], np.ndarray], before: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """One look of a group-sequential closed test over every pair of ``k`` means (a race's).

    Each exhaustive set is tested by a weighted Bonferroni through the look's boundaries:
    it is rejected when one of its pairs crosses the boundary of the level over its divisor
    in that set (:func:`divisors`: the level split equally among the set's groups, a
    group's share among its pairs), or was rejected at an earlier look. A pair is rejected
    when every set that holds it is. Each set's divisors hold its level over all looks
    (their shares sum to one), so the closure does (Marcus, Peritz and Gabriel 1976;
    Maurer and Bretz 2013). Beyond EXHAUSTIVE_UP_TO means, Holm's step-down with Shaffer's
    count (:func:`most_true`).

    Args:
        k: The means.
        crosses: For a divisor d, which pairs (combinations order) cross this look's
            boundary for the level over d, in the direction claimed.
        before: The pairs rejected at earlier looks.

    Returns:
        The pairs rejected so far, and for each the divisor it was held to (0 if none).
    """
    if k > EXHAUSTIVE_UP_TO:
        return _shaffer_step(k, crosses, before)
    sets = exhaustive(k)
    split, values, index = _split_index(k, divisors)
    crossing = np.stack([crosses(int(d)) if d else np.zeros(sets.shape[1], dtype=bool)
                         for d in values])  # fmt: skip
    hit = sets & crossing[index, np.arange(sets.shape[1])]  # each pair at its set's divisor
    earlier = (sets & before).any(axis=1)
    rejected = earlier | hit.any(axis=1)
    now = ~(sets & ~rejected[:, None]).any(axis=0)  # no set holding the pair stands
    held = np.zeros(sets.shape[1], dtype=int)
    for h in np.flatnonzero(now & ~before):
        others = earlier | np.delete(hit, h, axis=1).any(axis=1)  # rejected without h
        held[h] = split[sets[:, h] & ~others, h].max(initial=1)
    return now, held  # a pair rejected before is in no standing set, so in ``now``


@functools.cache
def _split_index(
    k: int, rule: Callable[[int], np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """``rule(k)`` (:func:`divisors`), its distinct divisors (0 first, for a pair not in a
    set), and each entry's index among them: computed once per ``k`` and rule, where
    :func:`closed_step` runs at every look of every race (21,146 sets of 36 pairs for nine
    entrants). Keyed on the rule too, so benchmarks/closure_split.py's swap of
    :func:`divisors` gets its own entry."""
    split = rule(k)
    values, index = np.unique(split, return_inverse=True)
    return split, values, index.reshape(split.shape)


def _shaffer_step(
    k: int, crosses: Callable[[int], np.ndarray], before: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """:func:`closed_step`'s stand-in beyond EXHAUSTIVE_UP_TO means: Holm's step-down with
    Shaffer's count, every pair that crosses at the current count rejected at once."""
    now, held = before.copy(), np.zeros(len(before), dtype=int)
    while (count := most_true(k, int(now.sum()))) > 0:
        new = crosses(count) & ~now
        if not new.any():
            break
        now, held[new] = now | new, count
    return now, held


def strictest(k: int, rejected: np.ndarray) -> int:
    """The largest divisor of the level that :func:`closed_step` may still hold a pair not
    yet rejected to: over the sets that hold no rejected pair (Shaffer's count beyond
    EXHAUSTIVE_UP_TO).

    Args:
        k: The means.
        rejected: A boolean per pair, combinations order.

    Returns:
        That divisor; 0 when every pair is rejected.
    """
    if k > EXHAUSTIVE_UP_TO:
        return most_true(k, int(rejected.sum()))
    standing = ~(exhaustive(k) & rejected).any(axis=1)
    return int(divisors(k)[standing][:, ~rejected].max(initial=0))


def holm_p(
    ps: Sequence[float | None], family: int | None = None,
    steps: Callable[[int], int] | None = None,
) -> list[float | None]:  # fmt: skip
    """Holm's step-down adjusted p-values (None stays None).

    The i-th smallest of m p-values is multiplied by (m - i + 1), and each adjusted value
    is at least the one before it, capped at 1. ``family`` may make m larger than the
    number of p-values given (hypotheses counted but not tested). ``steps`` gives another
    multiplier for the p-value after ``i - 1`` rejections (:func:`shaffer`'s count).
    """
    tested = [i for i, p in enumerate(ps) if p is not None]
    m = max(family or 0, len(tested))
    out: list[float | None] = list(ps)
    running = 0.0
    for rank, i in enumerate(sorted(tested, key=lambda i: ps[i])):
        running = max(running, min(1.0, (steps(rank) if steps else m - rank) * ps[i]))
        out[i] = running
    return out


def equivalence(found: Difference, margin: float = MARGIN) -> float | None:
    """The p-value of the two one-sided tests (Schuirmann 1987) that the true difference
    lies within +-``margin``: the larger one-sided p-value, on the test's own standard
    error and degrees of freedom. Below ``1 - level``, the pair is equivalent: the
    ``1 - 2 alpha`` interval lies inside the margin. None when the pair was not tested."""
    if not found.tested or found.se is None or found.df is None:
        return None
    if found.se == 0:
        return 0.0 if abs(found.value) < margin else 1.0
    lower = stats.t.sf((found.value + margin) / found.se, found.df)  # H0: difference <= -m
    upper = stats.t.cdf((found.value - margin) / found.se, found.df)  # H0: difference >= +m
    return float(max(lower, upper))


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


def seeds_needed(
    found: Difference, alpha: float | None = None, effect: float = MARGIN
) -> int | None:
    """About how many seeds per side would tell a true difference of ``effect`` (the
    declared margin, not the difference observed) at ``found``'s spread, with 80% power
    (two-sided, at ``alpha``, default 1 - level); None beyond :data:`MAX_SEEDS` or when
    there is no spread to go by.

    Paired and block t: a one-sample t test of the mean difference; Welch: two samples of
    n each with the pooled spread.
    """
    alpha = (1 - found.level) if alpha is None else alpha
    spread = found.spread
    if not found.tested or not spread or effect <= 0:
        return None

    def power(n: int) -> float:
        if found.test == WELCH:
            df, noncentral = 2 * n - 2, effect / (spread * math.sqrt(2 / n))
        else:
            df, noncentral = n - 1, effect / (spread / math.sqrt(n))
        critical = stats.t.ppf(1 - alpha / 2, df)
        return stats.nct.sf(critical, df, noncentral) + stats.nct.cdf(-critical, df, noncentral)

    if power(MAX_SEEDS) < POWER:
        return None
    low, high = 2, MAX_SEEDS  # power grows with n: the first n that reaches POWER
    while low < high:
        middle = (low + high) // 2
        low, high = (middle + 1, high) if power(middle) < POWER else (low, middle)
    return low


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
