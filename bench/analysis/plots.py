"""The report's figures (matplotlib, written as PNG and SVG).

Each function takes one dataset's comparison table (``bench.analysis.tables.compare``) or its
epochs, draws one view and returns the PNG path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

_PHASE_MARKERS = {"train": "", "head": "o", "finetune": "s"}


def label(key) -> str:
    """A group's label from its index value (``b0`` or ``b0 / finetune``)."""
    return " / ".join(map(str, key)) if isinstance(key, tuple) else str(key)


def subplots(*args, **kwargs):
    """``matplotlib.pyplot.subplots`` on the files-only backend this module sets."""
    return plt.subplots(*args, **kwargs)


def save(fig, path: Path) -> Path:
    """Writes ``fig`` as PNG and SVG beside each other; returns the PNG's path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=110)
    fig.savefig(path.with_suffix(".svg"))
    plt.close(fig)
    return path.with_suffix(".png")


def _bars(table: pd.DataFrame, metric: str, scale: float, ylabel: str, title: str, path: Path):
    mean = table[(metric, "mean")] / scale
    std = table[(metric, "std")].fillna(0) / scale
    order = mean.sort_values().index
    fig, ax = plt.subplots(figsize=(max(4, 0.9 * len(order) + 2), 3.6))
    ax.bar([label(k) for k in order], mean[order], yerr=std[order], capsize=3, color="#4c72b0")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=30)
    return save(fig, path)


def training_time(table: pd.DataFrame, dataset: str, out: Path) -> Path:
    """Training wall-clock per group (the W&B report's 'broader view of training times')."""
    return _bars(
        table, "train_time_s", 1.0, "training time (s)", f"Training time - {dataset}",
        out / f"training_time_{dataset}",
    )  # fmt: skip


def memory(table: pd.DataFrame, dataset: str, out: Path) -> Path:
    """Peak device memory per group, or peak host RSS where no accelerator was used."""
    device = "peak_device_memory_bytes"
    metric = device if device in table.columns.get_level_values(0) else "peak_host_rss_bytes"
    what = "device memory" if metric == device else "host RSS (no accelerator)"
    return _bars(
        table, metric, 2**20, f"peak {what} (MiB)", f"Peak {what} - {dataset}",
        out / f"memory_{dataset}",
    )  # fmt: skip


def accuracy_curves(
    history: pd.DataFrame, keys: list[str], dataset: str, out: Path, names: dict | None = None
) -> Path:
    """Validation accuracy per epoch, one line per group (mean over seeds, ±std band),
    labelled by ``names`` (group key -> label) where given.

    Markers show each epoch's phase; a dashed line marks where a phase changes.
    """
    names = names or {}
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    text = {k: history[k].map(lambda v: "-" if v is None or v != v else str(v)) for k in keys}
    history = history.assign(**{k: v for k, v in text.items() if history[k].dtype == object})
    by_epoch = history.groupby([*keys, "epoch"], dropna=False).agg(
        mean=("val_accuracy", "mean"), std=("val_accuracy", "std"), phase=("phase", "first")
    )
    for index, (key, rows) in enumerate(by_epoch.groupby(level=keys, dropna=False)):
        rows = rows.reset_index().sort_values("epoch")
        color = f"C{index % 10}"
        ax.plot(rows["epoch"], rows["mean"], color=color, label=names.get(key) or label(key))
        band = rows["std"].fillna(0)
        ax.fill_between(
            rows["epoch"], rows["mean"] - band, rows["mean"] + band, color=color, alpha=0.15
        )
        for phase, part in rows.groupby("phase"):
            marker = _PHASE_MARKERS.get(phase) or "."
            ax.scatter(part["epoch"], part["mean"], color=color, s=14, marker=marker)
        changed = rows["phase"].ne(rows["phase"].shift()).to_numpy()[1:]
        for epoch in rows["epoch"].to_numpy()[1:][changed]:
            ax.axvline(epoch - 0.5, color=color, linestyle="--", linewidth=0.8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_xlabel("epoch (dashed: phase change; o head, s fine-tune)")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"Validation accuracy per epoch - {dataset}")
    ax.legend(fontsize=7, ncol=2)
    return save(fig, out / f"val_accuracy_{dataset}")


def pareto(cost: pd.Series, accuracy: pd.Series) -> list:
    """Groups no other group beats on both lower cost and higher accuracy, cheapest first."""
    front, best = [], float("-inf")
    for key in cost.sort_values().index:
        if accuracy[key] > best:
            front.append(key)
            best = accuracy[key]
    return front


def _interval(table: pd.DataFrame, metric: str, scale: float) -> tuple[pd.Series, pd.Series]:
    """Each group's 95% interval of ``metric`` (the mean itself for a single run)."""
    mean = table[(metric, "mean")] / scale
    low = (table[(metric, "ci_low")] / scale).fillna(mean)
    high = (table[(metric, "ci_high")] / scale).fillna(mean)
    return low, high


def inseparable(cost: pd.Series, accuracy: pd.Series, low: pd.Series, high: pd.Series) -> list:
    """Groups off the front whose accuracy interval overlaps that of the front group that
    beats them (the most accurate front group at a cost no higher): the data cannot tell
    them from the front."""
    front = pareto(cost, accuracy)
    found = []
    for key in cost.index:
        if key in front:
            continue
        cheaper = [f for f in front if cost[f] <= cost[key]] or front
        beating = max(cheaper, key=lambda f: accuracy[f])
        if high[key] >= low[beating]:
            found.append(key)
    return found


TRAINING_COSTS = (
    ("train_time_s", 1.0, "training time (s)"),
    ("params_total", 1e6, "parameters (M)"),
)


@dataclass(frozen=True)
class Panels:
    """Which trade-off figure to draw.

    Attributes:
        costs: One panel per ``(metric, scale, axis label)``: training time and parameters
            by default; the Serving section passes latency and size.
        name: The file's stem, before ``_<dataset>``.
        title: The figure's title, before `` - <dataset>``.
    """

    costs: tuple = TRAINING_COSTS
    name: str = "tradeoff"
    title: str = "Accuracy against cost"


def tradeoff(
    table: pd.DataFrame, metric: str, dataset: str, out: Path, panels: Panels = Panels()
) -> Path:
    """Accuracy against each cost, the trade-off front drawn, every point with its 95%
    intervals; hollow points are off the front but not separable from it (their accuracy
    interval overlaps the front's).

    Args:
        table: A comparison-style table (``(metric, stat)`` columns), one point per row.
        metric: The accuracy on the y axis.
        dataset: For the title and the file name.
        out: The figures folder.
        panels: Which costs, file name and title; training cost by default.
    """
    costs = panels.costs
    accuracy = table[(metric, "mean")]
    acc_low, acc_high = _interval(table, metric, 1.0)
    fig, axes = plt.subplots(1, len(costs), figsize=(5 * len(costs), 3.8), squeeze=False)
    for ax, (cost_metric, scale, xlabel) in zip(axes[0], costs, strict=True):
        cost = table[(cost_metric, "mean")] / scale
        cost_low, cost_high = _interval(table, cost_metric, scale)
        front = pareto(cost, accuracy)
        close = inseparable(cost, accuracy, acc_low, acc_high)
        ax.errorbar(
            cost, accuracy, yerr=[accuracy - acc_low, acc_high - accuracy],
            xerr=[cost - cost_low, cost_high - cost], fmt="none", ecolor="#bbbbbb", capsize=2,
        )  # fmt: skip
        others = [k for k in table.index if k not in front and k not in close]
        ax.scatter(cost[others], accuracy[others], color="#999999")
        if close:
            ax.scatter(cost[close], accuracy[close], facecolors="none", edgecolors="#c44e52",
                       label="not separable from the front")  # fmt: skip
        ax.plot(cost[front], accuracy[front], "-o", color="#c44e52", label="trade-off front")
        for key in table.index:
            ax.annotate(label(key), (cost[key], accuracy[key]), fontsize=8,
                        xytext=(4, 4), textcoords="offset points")  # fmt: skip
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{metric} (95% CI)")
        ax.legend(fontsize=8)
    fig.suptitle(f"{panels.title} - {dataset}")
    return save(fig, out / f"{panels.name}_{dataset}")


def critical_difference(ranking, out: Path) -> Path:
    """Mean ranks across datasets on one axis (1 = best, left), Nemenyi's critical
    difference drawn above it, and a bar under every run of groups the data does not
    separate (Demšar 2006)."""
    means = ranking.mean_ranks
    k = len(means)
    fig, ax = plt.subplots(figsize=(8, 1.6 + 0.3 * k))
    ax.hlines(0, 1, k, color="black", linewidth=1)
    for tick in range(1, k + 1):
        ax.vlines(tick, -0.05, 0.05, color="black", linewidth=1)
        ax.text(tick, 0.12, str(tick), ha="center", fontsize=8)
    ax.hlines(0.45, 1, 1 + ranking.cd, color="#c44e52", linewidth=2)
    ax.text(1 + ranking.cd / 2, 0.55, f"CD {ranking.cd:.2f}", ha="center", fontsize=8)
    for index, (name, rank) in enumerate(means.items()):
        depth = -0.35 - 0.3 * index
        ax.vlines(rank, depth, 0, color="#4c72b0", linewidth=0.8)
        ax.text(rank, depth - 0.05, f"{name} ({rank:.2f})", ha="center", va="top", fontsize=8)
    names, runs = list(means.index), []
    for i in range(k):
        together = [j for j in range(i, k) if not _separated(ranking, names[i], names[j])]
        last = together[-1]
        if last > i and not any(a <= i and last <= b for a, b in runs):
            runs.append((i, last))
    for level, (i, j) in enumerate(runs):
        ax.hlines(-0.15 - 0.08 * level, means.iloc[i] - 0.03, means.iloc[j] + 0.03,
                  color="black", linewidth=3)  # fmt: skip
    ax.set_xlim(0.5, k + 0.5)
    ax.set_ylim(-0.6 - 0.3 * k, 0.8)
    ax.axis("off")
    ax.set_title(f"Mean rank over {len(ranking.scores)} datasets ({ranking.test})", fontsize=9)
    return save(fig, out / "critical_difference")


def _separated(ranking, a: str, b: str) -> bool:
    return (a, b) in ranking.separated or (b, a) in ranking.separated
