"""The race's level over every round: group-sequential boundaries against published tables,
and a small seeded run of the calibration benchmark's own simulation (the full one is
benchmarks/calibration.py, 2,000 studies per cell)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from scipy import stats as scipy_stats

from bench.core import racing, record, sequential, stats
from bench.core.race_settings import Settings
from tests.helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import calibration  # noqa: E402  (benchmarks/ is not a package)
import race_floor  # noqa: E402


def test_obrien_fleming_spending_matches_gsdesigns_published_boundaries():
    # gsDesign's sfLDOF, five equally spaced looks, one-sided 0.025 (a symmetric two-sided
    # 0.05 design): 4.8769, 3.3569, 2.6803, 2.2898, 2.0310.
    found = sequential.boundaries([0.2, 0.4, 0.6, 0.8, 1.0], 0.05)
    assert found == pytest.approx([4.8769, 3.3569, 2.6803, 2.2898, 2.0310], abs=2e-3)


@pytest.mark.parametrize(("looks", "constant"), [(2, 2.178), (4, 2.361), (5, 2.413)])
def test_a_constant_boundary_matches_pococks_constants(looks, constant):
    # Jennison and Turnbull (2000), Table 2.1: Pocock's C_P(K, 0.05), two-sided.
    fractions = [k / looks for k in range(1, looks + 1)]
    assert sequential.constant_boundary(fractions, 0.05) == pytest.approx(constant, abs=2e-3)


def test_the_spent_level_is_the_level_and_a_single_look_is_a_plain_test():
    assert sequential.spent(1.0, 0.05) == pytest.approx(0.05)
    assert sequential.spent(1.0, 0.05, "pocock") == pytest.approx(0.05)
    (only,) = sequential.boundaries([1.0], 0.05)
    assert only == pytest.approx(scipy_stats.norm.ppf(0.975))
    nominal = sequential.nominal([0.3, 0.6, 1.0], 0.05)
    assert nominal == sorted(nominal) and nominal[-1] < 0.05  # earlier looks stricter


def test_a_single_look_and_a_first_look_of_a_paired_t_are_the_plain_t_test():
    """A t's p-value is exact on its own: one look spends the whole level, and the first of
    several spends the spending function's first increment, neither by simulation."""
    assert sequential.t_nominal([10], 0.05) == [pytest.approx(0.05, rel=1e-9)]
    first = sequential.t_nominal(range(3, 11), 0.05)[0]
    assert first == sequential.spent(0.3, 0.05) == pytest.approx(8.5e-5, rel=0.01)


def _paired_t_race_claims(levels: list[float], looks: list[int], paths: int) -> float:
    """How often a paired t under the null crosses ``levels`` at some look: fresh Gaussian
    differences (another seed than sequential's), p-values from scipy's one-sample t."""
    d = np.random.default_rng(5).standard_normal((paths, looks[-1]))
    crossed = np.zeros(paths, dtype=bool)
    for n, level in zip(looks, levels, strict=True):
        crossed |= scipy_stats.ttest_1samp(d[:, :n], 0.0, axis=1).pvalue <= level
    return float(crossed.mean())


@pytest.mark.parametrize("kind", sequential.SPENDING)
def test_a_paired_t_looked_at_every_round_spends_no_more_than_the_level(kind):
    """Looks at 3 to 10 seeds, a level of 5%: z boundaries applied to a t's p-values cross
    more often than 5% (the t re-estimates its noise at every look); t_nominal's do not.
    40,000 paths: a standard error of 0.11 points."""
    looks, paths = list(range(3, 11)), 40_000
    fractions = [n / looks[-1] for n in looks]
    on_t = _paired_t_race_claims(sequential.t_nominal(looks, 0.05, kind), looks, paths)
    on_z = _paired_t_race_claims(sequential.nominal(fractions, 0.05, kind), looks, paths)
    assert on_t <= 0.05 + 2.5 * np.sqrt(0.05 * 0.95 / paths) < on_z
    assert on_t >= 0.05 - 2.5 * np.sqrt(0.05 * 0.95 / paths)  # and spends it


def _bound(studies: int) -> float:
    """What an honest 5% stays under in ``studies`` studies (the binomial 99.9th percentile)."""
    return scipy_stats.binom.ppf(0.999, studies, 0.05) / studies


@pytest.mark.parametrize(("kind", "k", "seeds", "studies"), [("verdict", 5, 5, 300),
                                                             ("race", 3, 10, 200)])  # fmt: skip
def test_with_no_effect_neither_the_verdict_nor_the_race_claims_more_than_its_level(
    kind, k, seeds, studies
):
    """Seeded: the same studies every time, through the deciding code itself."""
    cell = calibration._cell((kind, k, seeds, "gaussian", 0.0, studies, 0.02, 0.01, 7))
    assert cell["false_claims"]["rate"] <= _bound(studies)


