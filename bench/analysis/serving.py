"""What each group's kept models cost to serve: one dataset's Serving table, its fronts and
its sentences, from the ``serving.<format>.<figure>`` columns of the runs table.

Every figure is a mean over the group's runs (seeds) with its 95% interval, as in the
comparison table. A format's accuracy change from float32 is paired over runs: the same
trained model, exported twice. The budget sentences choose among LiteRT exports, whose
latency is timed with one thread; the SavedModel's runs on TensorFlow's own thread pools.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from bench.analysis import plots, tables
from bench.analysis.tables import Comparison
from bench.core import stats
from bench.core.record import FIGURES

SAVED_MODEL = "saved_model"
ORDER = (SAVED_MODEL, "float32", "float16", "dynamic_int8", "int8")
MEASURES = [f for f in FIGURES if not f.startswith("threads")]
COSTS = (("p50_ms", 1.0, "p50 latency at batch 1, 1 thread (ms)"), ("size_bytes", 1e6, "size (MB)"))
INT8, FLOAT32 = "int8", "float32"


@dataclass
class Serving:
    """One dataset's serving figures: a row per group and format, and the accuracy change
    of each format from the group's float32 export (paired over the group's runs)."""

    table: pd.DataFrame
    change: dict = field(default_factory=dict)  # (group key..., format) -> stats.Difference
    threads: dict = field(default_factory=dict)  # (group key..., format) -> (fewest, most)
    cpus: list[str] = field(default_factory=list)
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per run and format

    def seeds(self, key) -> dict[int, float]:
        """``{seed: accuracy}`` of one group's format."""
        keys = list(self.table.index.names)
        mine = (self.runs[keys] == pd.Series(key, index=keys)).all(axis=1)
        return _by_seed(self.runs[mine])

    @property
    def exports(self) -> pd.DataFrame:
        """The LiteRT rows only (the formats the budget sentences choose among)."""
        formats = self.table.index.get_level_values("format")
        return self.table[formats != SAVED_MODEL]


def long(comparison: Comparison) -> pd.DataFrame:
    """One row per run and measured format: the group's keys, the run's seed, the format
    and its figures."""
    names = list(comparison.table.index.names)
    rows = []
    for key, runs in comparison.members.items():
        group = dict(zip(names, key if isinstance(key, tuple) else (key,), strict=True))
        for _, run in runs.iterrows():
            for name in _formats(runs.columns):
                if pd.isna(run.get(f"serving.{name}.accuracy")):
                    continue
                figures = {f: run.get(f"serving.{name}.{f}") for f in FIGURES}
                rows.append({**group, "format": name, "seed": int(run["seed"]), **figures,
                             "host_cpu": run.get("serving.host_cpu")})  # fmt: skip
    frame = pd.DataFrame(rows)
    if not frame.empty:  # a missing key (a sweep over null and a value) is a group too
        frame[names] = frame[names].astype(object).where(frame[names].notna(), "-")
    return frame


def _formats(columns) -> list[str]:
    found = {c.split(".")[1] for c in columns if c.startswith("serving.") and c.count(".") == 2}
    return _ordered(found)


def _ordered(names) -> list[str]:
    return sorted(names, key=lambda f: (ORDER.index(f) if f in ORDER else len(ORDER), f))


def serving(comparison: Comparison) -> Serving | None:
    """The dataset's serving figures, or None when none of its runs was served."""
    frame = long(comparison)
    if frame.empty:
        return None
    keys = [*comparison.table.index.names, "format"]
    frame["format"] = pd.Categorical(frame["format"], _ordered(frame["format"].unique()))
    grouped = frame.groupby(keys, sort=True, observed=True)
    table = tables.with_intervals(grouped[MEASURES].agg(["mean", "std", "count"]))
    parts = dict(list(grouped))
    threads = {k: (int(p["threads"].min()), int(p["threads_all"].max())) for k, p in parts.items()}
    change = {}
    for key, part in parts.items():
        base = parts.get((*key[:-1], FLOAT32))
        if key[-1] != FLOAT32 and base is not None:
            change[key] = same_models(_by_seed(part), _by_seed(base))
    change = {key: d for key, d in change.items() if d is not None}
    return Serving(table, change, threads, sorted(set(frame["host_cpu"].dropna())), frame)


def same_models(a: dict[int, float], b: dict[int, float]) -> stats.Difference | None:
    """Two formats' accuracies compared on the runs both were measured for (the same
    trained models exported twice); None when they share no run."""
    shared = sorted(set(a) & set(b))
    if not shared:
        return None
    return stats.compare({s: a[s] for s in shared}, {s: b[s] for s in shared})


def _by_seed(part: pd.DataFrame) -> dict[int, float]:
    return {int(s): float(v) for s, v in part.groupby("seed")["accuracy"].mean().items()}


def display(found: Serving) -> pd.DataFrame:
    """The Serving table as the report shows it: one row per group and format."""
    shown = tables.display(found.table).rename(columns={"size_MiB": "size_MB"})
    # MB, not MiB: what a download or a flash budget is stated in.
    sizes = found.table[["size_bytes"]].rename(columns={"size_bytes": "size_MB"}, level=0)
    scale = [1 if stat == "count" else 1e6 for _, stat in sizes.columns]
    shown["size_MB"] = tables.display(sizes / scale)["size_MB"]
    shown.insert(0, "threads", [f"{a} / {b}" for a, b in (found.threads[k] for k in shown.index)])
    shown = shown.rename(columns={"p50_ms": "p50_ms (fewest threads)",
                                  "p50_ms_all": "p50_ms (most threads)"})  # fmt: skip
    shown["accuracy change from float32"] = [
        _change(found.change.get(key)) for key in found.table.index
    ]
    return shown.reset_index()


