"""Budget curves (Dodge et al. 2019, "Show Your Work"): how good each candidate gets as its
tuning budget grows.

A trial is one completed run of a candidate (one configuration at one seed; diverged runs
at chance), as in allentune. Over a candidate's N trials, the expected best validation
accuracy of n trials drawn with replacement is allentune's ``samplemax``:

    E[max of n] = sum_i v_(i) [(i / N)^n - ((i - 1) / N)^n]

over the sorted scores v_(1) <= ... <= v_(N); its band is the standard deviation of that
maximum (allentune's ``_compute_variance``). The same weights applied to the trials' test
accuracies, in the order of their validation accuracies, give the expected test accuracy of
the run that n trials would select. The estimator is biased (Tang et al. 2020), but makes
fewer wrong "A beats B" calls than the unbiased one (Dodge, Card et al. 2021).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis.select import Choice, Study


def weights(total: int, n: int) -> np.ndarray:
    """P(the i-th smallest of ``total`` scores is the max of ``n`` draws with replacement)."""
    i = np.arange(1, total + 1)
    return (i / total) ** n - ((i - 1) / total) ** n


def expected_max(values: Sequence[float], n: int) -> float:
    """allentune's ``samplemax`` at ``n``: the expected best of ``n`` of ``values``."""
    ordered = np.sort(np.asarray(values, dtype=float))
    return float(weights(len(ordered), n) @ ordered)


def trials(choice: Choice) -> pd.DataFrame:
    """One row per trial of a candidate: validation, test and training hours."""
    rows = [
        {"val": v, "test": s.test.get(seed, np.nan), "hours": s.hours.get(seed, np.nan)}
        for s in choice.settings
        for seed, v in s.val.items()
    ]
    return pd.DataFrame(rows, columns=["val", "test", "hours"])


def curve(choice: Choice) -> pd.DataFrame:
    """A candidate's curve: n = 1..N trials, the expected best validation accuracy and its
    band, the expected test accuracy of what n trials select, and the hours n trials take."""
    found = trials(choice).sort_values("val", kind="stable").reset_index(drop=True)
    # Trials tied on validation are equally likely to be the one selected.
    found["test"] = found.groupby("val")["test"].transform("mean")
    values, total = found["val"].to_numpy(), len(found)
    rows = []
    for n in range(1, total + 1):
        w = weights(total, n)
        mean = float(w @ values)
        spread = float(np.sqrt(w @ (values - mean) ** 2))
        rows.append({
            "candidate": choice.label, "n": n, "hours": n * float(found["hours"].mean()),
            "expected_best_val": mean, "band_low": mean - spread,
            "band_high": min(mean + spread, float(values.max())),
            "expected_test": float(w @ found["test"].to_numpy()),
        })  # fmt: skip
    return pd.DataFrame(rows)


def curves(found: Study) -> pd.DataFrame:
    """Every candidate's curve for one dataset (the CSV the report writes)."""
    frames = [curve(c) for c in found.choices if c.trials]
    return pd.concat(frames, ignore_index=True).assign(dataset=found.dataset)


def leads(table: pd.DataFrame) -> str | None:
    """Which candidate leads at 1 trial and at the most trials every candidate has, and
    where the lead changes; None with fewer than two candidates."""
    wide = table.pivot(index="n", columns="candidate", values="expected_best_val").dropna()
    if wide.shape[1] < 2 or wide.empty:
        return None
    first, last = wide.index[0], wide.index[-1]
    ahead = wide.idxmax(axis=1)
    text = f"With {first} trial, {ahead[first]} leads"
    if last == first:
        return text + " (expected best validation accuracy)."
    text += f"; with {last} trials, {ahead[last]}"
    steps = zip(wide.index[:-1], wide.index[1:], strict=True)
    changes = [n for prev, n in steps if ahead[n] != ahead[prev]]
    if changes:
        where = ", ".join(str(n) for n in changes)
        text += f"; the lead changes at {where} trial{'s' * (changes != [1])}"
    else:
        text += ", the same throughout"
    return text + " (expected best validation accuracy of n trials, Dodge et al. 2019)."


def plot(table: pd.DataFrame, dataset: str, out: Path) -> Path:
    """Expected best validation accuracy against trials and against training hours, one
    line per candidate with its band."""
    from bench.analysis import plots

    fig, axes = plots.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for candidate, part in table.groupby("candidate", sort=False):
        for ax, x in zip(axes, ("n", "hours"), strict=True):
            line = ax.plot(part[x], part["expected_best_val"], marker="o", ms=3, label=candidate)
            ax.fill_between(part[x], part["band_low"], part["band_high"], alpha=0.15,
                            color=line[0].get_color())  # fmt: skip
    axes[0].set_xlabel("tuning trials (runs)")
    axes[1].set_xlabel("training hours")
    axes[0].set_ylabel("expected best validation accuracy")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Budget curves - {dataset}")
    return plots.save(fig, out / f"budget_{dataset}")
