"""How the race's closed test splits its level, by group or by size, on the same simulated
races.

The race tests each set of hypotheses that can be true together (a way the entrants fall
into groups of equal ones) by a weighted Bonferroni. bench splits the level equally among
a set's groups, and a group's share among its pairs (``bench.core.stats.divisors``); the
verdict, and the race until 2026-12-06, hold every pair of a set to the level over the
set's size. Both hold the level; they spend it differently. ``python
benchmarks/closure_split.py`` runs the race's own rounds (``calibration.race_rounds``) on
the same draws under each split, in shapes beyond the calibration's single leader, and
prints, per shape and split, how often the race names the truly best candidate the winner,
how often it claims something false, and the share of the grid's runs it spends.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from unittest import mock

import numpy as np

from bench.core import stats
from bench.core.race_settings import Settings

sys.path.insert(0, str(Path(__file__).parent))
import calibration  # noqa: E402  (benchmarks/ is not a package)

BY_GROUP = stats.divisors  # the race's own split
SD = 0.02  # seed sd, as the calibration's default (2 points)
SHAPES = {  # name: (candidates, configurations each, the true means' offsets in sd)
    "one 2 sd ahead of four": (5, 1, lambda rng: np.array([2.0, 0, 0, 0, 0])),
    "five in steps of 0.5 sd": (5, 1, lambda rng: np.array([2.0, 1.5, 1, 0.5, 0])),
    "five in steps of 1 sd": (5, 1, lambda rng: np.array([4.0, 3, 2, 1, 0])),
    "five drawn with sd 1": (5, 1, lambda rng: rng.standard_normal(5)),
    "five drawn with sd 2": (5, 1, lambda rng: 2 * rng.standard_normal(5)),
    "eight drawn with sd 2": (8, 1, lambda rng: 2 * rng.standard_normal(8)),
    "3 x 3 configs, one 2 sd ahead": (3, 3, lambda rng: np.array([2.0] + [0] * 8)),
    "3 x 3 configs drawn with sd 2": (3, 3, lambda rng: 2 * rng.standard_normal(9)),
}


def run(shape: str, studies: int, seed: int) -> dict:
    """The shape's races under each split, on the same draws."""
    settings = Settings(min_seeds=3, max_seeds=10, margin=1.0)
    found = {}
    for split, divisors in (("by group", BY_GROUP), ("by size", stats.by_size)):
        with mock.patch.object(stats, "divisors", divisors):  # closed_step reads it there
            found[split] = _races(shape, studies, seed, settings)
    return found


def _races(shape: str, studies: int, seed: int, settings: Settings) -> dict:
    """The shape's races under the split in place: named the best, false claims, runs."""
    _, configs, offsets = SHAPES[shape]
    rng, named, false, runs = np.random.default_rng(seed), 0, 0, 0
    for _ in range(studies):
        means = 0.5 + SD * offsets(rng)
        x = means[:, None] + calibration.draws(rng, len(means), 10, "gaussian", SD)
        entrants, claims, seeds = calibration.race_rounds(x, settings, configs)
        left = {e.candidate for e in entrants if e.racing}
        named += left == {f"c{int(np.argmax(means)) // configs}"}
        false += calibration.wrong(claims, means, 0.01, configs)
        runs += sum(e.upto(seeds) for e in entrants)
    return {"names the best": calibration._rate(named, studies),
            "false claims": calibration._rate(false, studies),
            "share of grid": round(runs / studies / (len(means) * 10), 3)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=1000, help="per shape")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    for shape in SHAPES:
        print(json.dumps({"shape": shape, **run(shape, args.studies, args.seed)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
