"""How often the verdict and the race are wrong, against the level they state: a Monte Carlo
of their own decision code.

``python benchmarks/calibration.py`` simulates studies of ``k`` candidates over ``n`` seeds,
seed noise of one standard deviation (``--sd`` points) per run, and hands each study to the
code that decides: the verdict's family (bench.analysis.pairs.family, on a Study built from
the simulated values) and the race's rounds (bench.core.racing: decide, apply, stop, as
bench.launch.race runs them, with the records replaced by the simulated values). Cells:

- candidates: 2, 5, 8;
- seeds: the verdict at 3, 5 and 10; the race from ``min_seeds=3`` to ``max_seeds=10``;
- noise: Gaussian, heavy-tailed (t with 3 degrees of freedom, scaled to the same sd), and
  Gaussian with one candidate three times noisier than the rest;
- effect: none, or one candidate ahead by 1 or 2 sd;
- partial no-effect cells ("two tied"): the two best candidates equal, the others 1.5 or 3
  sd behind, 10 seeds, Gaussian noise. Drops of the clear losers free level for later
  comparisons (the closed test's later steps) and lend their seeds to a race's noise
  layout, so these cells test the steps after the first, where every claim between the two
  best is false;
- and tuned races (the race only): 3 candidates x 3 configurations, 3 to 10 seeds, Gaussian
  noise, with every configuration equal, one candidate's first configuration 2 sd ahead, or
  each candidate's configurations 0, 1 and 2 sd behind its first ("configs apart": every
  candidate equal at its best). A configuration dropped within its candidate is a claim
  about two configurations; a candidate dropped whole is a claim that its best is worse than
  the other's best, wrong when its true best is not below that candidate's true best.

For every cell it prints the false-claim rate (any claim that is wrong: a difference in the
wrong direction or where there is none, an equivalence where the truth is beyond the
margin), the power (the leader shown better than every other candidate; for the race, named
the winner) and, for the race, the seeds it spent per candidate, each with its 95% Monte
Carlo interval (Wilson's for rates). ``--bootstrap`` also measures how often the BCa
bootstrap interval of a mean difference covers the truth.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing
import time
from collections.abc import Callable

import numpy as np
from scipy import stats as scipy_stats

from bench.analysis import pairs
from bench.analysis.select import Choice, Setting, Study
from bench.core import racing, stats
from bench.core.race_settings import TESTS, Settings

NOISES = ("gaussian", "t3", "one noisier")
EFFECTS = (0.0, 1.0, 2.0)  # the leader's lead, in seed sd
TIED, GAPS = "two tied", (1.5, 3.0)  # the partial no-effect cells: the two best's lead
TUNED, APART = "3 configs each", "configs apart"  # tuned races: 3 candidates x 3 configs
CONFIGS = 3
RACE = {"min_seeds": 3}  # the race's keys beyond its defaults (--race-test, --min-seeds, --step)


def draws(rng, k: int, n: int, noise: str, sd: float) -> np.ndarray:
    """Seed noise, ``k`` candidates by ``n`` seeds, each of standard deviation ``sd``."""
    if noise == "t3":
        return sd * rng.standard_t(3, (k, n)) / math.sqrt(3.0)
    found = sd * rng.standard_normal((k, n))
    if noise == "one noisier":
        found[-1] *= 3.0  # the last candidate: never the leader of an effect cell
    return found


def truth(k: int, effect: float, sd: float, shape: str = "lead") -> np.ndarray:
    """The true means: candidate 0 ``effect`` sd ahead (``lead``; of a tuned race's
    entrants, the first), candidates 0 and 1 equal and ``effect`` sd ahead of the rest (``two
    tied``), or each tuned candidate's configurations 0, 1 and 2 sd behind its first."""
    means = np.full(k, 0.5)
    if shape == APART:
        return means - sd * (np.arange(k) % CONFIGS)
    means[: 2 if shape == TIED else 1] += effect * sd
    return means


