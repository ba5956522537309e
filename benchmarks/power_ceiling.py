"""The most power any race or verdict of bench's family can have: one look at ``n`` seeds,
the seed noise known (z tests, no noise to estimate), Holm over every pair of candidates.

    python benchmarks/power_ceiling.py [--studies 4000] [--seeds 10] [--lead 2]

One candidate leads the rest by ``lead`` seed standard deviations; the rest are equal. A
study "names the winner" when Holm, over all k(k-1)/2 pairs at level 0.05, shows the
leader better than every other candidate. bench's race estimates each candidate's noise
from the seeds and looks after every round, so its power is below this line
(docs/statistics.md): the line says what the level over every pair costs by itself.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats


def named(means: np.ndarray, seeds: int, alpha: float) -> bool:
    """Whether Holm over every pair shows candidate 0 better than each other one."""
    k, se = len(means), np.sqrt(2 / seeds)
    tests = []
    for i in range(k):
        for j in range(i + 1, k):
            z = (means[i] - means[j]) / se
            tests.append((2 * stats.norm.sf(abs(z)), (i, j) if z > 0 else (j, i)))
    tests.sort()
    shown = set()
    for rank, (p, better_worse) in enumerate(tests):
        if p > alpha / (len(tests) - rank):
            break
        shown.add(better_worse)
    return all((0, j) in shown for j in range(1, k))


def power(k: int, seeds: int, lead: float, studies: int, rng, alpha: float = 0.05) -> float:
    """The share of ``studies`` simulated studies that name the leader."""
    hits = 0
    for _ in range(studies):
        means = rng.normal(0, 1 / np.sqrt(seeds), k)
        means[0] += lead
        hits += named(means, seeds, alpha)
    return hits / studies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=4000)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--lead", type=float, default=2.0)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for k in (2, 5, 8):
        found = power(k, args.seeds, args.lead, args.studies, rng)
        half = 100 * 1.96 * np.sqrt(found * (1 - found) / args.studies)
        low, high = 100 * found - half, 100 * found + half
        print(f"{k} candidates, {args.seeds} seeds, lead {args.lead:g} sd: "
              f"{100 * found:.1f}% [{low:.1f}, {high:.1f}]")  # fmt: skip


if __name__ == "__main__":
    main()
