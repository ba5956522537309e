"""What a race spends on a grid's records: bench's race replayed on them under each of its
tests and spending functions, beside the same race told the seed noise (an oracle).

    python benchmarks/race_floor.py RECORDS backbone=mobilenet_v2 \
        optimizer.lr=0.01,0.003,0.001,0.0003,0.00003

``RECORDS`` is a folder of a grid's result records: every point of the sweep at seeds 1 to
``--max-seeds``. Each point is an entrant. Its candidate is its value of the ``--compare``
key (``backbone``) when that is swept, else the point itself, as the race's own rule
(bench.core.race_settings.Settings.compare). The race is bench.core.racing's own rounds
(decide, apply, stop), driven as ``benchmarks/calibration.py`` drives them, on the records'
validation accuracy (``final_val_accuracy``; a diverged run at chance), under each test and
spending function the race offers (``hydra.sweeper.test``, ``hydra.sweeper.spending``).
Beside them, the **known-noise oracle**: the same rounds, family and boundaries, each pair
tested by a z test whose standard deviation of the seed-paired difference is taken from all
the grid's seeds, as if it were known before the race began. No race knows it, so the
oracle shows what bench's design (every pair in one closed test, a look after every round)
spends with its noise estimate taken away. It is a benchmark, not a bound: its standard
deviations come from the same seeds it tests, and another design may spend less.

Below both, the **uncorrected** race (:func:`uncorrected`): the same rounds with every
pair tested at the full level at every look (no share of the level for the other pairs, no
spending over the looks), under each test and told the noise. It holds no level: with five
equal candidates it makes a false claim in 58% of races (``--uncorrected-error 2000``, the
calibration's cell, 25 s; no records needed). So it shows what the race could save by
giving the level up, and how much of a goal needs that. Prints, as JSON, each race's runs,
training hours and the entrants it left, beside the grid's. ``--variants`` replays every
first look (2, 3) and step (1, 2, 3) too, and prints, for each kind of race (bench's, the
oracle, and each uncorrected), the variant that spends the fewest hours and the one that
spends the fewest runs.

One grid is one draw of its seeds. ``--simulate STUDIES`` runs three races (bench's at its
defaults, the oracle, the uncorrected race) on the same studies like the grid: every
point's seeds drawn from a Gaussian with the grid's means and seed covariance, taken as the
truth. It prints how many runs and what share of the hours each spends (mean and spread),
and how often it names the grid's best candidate (on validation).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import numpy as np
from scipy import stats as scipy_stats

from bench.core import racing, record, stats
from bench.core.race_settings import SPENDING, TESTS, Settings
from bench.launch.race import reading

sys.path.insert(0, str(Path(__file__).parent))
from calibration import _cell, _rate, race_rounds  # noqa: E402  (the calibration's own)

ORACLE = "known-noise oracle"
UNCORRECTED = "uncorrected"


def grid(folder: Path, sweep: dict[str, list[str]], seeds: int):
    """The records' validation accuracy and training hours (points by seeds) and each
    point's label, the points in the sweep's order (the first key slowest).

    A diverged run counts at chance (1 / classes), as the race counts it. The grid must be
    complete and its points told apart by the swept keys: a point without a usable record
    at some seed, or with two records at one seed (other runs in the folder that the
    swept keys do not tell apart), exits with what to fix.
    """
    runs = [run for _, run in record.scan(folder)[0]]
    labels, accuracy, hours = [], [], []
    for point in itertools.product(*sweep.values()):
        label = " ".join(f"{k}={v}" for k, v in zip(sweep, point, strict=True))
        mine: dict[int, list[record.Record]] = {}
        for run in runs:
            if _matches(run.config, sweep, point):
                mine.setdefault(run.config["seed"], []).append(run)
        labels.append(label)
        accuracy.append([_value(label, seed, mine.get(seed, [])) for seed in range(1, seeds + 1)])
        hours.append([mine[s][0].metrics.train_time_s / 3600 for s in range(1, seeds + 1)])
    return labels, np.array(accuracy, dtype=float), np.array(hours, dtype=float)


def _value(label: str, seed: int, found: list[record.Record]) -> float:
    """The validation accuracy of the one record of ``label`` at ``seed``."""
    if len(found) > 1:
        raise SystemExit(
            f"{label}, seed {seed}: {len(found)} records; name the keys that tell them "
            "apart (e.g. backbone=...) or pass a folder of one grid"
        )
    value, _ = reading(found[0]) if found else (None, False)  # as the race reads it
    if value is None:
        raise SystemExit(f"{label}: no usable record for seed {seed}; the grid must be complete")
    return value


def _matches(config: dict, sweep: dict[str, list[str]], point: tuple[str, ...]) -> bool:
    """Whether a run's resolved config has ``point``'s value of every swept key (a config
    group by its ``name``, a number by its value: ``0.00003`` is ``3e-05``)."""
    for dotted, wanted in zip(sweep, point, strict=True):
        value = config
        for part in dotted.split("."):
            value = value[part]
        value = value["name"] if isinstance(value, dict) else value
        try:
            if float(value) != float(wanted):
                return False
        except (TypeError, ValueError):
            if str(value) != wanted:
                return False
    return True


class Row(dict):
    """An entrant's seed -> value mapping that knows its row of the grid."""

    def __init__(self, row: int, found: dict[int, float]):
        super().__init__(found)
        self.row = row