def wrong(claims: list[tuple[int, int, str]], means: np.ndarray, margin: float,
          configs: int = 1) -> bool:  # fmt: skip
    """Whether any claim is false: (a, b, "better") says a > b; "equivalent" |a - b| < m;
    "better at best" says entrant a's candidate at its best beats entrant b's (``configs``
    entrants each), "equivalent at best" candidates a and b within m at their best."""
    best = means.reshape(-1, configs).max(axis=1)
    for a, b, kind in claims:
        if kind == "better" and not means[a] > means[b]:
            return True
        if kind == "better at best" and not best[a // configs] > best[b // configs]:
            return True
        if kind == "equivalent at best" and abs(best[a] - best[b]) >= margin:
            return True
        if kind == "equivalent" and abs(means[a] - means[b]) >= margin:
            return True
    return False


def verdict_once(x: np.ndarray, margin: float) -> list[tuple[int, int, str]]:
    """The verdict's claims on one simulated study (its pairs' outcomes)."""
    labels = [f"c{i}" for i in range(len(x))]
    choices = []
    for label, row in zip(labels, x, strict=True):
        values = {s + 1: float(v) for s, v in enumerate(row)}
        setting = Setting(label, "as configured", label, values, values, {})
        choices.append(Choice(label, (setting,), setting))
    found = Study("sim", ["backbone"], [], choices)
    claims = []
    for pair in pairs.family(found, margin=margin):
        a, b = labels.index(pair.a), labels.index(pair.b)
        outcome = pair.outcome()
        if outcome in (pairs.WORSE, pairs.BETTER):
            claims.append((a, b, "better") if pair.difference.value > 0 else (b, a, "better"))
        elif outcome == pairs.EQUIVALENT:
            claims.append((a, b, "equivalent"))
    return claims


def race_once(x: np.ndarray, settings: Settings, configs: int = 1) -> tuple[list, int, bool]:
    """One race on simulated values (``configs`` consecutive rows per candidate): its
    claims, the runs it spent, whether it named the true leader (candidate 0) the winner."""
    entrants, claims, seeds = race_rounds(x, settings, configs)
    runs = sum(e.upto(seeds) for e in entrants)
    left = {e.candidate for e in entrants if e.racing}
    return claims, runs, left == {"c0"}


def race_rounds(
    x: np.ndarray, settings: Settings, configs: int = 1,
    values: Callable[[int, dict[int, float]], dict[int, float]] | None = None,
) -> tuple[list[racing.Entrant], list[tuple[int, int, str]], int]:  # fmt: skip
    """The race's rounds on ``x``, as bench.launch.race runs them.

    Args:
        x: The metric, entrants by seeds (entrant ``i`` is candidate ``i // configs``).
        settings: The race's keys.
        configs: Consecutive rows per candidate.
        values: Makes the seed -> value mapping an entrant observes from its row number
            and that mapping (benchmarks/race_floor.py passes one that remembers the row);
            None: the mapping itself.

    Returns:
        The entrants as the race left them, its claims (better, worse, kind) and the seeds
        of its last round.
    """
    values = values or (lambda row, found: found)
    entrants = [racing.Entrant(f"c{i}", [], f"c{i // configs}") for i in range(len(x))]
    rejected, claims = frozenset(), []
    for look, seeds in enumerate(settings.looks):
        observed = {
            e.label: racing.Observed(
                values(i, {s + 1: float(x[i, s]) for s in range(e.upto(seeds))})
            )
            for i, e in enumerate(entrants)
        }
        decision = racing.decide(entrants, observed, look, settings, rejected)
        racing.apply(entrants, decision, look + 1, seeds)
        rejected = decision.rejected
        whole = {int(c[1:]) for c in decision.whole}  # candidates dropped whole
        claims += [(int(c.better[1:]), int(c.entrant[1:]),
                    "better at best" if int(c.entrant[1:]) // configs in whole and configs > 1
                    and c.kind == "across" else "better") for c, _ in decision.drops]  # fmt: skip
        leader = int(decision.leader[1:]) if decision.leader else 0
        same = "equivalent at best" if configs > 1 else "equivalent"  # candidates' labels
        claims += [(leader, int(c[1:]), same) for c in decision.equivalent]
        if racing.stop(entrants, decision, seeds, settings, 0.0):
            break
    return entrants, claims, seeds


def _cell(task: tuple) -> dict:
    kind, k, n, noise, effect, studies, sd, margin, seed, *rest = task
    shape = rest[0] if rest else "lead"
    rng = np.random.default_rng(seed)
    means = truth(k, effect, sd, shape)
    configs = CONFIGS if shape in (TUNED, APART) else 1
    false = power = spent = 0
    settings = Settings(**{**RACE, "max_seeds": n, "margin": margin * 100})
    for _ in range(studies):
        x = means[:, None] + draws(rng, k, n, noise, sd)
        if kind == "verdict":
            claims = verdict_once(x, margin)
            won = all((0, j, "better") in claims for j in range(1, k))
        else:
            claims, runs, won = race_once(x, settings, configs)
            spent += runs
        false += wrong(claims, means, margin, configs)
        power += won
    found = {"kind": kind, "k": k, "seeds": n, "noise": noise, "lead_sd": effect,
             "shape": shape, "studies": studies, "false_claims": _rate(false, studies)}  # fmt: skip
    if effect and shape not in (TIED, APART):
        found["power"] = _rate(power, studies)
    if kind == "race":
        found["seeds_per_candidate"] = round(spent / studies / k, 2)  # per entrant, tuned
        found["share_of_grid"] = round(spent / studies / (k * n), 3)
    return found


def _rate(hits: int, total: int) -> dict:
    low, high = stats.wilson(hits, total)
    return {"rate": round(hits / total, 4), "ci95": [round(low, 4), round(high, 4)]}


def bootstrap_coverage(rng, studies: int) -> list[dict]:
    """How often the BCa bootstrap interval of a mean difference covers the truth (0)."""
    found = []
    for n, noise in itertools.product((5, 10, 20, 40), ("gaussian", "t3")):
        cover = 0
        for _ in range(studies):
            d = rng.standard_normal(n) if noise == "gaussian" else rng.standard_t(3, n)
            ci = scipy_stats.bootstrap((d,), np.mean, n_resamples=999, random_state=rng)
            cover += ci.confidence_interval.low <= 0 <= ci.confidence_interval.high
        found.append({"pairs": n, "noise": noise, "coverage": _rate(cover, studies)})
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=2000, help="per cell")
    parser.add_argument("--sd", type=float, default=2.0, help="seed sd, accuracy points")
    parser.add_argument("--margin", type=float, default=1.0, help="accuracy points")
    parser.add_argument("--only", choices=("verdict", "race"), default=None)
    parser.add_argument("--bootstrap", action="store_true")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--race-test", choices=TESTS, default="blocks", help="the race's test")
    parser.add_argument("--min-seeds", type=int, default=3, help="the race's first look")
    parser.add_argument("--step", type=int, default=1, help="seeds between the race's looks")
    parser.add_argument("--candidates", type=int, nargs="+", default=[2, 3, 5, 8],
                        help="the untuned cells' candidates (tuned races: with 3)")  # fmt: skip
    args = parser.parse_args(argv)
    RACE.update(test=args.race_test, min_seeds=args.min_seeds, step=args.step)  # forks inherit it
    sd, margin = args.sd / 100, args.margin / 100
    tasks = []
    for kind in ("verdict", "race"):
        if args.only and kind != args.only:
            continue
        seeds = (3, 5, 10) if kind == "verdict" else (10,)
        wanted = [k for k in (2, 5, 8) if k in args.candidates]
        for k, n, noise, effect in itertools.product(wanted, seeds, NOISES, EFFECTS):
            tasks.append((kind, k, n, noise, effect, args.studies, sd, margin, len(tasks)))
        for k, gap in itertools.product([k for k in wanted if k > 2], GAPS):
            tasks.append((kind, k, 10, "gaussian", gap, args.studies, sd, margin, len(tasks),
                          TIED))  # fmt: skip
        if kind == "race" and 3 in args.candidates:
            for shape, effect in ((TUNED, 0.0), (TUNED, 2.0), (APART, 0.0)):
                tasks.append((kind, 3 * CONFIGS, 10, "gaussian", effect, args.studies, sd,
                              margin, len(tasks), shape))  # fmt: skip
    start = time.perf_counter()
    with multiprocessing.Pool(args.processes) as pool:
        cells = pool.map(_cell, tasks)
    for cell in cells:
        print(json.dumps(cell), flush=True)
    out = {"settings": vars(args), "seconds": round(time.perf_counter() - start), "cells": cells}
    if args.bootstrap:
        out["bootstrap"] = bootstrap_coverage(np.random.default_rng(1), args.studies // 4)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
