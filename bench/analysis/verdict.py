"""The sentences a report draws from one dataset's comparison table.

Every sentence says how sure it is: a mean says over how many seeds, a comparison of two
groups with two or more seeds each is a win only when the 95% interval of the difference
of means (Welch's t) excludes zero, else a tie; a group with a single seed makes the
comparison "single seed, not tested".
"""

from __future__ import annotations

import pandas as pd

from bench.analysis import plots, stats
from bench.core import backbones

SINGLE = "single seed, not tested"


def primary_metric(table: pd.DataFrame) -> str:
    """Test accuracy when every group has it, else the best validation accuracy."""
    metrics = table.columns.get_level_values(0)
    if "test_accuracy" in metrics and table[("test_accuracy", "count")].gt(0).all():
        return "test_accuracy"
    return "best_val_accuracy"


def difference(table: pd.DataFrame, metric: str, a, b) -> stats.Difference:
    """Group ``a`` minus group ``b`` on ``metric``, tested when both repeat seeds."""
    row_a, row_b = table.loc[a, metric], table.loc[b, metric]
    return stats.welch(
        row_a["mean"], row_a["std"], row_a["count"], row_b["mean"], row_b["std"], row_b["count"]
    )


def _points(value: float) -> str:
    return f"{value * 100:+.1f}"


def versus(table: pd.DataFrame, metric: str, a, b, la: str | None = None, lb: str | None = None):
    """One sentence comparing groups ``a`` and ``b`` on ``metric``, with its footing."""
    la, lb = la or plots.label(a), lb or plots.label(b)
    found = difference(table, metric, a, b)
    scores = f"{metric} {found.a:.3f} vs {found.b:.3f}, n={found.n_a} and {found.n_b}"
    if not found.tested:
        return f"{la} vs {lb}: {SINGLE} ({scores})"
    low, high = found.interval
    ci = f"95% CI of the difference [{_points(low)}, {_points(high)}] points, Welch's t"
    if not found.significant:
        return f"{la} and {lb} tie ({scores}; {ci}, includes zero)"
    if found.value < 0:
        la, lb = lb, la
        scores = f"{metric} {found.b:.3f} vs {found.a:.3f}, n={found.n_b} and {found.n_a}"
        ci = f"95% CI of the difference [{_points(-high)}, {_points(-low)}] points, Welch's t"
    return f"{la} beats {lb} by {abs(found.value) * 100:.1f} points ({scores}; {ci})"


def _mean(table: pd.DataFrame, metric: str, key) -> str:
    row = table.loc[key, metric]
    n = int(row["count"])
    if n < 2:
        return f"{row['mean']:.3f} (one seed)"
    return (
        f"{row['mean']:.3f} (mean of {n} seeds, 95% CI {row['ci_low']:.3f} to {row['ci_high']:.3f})"
    )


def verdict(table: pd.DataFrame) -> list[str]:
    """Sentences a reader can act on, each with its statistical footing."""
    metric = primary_metric(table)
    acc, time = table[(metric, "mean")], table[("train_time_s", "mean")]
    best, fastest = acc.idxmax(), time.idxmin()
    lines = [
        f"Highest mean {metric}: {plots.label(best)} with {_mean(table, metric, best)}, "
        f"after {time[best]:.1f} s of training."
    ]
    others = [k for k in table.index if k != best]
    ties = [k for k in others if difference(table, metric, best, k).tested]
    ties = [k for k in ties if not difference(table, metric, best, k).significant]
    untested = [k for k in others if not difference(table, metric, best, k).tested]
    if ties:
        lines.append(
            "Not distinguishable from it (95% CI of the difference includes zero, Welch's t): "
            + ", ".join(plots.label(k) for k in ties) + "."
        )  # fmt: skip
    if untested:
        lines.append(
            f"Compared with it on a {SINGLE}: " + ", ".join(plots.label(k) for k in untested) + "."
        )
    n_fast = int(table.loc[fastest, ("train_time_s", "count")])
    lines.append(
        f"Fastest to train: {plots.label(fastest)} in {time[fastest]:.1f} s "
        f"(mean of {n_fast} run{'s' if n_fast > 1 else ''}; {metric} {acc[fastest]:.3f})."
    )
    lines += mobilenet_vs_efficientnet(table, metric)
    if table[(metric, "count")].min() < 2:
        lines.append(
            "A claim needs two or more seeds per group: rerun with seed=1,2,3 (python -m "
            "bench.run -m ... seed=1,2,3) to test the differences above."
        )
    return lines


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


def mobilenet_vs_efficientnet(table: pd.DataFrame, metric: str) -> list[str]:
    """MobileNetV2 against every EfficientNet that shares all its other keys.

    Resolutions match when both ran at the same size, or each at its own native size
    (the default); every sentence names the size each ran at.
    """
    names = list(table.index.names)
    if "backbone" not in names:
        return []
    keys = table.index.to_frame(index=False).astype(str)
    sized = "image_size" in names
    rest = [n for n in names if n not in ("backbone", "image_size")]
    time = table[("train_time_s", "mean")]
    lines = []
    for i in keys.index[keys["backbone"] == "mobilenet_v2"]:
        same = (keys[rest] == keys.loc[i, rest]).all(axis=1) if rest else keys["backbone"] != ""
        for j in keys.index[same & keys["backbone"].str.fullmatch(r"b\d")]:
            a, b = table.index[i], table.index[j]
            ka, kb = keys.loc[i], keys.loc[j]
            if sized and not _same_footing(ka, kb):
                continue
            at_a = f"mobilenet_v2 at {ka['image_size']} px" if sized else "mobilenet_v2"
            at_b = f"{kb['backbone']} at {kb['image_size']} px" if sized else kb["backbone"]
            where = f"With {', '.join(f'{n}={ka[n]}' for n in rest)}: " if rest else ""
            speed = time[b] / time[a]
            lines.append(
                f"{where}{versus(table, metric, a, b, at_a, at_b)}; MobileNetV2 trains "
                f"{speed:.1f}x as fast (mean training time)."
            )
    return lines