def known_noise(x: np.ndarray):
    """A stand-in for stats.blocks: each pair's z test, the standard deviation of its
    seed-paired difference taken from every seed of the grid ``x`` (points by seeds)."""

    def blocks(groups, wanted, level=stats.LEVEL, pooled=False):
        del pooled  # one test: the noise is known
        return [_z(x, groups[i], groups[j], level) for i, j in wanted]

    return blocks


def _z(x: np.ndarray, a: Row, b: Row, level: float) -> stats.Difference:
    """``a`` minus ``b`` over their shared seeds, by a z test whose standard deviation of the
    seed-paired difference is that of every seed of their rows of ``x``."""
    seeds = sorted(set(a) & set(b))
    d = float(np.mean([a[s] - b[s] for s in seeds]))
    se = float(np.std(x[a.row] - x[b.row], ddof=1)) / math.sqrt(len(seeds))
    p = float(2 * scipy_stats.norm.sf(abs(d) / se)) if se > 0 else float(d == 0)
    return stats.Difference(float(np.mean([a[s] for s in seeds])),
                            float(np.mean([b[s] for s in seeds])), len(seeds), len(seeds),
                            d, len(seeds), "known z", None, p, level=level, se=se,
                            df=math.inf)  # fmt: skip


@contextlib.contextmanager
def uncorrected() -> Iterator[None]:
    """Within it, the race's rounds test every pair at the full level at every look: each
    set of the closed test split by 1 (a pair crossing rejects every set that holds it, so
    a pair is rejected when it alone crosses), Shaffer's count beyond
    stats.EXHAUSTIVE_UP_TO entrants held at 1 likewise, and every look at the level itself
    (no spending). The equivalence step then asks what the race's does at a single look:
    the 95% interval inside the margin."""
    with (
        mock.patch.object(stats, "divisors", _undivided),
        mock.patch.object(stats, "most_true", _one),
        mock.patch.object(racing, "look_levels", _full_level),
    ):
        yield


def _undivided(k: int) -> np.ndarray:
    """stats.divisors' shape with every pair of every set held to the level over 1."""
    return stats.exhaustive(k).astype(int)


def _one(k: int, rejected: int) -> int:
    """stats.most_true held at 1: Shaffer's count beyond EXHAUSTIVE_UP_TO, undivided."""
    del k, rejected
    return 1


def _full_level(settings: Settings, look: int, alpha: float, test: str | None = None) -> float:
    """racing.look_levels at the race's own level, whatever the look and the pair's share."""
    del look, alpha, test
    return 1 - settings.level


