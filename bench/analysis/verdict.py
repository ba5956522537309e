"""The sentences a report draws from one dataset's comparison.

Every sentence says how sure it is. A mean says over how many seeds. A comparison of two
groups is tested on the seeds both ran (paired t; with five or more pairs also a
bootstrap interval), or with Welch's t on all their runs when they share fewer than two
seeds; a group with a single run makes it "single seed, not tested". All comparisons of
one dataset are one family under Holm's method: a win must survive the adjustment. Each
gives P(A > B) over its pairs, and a pair left open says about how many seeds per side
would settle it (:mod:`bench.analysis.pairs`, :mod:`bench.core.stats`).
"""

from __future__ import annotations

from bench.analysis import plots
from bench.analysis.pairs import Pair, best, family, primary_metric
from bench.analysis.tables import Comparison
from bench.core import stats

SINGLE = "single seed, not tested"


def _points(value: float) -> str:
    return f"{value * 100:+.1f}"


def footing(pair: Pair) -> str:
    """The test, its interval, its adjusted p-value and P(A > B), as one clause."""
    d, better = pair.difference, pair.improvement
    if d.test == stats.PAIRED:
        how = f"paired t over {d.pairs} seeds both ran"
    else:
        how = f"Welch's t on {d.n_a} and {d.n_b} runs"
    low, high = d.interval
    ci = f"95% CI of the difference [{_points(low)}, {_points(high)}] points"
    if d.bootstrap:
        ci += f" (bootstrap [{_points(d.bootstrap[0])}, {_points(d.bootstrap[1])}])"
    if low <= 0 <= high:
        ci += ", includes zero"
    if d.family > 1:
        adjusted = f"Holm-adjusted p = {d.p_adjusted:.3f} over {d.family} comparisons"
    else:
        adjusted = f"p = {d.p:.3f}"
    parts = [f"{how}: {ci}", adjusted]
    if better is not None:
        low_p, high_p = better.interval
        parts.append(
            f"P({pair.label_a} > {pair.label_b}) = {better.probability:.2f} over "
            f"{better.pairs} pair{'s' * (better.pairs > 1)} (95% CI {low_p:.2f} to {high_p:.2f})"
        )
    return "; ".join(parts)


def settle(pair: Pair) -> str:
    """About how many seeds would settle an open pair, or that it is practically a tie."""
    d = pair.difference
    if not d.tested or d.significant:
        return ""
    if pair.seeds_needed is None:
        return (
            f"practically a tie: even {stats.MAX_SEEDS} seeds each would not resolve a "
            "difference this small at this spread"
        )
    have = d.pairs if d.test == stats.PAIRED else min(d.n_a, d.n_b)
    seeds = max(pair.seeds_needed, have + 1)  # these seeds did not: one more at the least
    return f"about {seeds} seeds each would settle this if the difference holds"


def versus(pair: Pair, metric: str) -> str:
    """One sentence comparing the pair's groups on ``metric``, with its footing."""
    d = pair.difference
    scores = f"{metric} {d.a:.3f} vs {d.b:.3f}, n={d.n_a} and {d.n_b}"
    if not d.tested:
        return f"{pair.label_a} vs {pair.label_b}: {SINGLE} ({scores})"
    if d.significant:
        won = pair.winner_first()
        w = won.difference
        scores = f"{metric} {w.a:.3f} vs {w.b:.3f}, n={w.n_a} and {w.n_b}"
        return (
            f"{won.label_a} beats {won.label_b} by {w.value * 100:.1f} points "
            f"({scores}; {footing(won)})"
        )
    return f"{pair.label_a} and {pair.label_b} tie ({scores}; {footing(pair)}); {settle(pair)}"


def _mean(table, metric: str, key) -> str:
    row = table.loc[key, metric]
    n = int(row["count"])
    if n < 2:
        return f"{row['mean']:.3f} (one seed)"
    return (
        f"{row['mean']:.3f} (mean of {n} seeds, 95% CI {row['ci_low']:.3f} to {row['ci_high']:.3f})"
    )


def verdict(comparison: Comparison, found: list[Pair] | None = None) -> list[str]:
    """Sentences a reader can act on, each with its statistical footing.

    Args:
        comparison: One dataset's comparison.
        found: Its family of pairs (:func:`bench.analysis.pairs.family`), when the caller
            has it already.
    """
    table = comparison.table
    metric = primary_metric(table)
    acc, time = table[(metric, "mean")], table[("train_time_s", "mean")]
    top, fastest = best(table, metric), time.idxmin()
    found = family(comparison, metric) if found is None else found
    against, mobilenet = found[: len(table) - 1], found[len(table) - 1 :]
    size = max([p.difference.family for p in found if p.difference.tested], default=0)
    adjusted = f"Holm-adjusted over {size} comparison{'s' * (size > 1)}"
    lines = [
        f"Highest mean {metric}: {plots.label(top)} with {_mean(table, metric, top)}, "
        f"after {time[top]:.1f} s of training."
    ]
    worse = [p for p in against if p.resolved]
    ties = [p for p in against if p.difference.tested and not p.resolved]
    untested = [p for p in against if not p.difference.tested]
    if worse:
        lines.append(
            f"Worse than it ({adjusted}): "
            + ", ".join(f"{p.label_b} by {p.difference.value * 100:.1f} points" for p in worse)
            + "."
        )
    if ties:
        lines.append(
            f"Not distinguishable from it ({adjusted}; paired by seed where two or more match): "
            + ", ".join(f"{p.label_b} ({settle(p)})" for p in ties) + "."
        )  # fmt: skip
    if untested:
        lines.append(
            f"Compared with it on a {SINGLE}: " + ", ".join(p.label_b for p in untested) + "."
        )
    n_fast = int(table.loc[fastest, ("train_time_s", "count")])
    lines.append(
        f"Fastest to train: {plots.label(fastest)} in {time[fastest]:.1f} s "
        f"(mean of {n_fast} run{'s' if n_fast > 1 else ''}; {metric} {acc[fastest]:.3f})."
    )
    for pair in mobilenet:
        where = f"With {pair.where}: " if pair.where else ""
        speed = time[pair.b] / time[pair.a]
        lines.append(
            f"{where}{versus(pair, metric)}; MobileNetV2 trains {speed:.1f}x as fast "
            "(mean training time)."
        )
    if table[(metric, "count")].min() < 2:
        lines.append(
            "A claim needs two or more seeds per group: rerun with seed=1,2,3 (python -m "
            "bench.run -m ... seed=1,2,3) to test the differences above."
        )
    return lines
