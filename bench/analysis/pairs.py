"""The pairwise statements one dataset's verdict makes, decided as one family.

The verdict compares the most accurate group with every other, and MobileNetV2 with every
EfficientNet it shares its other keys with. Each distinct pair is tested once, on the
seeds both sides ran where there are two or more (else Welch's t), all of them together
under Holm's method; each gets P(A > B) over its pairs and, when it stays open, about how
many seeds would settle it (:mod:`bench.core.stats`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from bench.analysis import plots
from bench.analysis.tables import Comparison
from bench.core import backbones, stats


@dataclass(frozen=True)
class Pair:
    """One stated comparison: ``a`` against ``b`` (table index keys) and how sure it is."""

    a: Any
    b: Any
    label_a: str
    label_b: str
    difference: stats.Difference
    improvement: stats.Improvement | None = None
    seeds_needed: int | None = None
    where: str = ""  # the other keys both groups share ("freeze=frozen"), if any

    @property
    def resolved(self) -> bool:
        return self.difference.significant

    def winner_first(self) -> Pair:
        """The same pair with the higher side first (its difference positive)."""
        if self.difference.value >= 0:
            return self
        better = self.improvement and stats.reversed_improvement(self.improvement)
        return replace(self, a=self.b, b=self.a, label_a=self.label_b, label_b=self.label_a,
                       difference=stats.flipped(self.difference), improvement=better)  # fmt: skip


def primary_metric(table: pd.DataFrame) -> str:
    """Test accuracy when every group has it, else the best validation accuracy."""
    metrics = table.columns.get_level_values(0)
    if "test_accuracy" in metrics and table[("test_accuracy", "count")].gt(0).all():
        return "test_accuracy"
    return "best_val_accuracy"


def best(table: pd.DataFrame, metric: str):
    """The group with the highest mean of ``metric``."""
    return table[(metric, "mean")].idxmax()


def statements(table: pd.DataFrame, metric: str) -> list[tuple[Any, Any, str, str, str]]:
    """(a, b, label a, label b, where) for every comparison the verdict states: the best
    group against each other, then MobileNetV2 against each EfficientNet."""
    top = best(table, metric)
    found = [(top, k, plots.label(top), plots.label(k), "") for k in table.index if k != top]
    return found + mobilenet_pairs(table)


def family(comparison: Comparison, metric: str, level: float = stats.LEVEL) -> list[Pair]:
    """Every stated pair, each distinct one tested once and all adjusted together."""
    stated = statements(comparison.table, metric)
    first: dict[frozenset, tuple] = {}  # each distinct pair, the way it was first stated
    for a, b, *_ in stated:
        first.setdefault(_unordered(a, b), (a, b))
    raw = [
        stats.compare(comparison.seeds(metric, a), comparison.seeds(metric, b), level)
        for a, b in first.values()
    ]
    adjusted = dict(zip(first, stats.holm(raw), strict=True))
    size = max([d.family for d in adjusted.values() if d.tested], default=1)
    alpha = (1 - level) / size  # Holm's strictest step: about how many seeds, at the worst
    pairs = []
    for a, b, label_a, label_b, where in stated:
        key = _unordered(a, b)
        found = adjusted[key] if first[key] == (a, b) else stats.flipped(adjusted[key])
        seeds_a, seeds_b = comparison.seeds(metric, a), comparison.seeds(metric, b)
        needed = (
            stats.seeds_needed(found, alpha) if found.tested and not found.significant else None
        )
        better = stats.probability_of_improvement(seeds_a, seeds_b, level)
        pairs.append(Pair(a, b, label_a, label_b, found, better, needed, where))
    return pairs


def _unordered(a, b) -> frozenset:
    # Labels name groups uniquely; reprs of index keys differ with their scalar types.
    return frozenset((plots.label(a), plots.label(b)))


def distinct(pairs: list[Pair]) -> list[Pair]:
    """Each tested comparison once, as first stated."""
    seen, found = set(), []
    for pair in pairs:
        key = _unordered(pair.a, pair.b)
        if key not in seen:
            seen.add(key)
            found.append(pair)
    return found


def _native(backbone: str, image_size) -> bool:
    try:
        return int(image_size) == backbones.get(backbone).resolution
    except (KeyError, TypeError, ValueError):
        return False


def _same_footing(a: pd.Series, b: pd.Series) -> bool:
    """Same resolution, or each at its own native one."""
    if a["image_size"] == b["image_size"]:
        return True
    return _native(a["backbone"], a["image_size"]) and _native(b["backbone"], b["image_size"])


def mobilenet_pairs(table: pd.DataFrame) -> list[tuple[Any, Any, str, str, str]]:
    """MobileNetV2 against every EfficientNet that shares all its other keys.

    Resolutions match when both ran at the same size, or each at its own native size
    (the default); every label names the size each ran at.
    """
    names = list(table.index.names)
    if "backbone" not in names:
        return []
    keys = table.index.to_frame(index=False).astype(str)
    sized = "image_size" in names
    rest = [n for n in names if n not in ("backbone", "image_size")]
    found = []
    for i in keys.index[keys["backbone"] == "mobilenet_v2"]:
        same = (keys[rest] == keys.loc[i, rest]).all(axis=1) if rest else keys["backbone"] != ""
        for j in keys.index[same & keys["backbone"].str.fullmatch(r"b\d")]:
            ka, kb = keys.loc[i], keys.loc[j]
            if sized and not _same_footing(ka, kb):
                continue
            at_a = f"mobilenet_v2 at {ka['image_size']} px" if sized else "mobilenet_v2"
            at_b = f"{kb['backbone']} at {kb['image_size']} px" if sized else kb["backbone"]
            where = ", ".join(f"{n}={ka[n]}" for n in rest)
            found.append((table.index[i], table.index[j], at_a, at_b, where))
    return found


def frame(pairs: list[Pair], metric: str) -> pd.DataFrame:
    """The family as a table for the report: one row per distinct comparison."""
    rows = []
    for pair in distinct(pairs):
        d, better = pair.difference, pair.improvement
        rows.append({
            "comparison": f"{pair.label_a} vs {pair.label_b}",
            "metric": metric,
            "test": d.test or "not tested (single seed)",
            "seeds paired": d.pairs if d.test == stats.PAIRED else 0,
            "runs": f"{d.n_a} and {d.n_b}",
            "difference (points)": round(d.value * 100, 1),
            "95% CI (points)": _points_range(d.interval),
            "bootstrap 95% CI (points)": _points_range(d.bootstrap),
            "p": None if d.p is None else round(d.p, 3),
            "Holm p": None if d.p_adjusted is None else round(d.p_adjusted, 3),
            "family": d.family if d.tested else None,
            "P(A > B)": None if better is None else round(better.probability, 2),
            "P 95% CI": None if better is None else _range(better.interval, 2),
            "outcome": outcome(pair),
            "seeds each to settle": pair.seeds_needed,
        })  # fmt: skip
    return pd.DataFrame(rows)


def outcome(pair: Pair) -> str:
    """``a beats b``, ``tie``, ``practically a tie`` or ``not tested``."""
    d = pair.difference
    if not d.tested:
        return "not tested"
    if d.significant:
        first = pair.winner_first()
        return f"{first.label_a} beats {first.label_b}"
    return "tie" if pair.seeds_needed else "practically a tie"


def _points_range(bounds) -> str | None:
    return None if bounds is None else f"[{bounds[0] * 100:+.1f}, {bounds[1] * 100:+.1f}]"


def _range(bounds, digits: int) -> str:
    return f"{bounds[0]:.{digits}f} to {bounds[1]:.{digits}f}"