def replay(
    x, hours, labels, configs: int, settings: Settings, oracle: bool, corrected: bool = True
) -> dict:  # fmt: skip
    """One race on the grid: the runs and training hours it spent, the points left, and the
    seeds each dropped point ran.

    Args:
        x: Validation accuracy, points by seeds (:func:`grid`).
        hours: Training hours, the same shape.
        labels: Each point's label.
        configs: Points per candidate (consecutive rows); 1 when every point is one.
        settings: The race's keys.
        oracle: Test each pair as if its noise were known (:func:`known_noise`).
        corrected: False: every pair at the full level at every look (:func:`uncorrected`).
    """
    with ExitStack() as stack:
        if oracle:
            stack.enter_context(mock.patch.object(stats, "blocks", known_noise(x)))
        if not corrected:
            stack.enter_context(uncorrected())
        entrants, _, seeds = race_rounds(x, settings, configs, Row if oracle else None)
    spent = [e.upto(seeds) for e in entrants]
    return {
        "runs": sum(spent),
        "hours": round(sum(float(h[:n].sum()) for h, n in zip(hours, spent, strict=True)), 3),
        "left": [label for label, e in zip(labels, entrants, strict=True) if e.racing],
        "dropped at seeds": {
            label: e.upto(seeds) for label, e in zip(labels, entrants, strict=True) if not e.racing
        },  # fmt: skip
    }


def races(x, hours, labels, configs: int, first: int, step: int, most: int) -> dict:
    """Every race the benchmark replays at one first look and step.

    Args:
        x, hours, labels, configs: As :func:`replay` takes them.
        first: The first look's seeds (``min_seeds``).
        step: Seeds between looks.
        most: ``max_seeds``.

    Returns:
        :func:`replay`'s result for bench's race and the known-noise oracle under each
        spending function ("test, spending"), then for the uncorrected race under each test
        and told the noise ("uncorrected, test"; the spending plays no part there).
    """
    found = {}
    for corrected, spending, test in itertools.chain(
        itertools.product([True], SPENDING, (*TESTS, ORACLE)),
        itertools.product([False], SPENDING[:1], (*TESTS, ORACLE)),
    ):
        settings = Settings(min_seeds=first, max_seeds=most, step=step, spending=spending,
                            test=test if test != ORACLE else "blocks")  # fmt: skip
        key = f"{test}, {spending}" if corrected else f"{UNCORRECTED}, {test}"
        found[key] = replay(x, hours, labels, configs, settings, test == ORACLE, corrected)
    return found


def fewest(x, hours, labels, configs: int, most: int) -> dict:
    """The variants that spend least, over every first look (2, 3) and step (1 to 3).

    Args:
        x, hours, labels, configs: As :func:`replay` takes them.
        most: ``max_seeds``.

    Returns:
        For each kind of race (bench's: 36 variants of test, spending, first look and step;
        the oracle: 12; the uncorrected race: 18; the uncorrected oracle: 6), the variant
        with the fewest training hours and the one with the fewest runs, each with its race.
    """
    best: dict[str, dict] = {}
    for first, step in itertools.product((2, 3), (1, 2, 3)):
        for key, race in races(x, hours, labels, configs, first, step, most).items():
            kind = ORACLE if ORACLE in key else "race"
            kind = f"{UNCORRECTED} {kind}" if key.startswith(UNCORRECTED) else kind
            found = {"variant": f"{key}, min_seeds={first}, step={step}", **race}
            for by in ("hours", "runs"):
                held = best.setdefault(kind, {}).get(f"fewest {by}")
                if held is None or race[by] < held[by]:
                    best[kind][f"fewest {by}"] = found
    return best


