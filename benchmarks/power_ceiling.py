"""The most power any race or verdict of bench's family can have: one look at ``n`` seeds,
the seed noise known (z tests, no noise to estimate), every pair of candidates in the family.

    python benchmarks/power_ceiling.py [--studies 4000] [--seeds 10] [--lead 2]

One candidate leads the rest by ``lead`` seed standard deviations; the rest are equal. A
study "names the winner" when the family's adjustment at level 0.05 shows the leader better
than every other candidate: Holm's step-down over all k(k-1)/2 pairs; Bergmann and
Hommel's closed test (bench.core.stats.exhaustive), each set's level split by its size, which
the verdict uses; and the race's closed test since 2026-12-06, each set's level split among
its groups (bench.core.stats.divisors).
bench's race estimates each candidate's noise
from the seeds and looks after every round, so its power is below this line
(docs/statistics.md): the line says what the level over every pair costs by itself.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats

from bench.core.stats import by_size, divisors, exhaustive


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


def named_closed(means: np.ndarray, seeds: int, alpha: float, by_group: bool = False) -> bool:
    """Whether the closed test over every pair shows candidate 0 better than each other one:
    a pair is rejected when every exhaustive set holding it holds a pair whose p-value is
    at most the level over that pair's divisor in the set: the set's size, or (``by_group``)
    its groups times the pairs in the pair's group."""
    k, se = len(means), np.sqrt(2 / seeds)
    i, j = np.triu_indices(k, 1)  # combinations order, as exhaustive's columns
    p = 2 * stats.norm.sf(np.abs(means[i] - means[j]) / se)
    sets = exhaustive(k)
    split = divisors(k) if by_group else by_size(k)
    rejected = (sets & (p * np.maximum(split, 1) <= alpha)).any(axis=1)
    shown = [rejected[sets[:, h]].all() and means[0] > means[j[h]] for h in range(k - 1)]
    return all(shown)  # pairs (0, 1) ... (0, k - 1) come first


def power(k: int, seeds: int, lead: float, studies: int, rng, alpha: float = 0.05):
    """The share of ``studies`` simulated studies that name the leader: Holm's, the closed
    test's split by size, and split by group."""
    holm = closed = grouped = 0
    for _ in range(studies):
        means = rng.normal(0, 1 / np.sqrt(seeds), k)
        means[0] += lead
        holm += named(means, seeds, alpha)
        closed += named_closed(means, seeds, alpha)
        grouped += named_closed(means, seeds, alpha, by_group=True)
    return holm / studies, closed / studies, grouped / studies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=4000)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--lead", type=float, default=2.0)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for k in (2, 5, 8):
        found_by = power(k, args.seeds, args.lead, args.studies, rng)
        names = ("Holm", "closed test, split by size", "closed test, split by group")
        for name, found in zip(names, found_by, strict=True):
            half = 100 * 1.96 * np.sqrt(found * (1 - found) / args.studies)
            low, high = 100 * found - half, 100 * found + half
            print(f"{k} candidates, {args.seeds} seeds, lead {args.lead:g} sd, {name}: "
                  f"{100 * found:.1f}% [{low:.1f}, {high:.1f}]")  # fmt: skip


if __name__ == "__main__":
    main()
