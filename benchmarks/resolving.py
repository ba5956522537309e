"""How many of a verdict's pairs each analysis resolves: paired by seed and Holm-adjusted
(what the report does), against Welch's unpaired t on the same runs, with and without Holm.

``python benchmarks/resolving.py RUNS_DIR`` reads the records in ``RUNS_DIR`` and prints, as
JSON per dataset: the family of pairs the verdict states (each distinct pair once), and for
each analysis the pairs it resolves at 95%.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.analysis import load, pairs, plots, tables
from bench.core import stats


def _unpaired(seeds: dict[int, float], offset: int) -> dict[int, float]:
    # Welch's t on the same runs: seeds that match no seed of the other side.
    return {seed + offset: value for seed, value in seeds.items()}


def resolving(comparison: tables.Comparison) -> dict:
    """The family's distinct pairs and which ones each analysis resolves."""
    metric = pairs.primary_metric(comparison.table)
    family = pairs.distinct(pairs.family(comparison, metric))
    welch = [
        stats.compare(
            comparison.seeds(metric, p.a), _unpaired(comparison.seeds(metric, p.b), 10**6)
        )
        for p in family
    ]
    names = [f"{p.label_a} vs {p.label_b}" for p in family]

    def resolved(found: list[stats.Difference]) -> list[str]:
        return [name for name, d in zip(names, found, strict=True) if d.significant]

    return {
        "metric": metric,
        "pairs": names,
        "paired_holm": resolved([p.difference for p in family]),
        "welch": resolved(welch),
        "welch_holm": resolved(stats.holm(welch)),
        "best": plots.label(pairs.best(comparison.table, metric)),
    }


def main(argv: list[str] | None = None) -> int:
    (runs_dir,) = argv if argv is not None else sys.argv[1:]
    found = tables.comparisons(load.from_records(Path(runs_dir)).runs)
    print(json.dumps({name: resolving(c) for name, c in found.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