def simulate(x, hours, labels, configs: int, studies: int, seed: int = 0) -> dict:
    """Studies like the grid, where one grid is one draw. The grid's means and seed
    covariance (points by points, so a seed's shared luck stays shared) are taken as the
    truth: each study draws every point's seeds from that Gaussian, each run costing its
    point's mean hours. Bench's race (its defaults), the known-noise oracle and the
    uncorrected race run on the same studies.

    Args:
        x, hours, labels, configs: As :func:`replay` takes them.
        studies: How many.
        seed: The draws' seed.

    Returns:
        For each race: the runs and share of the grid's hours (mean, 10th, 50th and 90th
        percentiles); how often it spends at most half the grid's runs, and at most 40% of
        its hours (the goals set for the README's learning-rate and tuned races); how often
        it names the grid's best candidate (the highest validation mean; only it left), and
        how often another.
    """
    rng = np.random.default_rng(seed)
    mean, cov = x.mean(axis=1), np.cov(x)
    drawn = [rng.multivariate_normal(mean, cov, size=x.shape[1]).T for _ in range(studies)]
    per_run = np.repeat(hours.mean(axis=1, keepdims=True), x.shape[1], axis=1)
    best, settings = int(np.argmax(mean)) // configs, Settings(max_seeds=x.shape[1])
    found = {}
    for kind, oracle, corrected in (("race", False, True), (ORACLE, True, True),
                                    (UNCORRECTED, False, False)):  # fmt: skip
        ran = [replay(d, per_run, labels, configs, settings, oracle, corrected) for d in drawn]
        runs = [race["runs"] for race in ran]
        share = [race["hours"] / per_run.sum() for race in ran]
        left = [{labels.index(p) // configs for p in race["left"]} for race in ran]
        found[kind] = {
            "runs": _spread(runs), "share of hours": _spread(share),
            "within half the grid's runs": _rate(sum(r <= x.size / 2 for r in runs), studies),
            "within 40% of its hours": _rate(sum(h <= 0.4 for h in share), studies),
            "names the grid's best": _rate(sum(c == {best} for c in left), studies),
            "names another": _rate(sum(len(c) == 1 and c != {best} for c in left), studies),
        }  # fmt: skip
    return found


def uncorrected_error(studies: int) -> dict:
    """The uncorrected race's false claims where every candidate is equally good: the
    calibration's cell of five candidates, 3 to 10 seeds, Gaussian noise, no effect
    (calibration._cell, its seed and margin), run inside :func:`uncorrected`."""
    with uncorrected():
        return _cell(("race", 5, 10, "gaussian", 0.0, studies, 0.02, 0.01, 12345))


def _spread(values: list[float]) -> dict:
    q = np.quantile(values, [0.1, 0.5, 0.9])
    return {"mean": round(float(np.mean(values)), 3), "p10, median, p90": q.round(3).tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", type=Path, nargs="?")
    parser.add_argument("sweep", nargs="*", help="key=v1,v2,... as the grid swept them")
    parser.add_argument("--compare", default="backbone")
    parser.add_argument("--min-seeds", type=int, default=3, help="the first look")
    parser.add_argument("--step", type=int, default=1, help="seeds added each round")
    parser.add_argument("--max-seeds", type=int, default=10)
    parser.add_argument(
        "--variants", action="store_true", help="the fewest hours over every variant"
    )
    parser.add_argument("--simulate", type=int, default=0, metavar="STUDIES",
                        help="studies like the grid: its means and seed covariance")  # fmt: skip
    parser.add_argument("--uncorrected-error", type=int, default=0, metavar="STUDIES",
                        help="the uncorrected race's false claims (no records needed)")  # fmt: skip
    args = parser.parse_args()
    if args.uncorrected_error:
        print(json.dumps(uncorrected_error(args.uncorrected_error)))
        return
    if args.records is None or not args.sweep:
        parser.error("give RECORDS and the sweep (key=v1,v2,...)")
    sweep = {k: v.split(",") for k, v in (item.split("=", 1) for item in args.sweep)}
    if args.compare in sweep and list(sweep)[0] != args.compare:
        sweep = {args.compare: sweep.pop(args.compare), **sweep}  # candidates' rows together
    labels, x, hours = grid(args.records, sweep, args.max_seeds)
    tuned = len(sweep.get(args.compare, ())) > 1  # else every point is a candidate
    configs = len(labels) // len(sweep[args.compare]) if tuned else 1
    found = {"grid": {"runs": x.size, "hours": round(float(hours.sum()), 3)}}
    if args.simulate:
        found |= simulate(x, hours, labels, configs, args.simulate)
    elif args.variants:
        found |= fewest(x, hours, labels, configs, args.max_seeds)
    else:
        found |= races(x, hours, labels, configs, args.min_seeds, args.step, args.max_seeds)
    print(json.dumps(found, indent=2))


if __name__ == "__main__":
    main()
