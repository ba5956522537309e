"""The sentences a report draws from one dataset's comparison table."""

from __future__ import annotations

import pandas as pd

from bench.analysis import plots


def primary_metric(table: pd.DataFrame) -> str:
    """Test accuracy when every group has it, else the best validation accuracy."""
    metrics = table.columns.get_level_values(0)
    if "test_accuracy" in metrics and table[("test_accuracy", "count")].gt(0).all():
        return "test_accuracy"
    return "best_val_accuracy"


def _spread(table: pd.DataFrame, metric: str, a, b) -> float | None:
    """The seed-to-seed spread two groups are compared against, if both repeat seeds."""
    if min(table.loc[a, (metric, "count")], table.loc[b, (metric, "count")]) < 2:
        return None
    return max(table.loc[a, (metric, "std")], table.loc[b, (metric, "std")])


def _versus(table: pd.DataFrame, metric: str, a, b) -> str:
    """``a`` against ``b`` on ``metric``: a win by so many points, or a tie."""
    acc = table[(metric, "mean")]
    diff, spread = acc[a] - acc[b], _spread(table, metric, a, b)
    la, lb = plots.label(a), plots.label(b)
    scores = f"{acc[a]:.3f} vs {acc[b]:.3f}"
    if spread is not None and abs(diff) <= spread:
        return f"{la} and {lb} tie ({scores}, within the ±{spread:.3f} seed spread)"
    if diff < 0:
        la, lb, scores = lb, la, f"{acc[b]:.3f} vs {acc[a]:.3f}"
    return f"{la} beats {lb} by {abs(diff) * 100:.1f} points ({scores})"


def verdict(table: pd.DataFrame) -> list[str]:
    """Sentences a reader can act on, computed from one dataset's comparison table."""
    metric = primary_metric(table)
    acc, time = table[(metric, "mean")], table[("train_time_s", "mean")]
    best, fastest = acc.idxmax(), time.idxmin()
    lines = [
        f"Most accurate: {plots.label(best)} with {metric} {acc[best]:.3f} "
        f"after {time[best]:.1f} s of training."
    ]
    ties = [k for k in table.index if k != best and "tie" in _versus(table, metric, best, k)]
    if ties:
        lines.append(
            "Within the seed-to-seed spread of the best (a tie, not a loss): "
            + ", ".join(plots.label(k) for k in ties) + "."
        )  # fmt: skip
    lines.append(
        f"Fastest to train: {plots.label(fastest)} in {time[fastest]:.1f} s "
        f"({metric} {acc[fastest]:.3f})."
    )
    lines += mobilenet_vs_efficientnet(table, metric)
    if table[(metric, "count")].max() < 2:
        lines.append("One seed per group: differences are not tested against seed noise.")
    return lines


def mobilenet_vs_efficientnet(table: pd.DataFrame, metric: str) -> list[str]:
    """MobileNetV2 against each EfficientNet that shares all its other axes."""
    if "backbone" not in table.index.names:
        return []
    keys = table.index.to_frame(index=False).astype(str)
    rest = [name for name in keys.columns if name != "backbone"]
    time = table[("train_time_s", "mean")]
    lines = []
    for i in keys.index[keys["backbone"] == "mobilenet_v2"]:
        same = (keys[rest] == keys.loc[i, rest]).all(axis=1)
        for j in keys.index[same & keys["backbone"].str.fullmatch(r"b\d")]:
            a, b = table.index[i], table.index[j]
            speed = time[b] / time[a]
            lines.append(
                f"{_versus(table, metric, a, b)}; MobileNetV2 trains {speed:.1f}x as fast."
            )
    return lines