def test_a_race_that_looks_at_every_round_at_the_full_level_fails_that_check(monkeypatch):
    """The control: the same race with each look held to the whole level (the earlier
    rule) claims too much on the same studies, so the check above can fail."""
    from bench.core import racing

    monkeypatch.setattr(racing, "look_levels", lambda settings, look, alpha, test=None: alpha)
    cell = calibration._cell(("race", 3, 10, "gaussian", 0.0, 200, 0.02, 0.01, 7))
    assert cell["false_claims"]["rate"] > _bound(200)


def test_with_a_clear_lead_the_race_names_the_winner():
    cell = calibration._cell(("race", 2, 10, "gaussian", 2.0, 100, 0.02, 0.01, 3))
    assert cell["power"]["rate"] > 0.8 and cell["false_claims"]["rate"] < 0.05


def test_a_tuned_race_whose_candidates_are_equal_at_their_best_drops_no_candidate_wrongly():
    """Three candidates of three configurations each, 0, 1 and 2 sd behind each candidate's
    first: configurations may be dropped within a candidate, but a candidate dropped whole
    is a false claim (every candidate is as good at its best)."""
    cell = calibration._cell(("race", 9, 10, "gaussian", 0.0, 60, 0.02, 0.01, 7, calibration.APART))
    assert cell["false_claims"]["rate"] <= _bound(60)
    assert cell["seeds_per_candidate"] < 10  # the configurations 2 sd behind were dropped


def _grid_records(
    folder, means: dict[float, float], seeds: int, backbone: str = "mobilenet_v2",
    seconds: float = 60.0,
) -> None:  # fmt: skip
    """A grid's records on disk: ``backbone`` at each learning rate, ``seeds`` seeds, the
    validation accuracy the rate's mean plus a seed's draw, each run ``seconds`` long."""
    rng = np.random.default_rng(5)
    for lr, mean in means.items():
        for seed in range(1, seeds + 1):
            run = record.Record(
                run_id=f"{backbone[:2]}{int(lr * 1e6):08d}{seed:04d}",
                status=record.Status.completed, started_at=record.now(),
                finished_at=record.now(),
                config={"backbone": {"name": backbone}, "optimizer": {"lr": lr}, "seed": seed},
                metrics=record.Metrics(final_val_accuracy=mean + 0.02 * rng.standard_normal(),
                                       train_time_s=seconds),
            )  # fmt: skip
            record.write(run, folder)


def test_the_race_floor_replays_a_grids_records_in_the_races_own_rounds(tmp_path, monkeypatch):
    """benchmarks/race_floor.py: the records read in the sweep's order (0.00003 is the
    record's 3e-05), the race's rounds drop the clear losers, and the known-noise oracle's
    test is a z test on the seed-paired differences' sd over every seed."""
    _grid_records(tmp_path, {0.003: 0.6, 0.001: 0.45, 0.00003: 0.3}, 10)
    labels, x, hours = race_floor.grid(
        tmp_path, {"optimizer.lr": ["0.003", "0.001", "0.00003"]}, 10
    )
    assert labels[2] == "optimizer.lr=0.00003" and x.shape == (3, 10)
    assert x[2].mean() == pytest.approx(0.3, abs=0.02) and hours.sum() == pytest.approx(30 / 60)
    tested = []
    real = race_floor.known_noise

    def spy(grid):  # the oracle's test must be the one the race's rounds call
        blocks = real(grid)
        return lambda *args, **kwargs: tested.append(1) or blocks(*args, **kwargs)

    monkeypatch.setattr(race_floor, "known_noise", spy)
    for oracle in (False, True):
        found = race_floor.replay(x, hours, labels, 1, Settings(), oracle)
        assert found["left"] == ["optimizer.lr=0.003"] and found["runs"] < 30
        assert bool(tested) == oracle
    a, b = race_floor.Row(0, {1: x[0, 0], 2: x[0, 1]}), race_floor.Row(1, {1: x[1, 0], 2: x[1, 1]})
    (found,) = race_floor.known_noise(x)([a, b], [(0, 1)])
    z = (x[0, :2] - x[1, :2]).mean() / ((x[0] - x[1]).std(ddof=1) / np.sqrt(2))
    assert found.p == pytest.approx(2 * scipy_stats.norm.sf(z))


def test_the_uncorrected_race_tests_each_pair_alone_at_the_full_level_and_is_undone():
    """race_floor's uncorrected race: the closed test rejects exactly the pairs that cross at
    the full level (or were rejected before), every look is held to the level itself, and
    the race's own split and levels are back afterwards."""
    rng = np.random.default_rng(3)
    divisors, look_levels = stats.divisors, racing.look_levels
    for k in (3, 5):
        pairs = k * (k - 1) // 2
        full, before = rng.random(pairs) < 0.4, rng.random(pairs) < 0.2
        crossed = []

        def crosses(d, full=full, crossed=crossed):
            crossed.append(d)
            return full.copy() if d == 1 else np.zeros_like(full)

        with race_floor.uncorrected():
            now, held = stats.closed_step(k, crosses, before)
            assert racing.look_levels(Settings(), 0, 0.05 / 7, stats.PAIRED) == pytest.approx(0.05)
        assert set(crossed) == {1}  # no set's level divided
        assert np.array_equal(now, full | before)
        assert (held[now & ~before] == 1).all()
    assert stats.divisors is divisors and racing.look_levels is look_levels
    assert stats.most_true(10, 0) == 45  # Shaffer's count, beyond the exhaustive sets, back