def _change(d: stats.Difference | None) -> str:
    if d is None:
        return "-"
    if not d.tested:
        return f"{d.value * 100:+.2f} points (one run)"
    low, high = d.interval
    return f"{d.value * 100:+.2f} points (95% CI {low * 100:+.2f} to {high * 100:+.2f}; {_over(d)})"


def _over(d: stats.Difference) -> str:
    if d.test == stats.PAIRED:
        return f"paired over {d.pairs} runs"
    return f"{d.test} on {d.n_a} and {d.n_b} runs"


def fronts(found: Serving, dataset: str, out) -> object:
    """Accuracy against batch-1 latency and against size, every group and export one point."""
    panels = plots.Panels(COSTS, "serving", "Accuracy against serving cost (LiteRT exports)")
    return plots.tradeoff(found.exports, "accuracy", dataset, out, panels)


def sentences(found: Serving, latency_ms: float, size_mb: float) -> list[str]:
    """The serving verdict: the most accurate export within each budget, and what int8
    costs and saves against float32, each with its footing."""
    where = " or ".join(found.cpus) or "an unnamed CPU"
    exports = found.exports
    if exports.empty:
        return ["No LiteRT export was measured (see the formats' reasons in the records)."]
    lines = [
        _within(found, ("p50_ms", "mean"), latency_ms, 1.0,
                f"{latency_ms:g} ms per image at batch 1 on {where} (p50, one thread)", "ms"),
        _within(found, ("size_bytes", "mean"), size_mb, 1e6, f"{size_mb:g} MB", "MB"),
    ]  # fmt: skip
    quantized = _int8(found)
    return lines + ([quantized] if quantized else [])


def _within(found: Serving, cost, budget: float, scale: float, what: str, unit: str) -> str:
    """The most accurate export whose mean ``cost`` is within ``budget``, and how it
    compares with the best export of another model that fits (paired by seed)."""
    exports = found.exports
    fits = exports[exports[cost] / scale <= budget]
    if fits.empty:
        cheapest = (exports[cost] / scale).idxmin()
        return (
            f"No LiteRT export is within {what}: the cheapest is {_name(cheapest)} at "
            f"{exports.loc[cheapest, cost] / scale:.2f} {unit}."
        )
    accuracy = fits[("accuracy", "mean")]
    # The most accurate; of equally accurate exports, the cheapest.
    ranked = sorted(fits.index, key=lambda k: (-accuracy[k], fits.loc[k, cost]))
    top = ranked[0]
    text = (
        f"Most accurate within {what}: {_name(top)} with accuracy {_mean(fits, top)}, "
        f"{fits.loc[top, cost] / scale:.2f} {unit}"
    )
    others = [k for k in ranked if k[:-1] != top[:-1]]
    if others:
        text += "; " + _against(found, top, others[0], fits)
    return text + f" ({len(fits)} of {len(exports)} exports fit)."


def _against(found: Serving, top, other, fits: pd.DataFrame) -> str:
    """The pick against the best export of another model, on the seeds both ran."""
    d = stats.compare(found.seeds(top), found.seeds(other))
    theirs = f"{_name(other)} with {_mean(fits, other)}"
    if not d.tested:
        return f"the best other model within it: {theirs}, not tested"
    low, high = d.interval
    how = f"paired t over {d.pairs} seeds both ran" if d.test == stats.PAIRED else d.test
    footing = f"{how}: 95% CI [{low * 100:+.1f}, {high * 100:+.1f}] points"
    if d.significant and d.value > 0:
        return f"ahead of {theirs} by {d.value * 100:.1f} points ({footing})"
    if d.significant:  # higher on average, lower on the seeds both ran
        return f"behind {theirs} on the seeds both ran by {-d.value * 100:.1f} points ({footing})"
    return f"not distinguishable from {theirs} ({footing})"


def _mean(table: pd.DataFrame, key) -> str:
    row = table.loc[key, "accuracy"]
    if int(row["count"]) < 2:
        return f"{row['mean']:.3f} (one run)"
    return (
        f"{row['mean']:.3f} (mean of {int(row['count'])} seeds, 95% CI {row['ci_low']:.3f} "
        f"to {row['ci_high']:.3f})"
    )


def _name(key) -> str:
    return f"{plots.label(key[:-1])} as {key[-1]}"


def _int8(found: Serving) -> str | None:
    """Full-integer int8 against float32 for every group that has both."""
    table, parts = found.table, []
    for key, d in found.change.items():
        if key[-1] != INT8:
            continue
        base = (*key[:-1], FLOAT32)
        parts.append(
            f"{plots.label(key[:-1])}: {_change(d)} of accuracy, "
            f"{_relative(table, key, base, 'size_bytes', 'smaller', 'larger')}, p50 latency "
            f"{_relative(table, key, base, 'p50_ms', 'lower', 'higher')}"
        )
    if not parts:
        return None
    return (
        "Full-integer int8 against float32 (the same trained models exported twice; one "
        "thread, batch 1): " + "; ".join(parts) + "."
    )


def _relative(table: pd.DataFrame, key, base, measure: str, less: str, more: str) -> str:
    ratio = table.loc[key, (measure, "mean")] / table.loc[base, (measure, "mean")]
    return f"{abs(1 - ratio) * 100:.0f}% {less if ratio <= 1 else more}"
