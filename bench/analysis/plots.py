"""The report's figures (matplotlib, written as PNG and SVG).

Each function takes one dataset's comparison table (``bench.analysis.tables.compare``) or its
epochs, draws one view and returns the PNG path.
"""

from __future__ import annotations

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


def _save(fig, path: Path) -> Path:
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
    return _save(fig, path)


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


def accuracy_curves(history: pd.DataFrame, keys: list[str], dataset: str, out: Path) -> Path:
    """Validation accuracy per epoch, one line per group (mean over seeds, ±std band).

    Markers show each epoch's phase; a dashed line marks where a phase changes.
    """
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    text = {k: history[k].map(lambda v: "-" if v is None or v != v else str(v)) for k in keys}
    history = history.assign(**{k: v for k, v in text.items() if history[k].dtype == object})
    by_epoch = history.groupby([*keys, "epoch"], dropna=False).agg(
        mean=("val_accuracy", "mean"), std=("val_accuracy", "std"), phase=("phase", "first")
    )
    for index, (key, rows) in enumerate(by_epoch.groupby(level=keys, dropna=False)):
        rows = rows.reset_index().sort_values("epoch")
        color = f"C{index % 10}"
        ax.plot(rows["epoch"], rows["mean"], color=color, label=label(key))
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
    return _save(fig, out / f"val_accuracy_{dataset}")


def pareto(cost: pd.Series, accuracy: pd.Series) -> list:
    """Groups no other group beats on both lower cost and higher accuracy, cheapest first."""
    front, best = [], float("-inf")
    for key in cost.sort_values().index:
        if accuracy[key] > best:
            front.append(key)
            best = accuracy[key]
    return front


def tradeoff(table: pd.DataFrame, metric: str, dataset: str, out: Path) -> Path:
    """Accuracy against training time and against parameters, the trade-off front drawn."""
    accuracy = table[(metric, "mean")]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, (cost_metric, scale, xlabel) in zip(
        axes,
        [("train_time_s", 1.0, "training time (s)"), ("params_total", 1e6, "parameters (M)")],
        strict=True,
    ):
        cost = table[(cost_metric, "mean")] / scale
        front = pareto(cost, accuracy)
        ax.scatter(cost, accuracy, color="#999999")
        ax.plot(cost[front], accuracy[front], "-o", color="#c44e52", label="trade-off front")
        for key in table.index:
            ax.annotate(label(key), (cost[key], accuracy[key]), fontsize=8,
                        xytext=(4, 4), textcoords="offset points")  # fmt: skip
        ax.set_xlabel(xlabel)
        ax.set_ylabel(metric)
        ax.legend(fontsize=8)
    fig.suptitle(f"Accuracy against cost - {dataset}")
    return _save(fig, out / f"tradeoff_{dataset}")