def test_the_uncorrected_race_beyond_the_exhaustive_sets_holds_each_pair_to_the_level():
    k = stats.EXHAUSTIVE_UP_TO + 1
    full = np.random.default_rng(4).random(k * (k - 1) // 2) < 0.3
    with race_floor.uncorrected():
        now, _ = stats.closed_step(k, lambda d: full if d == 1 else full & False, full & False)
    assert np.array_equal(now, full)


def test_the_uncorrected_race_drops_no_later_than_the_race(tmp_path):
    _grid_records(tmp_path, {0.003: 0.6, 0.001: 0.5, 0.00003: 0.45}, 10)
    labels, x, hours = race_floor.grid(
        tmp_path, {"optimizer.lr": ["0.003", "0.001", "0.00003"]}, 10
    )
    held = race_floor.replay(x, hours, labels, 1, Settings(), False)
    loose = race_floor.replay(x, hours, labels, 1, Settings(), False, corrected=False)
    assert loose["left"] == held["left"] == ["optimizer.lr=0.003"]
    assert all(loose["dropped at seeds"][p] <= n for p, n in held["dropped at seeds"].items())
    assert loose["runs"] < held["runs"]


def test_the_race_floor_simulates_studies_like_the_grid(tmp_path, monkeypatch):
    """--simulate: the three races on the same studies, drawn with the grid's means and seed
    covariance; each run at its point's hours; candidates are rows of ``configs`` points
    (a tuned grid, backbone x lr), and the far best candidate is named every time."""
    _grid_records(tmp_path, {0.003: 0.6, 0.001: 0.5}, 10, "mobilenet_v2", 60.0)
    _grid_records(tmp_path, {0.003: 0.4, 0.001: 0.35}, 10, "b0", 180.0)
    sweep = {"backbone": ["mobilenet_v2", "b0"], "optimizer.lr": ["0.003", "0.001"]}
    labels, x, hours = race_floor.grid(tmp_path, sweep, 10)
    seen, real = [], race_floor.replay

    def spy(drawn, *args, **kwargs):
        seen.append((drawn, found := real(drawn, *args, **kwargs)))
        return found

    monkeypatch.setattr(race_floor, "replay", spy)
    found = race_floor.simulate(x, hours, labels, 2, 5)
    assert list(found) == ["race", race_floor.ORACLE, race_floor.UNCORRECTED]
    assert len(seen) == 15 and not np.array_equal(seen[0][0], seen[1][0])
    assert all(np.array_equal(seen[i][0], seen[i + 5 * r][0]) for i in range(5) for r in (1, 2))
    seconds = dict(zip(labels, [60, 60, 180, 180], strict=True))
    for n, kind in enumerate(found):
        assert found[kind]["names the grid's best"]["rate"] == 1
        assert found[kind]["names another"]["rate"] == 0
        spent = []
        for _, r in seen[5 * n : 5 * n + 5]:  # a race's hours from its drops, by hand
            dropped = sum(k * seconds[p] for p, k in r["dropped at seeds"].items())
            each = (r["runs"] - sum(r["dropped at seeds"].values())) / len(r["left"])
            spent.append((dropped + each * sum(seconds[p] for p in r["left"])) / 3600)
        grid_hours = 10 * (2 * 60 + 2 * 180) / 3600
        share = found[kind]["share of hours"]["mean"]
        assert share == pytest.approx(np.mean(spent) / grid_hours, abs=2e-3)


def test_the_race_floor_refuses_a_folder_whose_points_the_sweep_does_not_tell_apart(tmp_path):
    _grid_records(tmp_path, {0.003: 0.6, 0.001: 0.45}, 3)
    other = record.read(next(tmp_path.glob("*.json")))
    other.run_id, other.config = "b0" + other.run_id, {**other.config, "backbone": {"name": "b0"}}
    record.write(other, tmp_path)  # B0 at one of the rates: the sweep below names no backbone
    with pytest.raises(SystemExit, match="2 records; name the keys that tell them apart"):
        race_floor.grid(tmp_path, {"optimizer.lr": ["0.003", "0.001"]}, 3)
    labels, _, _ = race_floor.grid(
        tmp_path, {"backbone": ["mobilenet_v2"], "optimizer.lr": ["0.003", "0.001"]}, 3
    )
    assert len(labels) == 2


def test_the_split_benchmark_runs_both_splits_on_the_same_draws_and_restores_the_races():
    """benchmarks/closure_split.py: the by-size split is Bonferroni over each set's size,
    and after a shape the race's own split is back in place."""
    import closure_split

    sets = stats.exhaustive(5)
    assert (stats.by_size(5) == np.where(sets, sets.sum(axis=1)[:, None], 0)).all()
    found = closure_split.run("one 2 sd ahead of four", 20, 1)
    assert set(found) == {"by group", "by size"}
    assert stats.divisors is closure_split.BY_GROUP
    assert all(0 < f["share of grid"] <= 1 for f in found.values())
