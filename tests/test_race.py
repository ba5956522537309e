"""Races: rounds, drops on validation that hold their level over every round, tuning inside,
equivalence, failures, budgets, resuming from the records, race.json, and the real command.

The in-process tests give the race a launch that writes each point's record itself (known
validation and test accuracies per entrant and seed) instead of training: the race decides
from records alone, so that is all it sees of a run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from bench.analysis import report
from bench.core import racing, record
from bench.core.errors import ConfigError
from bench.core.race_settings import Settings
from bench.core.racing import RaceDocument
from bench.core.record import ErrorInfo, Metrics, Record, Status
from bench.launch.race import Race
from bench.launch.race_sweep import candidates
from tests.helpers import ROOT, bench_run, load_records, make_spec

sys.path.insert(0, str(ROOT / "benchmarks"))
import race_floor  # noqa: E402  (benchmarks/ is not a package)

# Validation accuracy per entrant and seed. A and TIE share their per-seed luck (TIE is 0.2
# points behind, give or take 0.05: well within a 1-point margin); WORSE is 10 points behind
# on every seed; CLOSE about 2 points behind, noisily.
LUCK = {1: 0.00, 2: 0.02, 3: -0.01, 4: 0.01, 5: -0.02, 6: 0.015}
A = {s: 0.90 + v for s, v in LUCK.items()}
VALUES = {
    "optimizer.lr=0.001": A,
    "optimizer.lr=0.1": {s: 0.80 + v + 0.001 * s for s, v in LUCK.items()},
    "optimizer.lr=0.002": {s: A[s] - 0.002 + (0.0005 if s % 2 else -0.0005) for s in A},
    "optimizer.lr=0.003": {
        s: A[s] - d for s, d in zip(A, (0.01, 0.03, 0.02, 0.025, 0.02, 0.02), strict=True)
    },
}
BEST, WORSE, TIE, CLOSE = VALUES
TEST_OFFSET = -0.05  # test accuracy = validation - 5 points, unless a test says otherwise


class Fake:
    """A launcher that writes the records its points would leave (or fails them)."""

    def __init__(self, spec_for, values, fail=None, cut_after=None, test=None, diverge=()):
        self.spec_for, self.values, self.fail = spec_for, values, fail or {}
        self.launched: list[tuple[str, int]] = []
        self.cut_after, self.test, self.diverge = cut_after, test or {}, set(diverge)

    def __call__(self, points):
        for entrant, seed in points:
            if self.cut_after is not None and len(self.launched) >= self.cut_after:
                raise KeyboardInterrupt("the race was cut off")
            self.launched.append((entrant.label, seed))
            record.save(self.record(entrant, seed), self.spec_for(entrant, seed).cfg.results_dir)

    def record(self, entrant, seed) -> Record:
        spec, key = self.spec_for(entrant, seed), (entrant.label, seed)
        error = self.fail.get(key) or ("loss is NaN" if key in self.diverge else None)
        kind = "Diverged" if key in self.diverge else "WeightsUnavailable"
        value = self.values[entrant.label][seed]
        test = self.test.get(entrant.label, {}).get(seed, value + TEST_OFFSET)
        config = spec.config_dict()
        config["dataset"]["num_classes"] = 4
        return Record(
            run_id=spec.run_id, status=Status.failed if error else Status.completed,
            started_at=record.now(), finished_at=record.now(), config=config,
            metrics=Metrics(final_val_accuracy=None if error else value,
                            test_accuracy=None if error else test, train_time_s=360.0),
            error=ErrorInfo(kind, error) if error else None,
            job={"attempt": f"{entrant.label}-{seed}-{len(self.launched)}"},
        )  # fmt: skip


def _race(tmp_path, labels, settings=None, values=VALUES, sweep=None, **fake):
    rates = ",".join(label.split("=")[1] for label in labels)
    common, entrants = candidates(sweep or [f"optimizer.lr={rates}"],
                                  (settings or Settings()).compare)  # fmt: skip
    specs = {}

    def spec_for(entrant, seed):
        key = (entrant.label, seed)
        if key not in specs:
            specs[key] = make_spec("dataset=shapes", *common, *entrant.overrides, f"seed={seed}",
                                   f"results_dir={tmp_path / 'runs'}")  # fmt: skip
        return specs[key]

    launcher = Fake(spec_for, values, **fake)
    outputs = [tmp_path / "sweep" / "race.json", tmp_path / "runs" / "races" / "r.json"]
    settings = settings or Settings(min_seeds=3, max_seeds=6)
    return Race(settings, common, entrants, spec_for, launcher, outputs), launcher


def _held_to(found: RaceDocument, entrant: str) -> str:
    return found.outcome.dropped[entrant]["reason"]


def test_a_clear_loser_is_dropped_on_validation_and_the_race_reads_test_for_what_it_chose(
    tmp_path, capsys
):
    race, fake = _race(tmp_path, [BEST, WORSE, CLOSE])
    found = race.run()
    printed = capsys.readouterr().out  # the standings of every round, the drop's round named
    assert "dropped at round 1: worse than optimizer.lr=0.001 by 9.8 points on validation" in (
        printed
    )
    assert found.outcome.dropped[WORSE]["round"] == 1
    assert [r.launched for r in found.rounds][0] == 9
    assert found.metric == "final_val_accuracy"
    winner = found.outcome.winner or found.outcome.leading
    assert winner == BEST
    seeds = found.rounds[-1].seeds
    expected = sum(A[s] + TEST_OFFSET for s in range(1, seeds + 1)) / seeds
    assert found.outcome.test_accuracy[BEST] == pytest.approx(expected)
    assert found.outcome.test_seeds[BEST] == seeds
    for path in (tmp_path / "sweep" / "race.json", tmp_path / "runs" / "races" / "r.json"):
        assert json.loads(path.read_text()) == json.loads(json.dumps(found.to_dict()))
    (shown,) = report.races(tmp_path / "runs")  # the report's course: round by round
    course = shown.course.set_index(["round", "entrant"])["state"]
    assert course[1, WORSE] == "dropped (round 1)" and course[1, BEST] == "racing"


def _rejected(*pairs: tuple[str, str]) -> frozenset[frozenset[str]]:
    """Pairs of entrants rejected in earlier rounds, as Decision.rejected holds them."""
    return frozenset(frozenset(pair) for pair in pairs)


def _pooled_p(rows: list[dict], best: int, other: int) -> float:
    """The two-way (entrant x seed) least-squares fit's t test of one contrast, over every
    (entrant, seed) the rows hold, balanced or not: the pooled block t, computed here
    without bench."""
    cells = [(g, s, v) for g, row in enumerate(rows) for s, v in row.items()]
    seeds = sorted({s for _, s, _ in cells})
    design = np.array([[float(g == i) for i in range(len(rows))]
                       + [float(s == t) for t in seeds[1:]] for g, s, _ in cells])  # fmt: skip
    y = np.array([v for *_, v in cells])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ coef
    df = len(cells) - design.shape[1]
    cov = float(residual @ residual) / df * np.linalg.inv(design.T @ design)
    contrast = np.zeros(design.shape[1])
    contrast[best], contrast[other] = 1.0, -1.0
    t = (coef[best] - coef[other]) / np.sqrt(contrast @ cov @ contrast)
    return float(2 * scipy_stats.t.sf(abs(t), df))


def test_a_drop_one_look_at_the_full_level_would_make_waits_for_the_boundary(tmp_path):
    # The earlier rule: at every round, the pooled block t of each challenger against the
    # leader, Holm over the round's comparisons at the full 5%. At 3 seeds it drops CLOSE.
    rows = [{s: VALUES[label][s] for s in (1, 2, 3)} for label in (BEST, WORSE, CLOSE)]
    earlier = sorted([_pooled_p(rows, 0, 1), _pooled_p(rows, 0, 2)])
    assert earlier[0] * 2 < 0.05 and earlier[1] < 0.05  # Holm over 2 drops both at round 1
    race, fake = _race(tmp_path, [BEST, WORSE, CLOSE],
                       Settings(min_seeds=3, max_seeds=6, test="pooled"))  # fmt: skip
    found = race.run()
    first = {s.entrant: s for s in found.rounds[0].standings}
    assert first[CLOSE].p == pytest.approx(_pooled_p(rows, 0, 2))  # the same test...
    assert first[CLOSE].state == "racing"  # ...held to the first of four looks' boundary
    assert found.outcome.dropped[WORSE]["round"] == 1  # a clear loser still goes at once


def test_a_dropped_entrant_lends_its_seeds_to_the_noise_of_those_left():
    # WORSE went at round 1 (3 seeds). At 5 seeds CLOSE is tested against BEST on a layout
    # that still holds WORSE's three seeds: 13 values, 7 parameters, 6 degrees of freedom,
    # where the two alone would be a paired t on 4.
    entrants = [racing.Entrant(label, [], label) for label in (BEST, WORSE, CLOSE)]
    entrants[1].drop(1, 3, "worse")
    rows = [{s: VALUES[e.label][s] for s in range(1, e.upto(5) + 1)} for e in entrants]
    observed = {e.label: racing.Observed(row) for e, row in zip(entrants, rows, strict=True)}
    settings = Settings(min_seeds=3, max_seeds=6, test="pooled")
    decision = racing.decide(entrants, observed, 2, settings, _rejected((BEST, WORSE)))
    (close,) = [c.difference for c in decision.compared if c.entrant == CLOSE]
    assert (close.test, close.df) == ("pooled block t", 6)
    assert close.p == pytest.approx(_pooled_p(rows, 0, 2))


def test_a_dropped_entrants_diverged_run_lends_nothing():
    # WORSE dropped at 3 seeds, one of them diverged (at chance): the layout that measures
    # CLOSE against BEST holds WORSE's two other seeds only.
    entrants = [racing.Entrant(label, [], label) for label in (BEST, WORSE, CLOSE)]
    entrants[1].drop(1, 3, "worse")
    rows = [{s: VALUES[e.label][s] for s in range(1, e.upto(5) + 1)} for e in entrants]
    settings = Settings(min_seeds=3, max_seeds=6, test="pooled")

    def close_p(worse: racing.Observed) -> float:
        observed = {BEST: racing.Observed(rows[0]), WORSE: worse, CLOSE: racing.Observed(rows[2])}
        decision = racing.decide(entrants, observed, 2, settings, _rejected((BEST, WORSE)))
        return next(c.difference.p for c in decision.compared if c.entrant == CLOSE)

    diverged = racing.Observed({**rows[1], 2: 0.25}, diverged=frozenset({2}))
    without = {s: v for s, v in rows[1].items() if s != 2}
    assert close_p(diverged) == pytest.approx(_pooled_p([rows[0], without, rows[2]], 0, 2))
    assert close_p(diverged) != pytest.approx(close_p(racing.Observed({**rows[1], 2: 0.25})))


def test_the_level_a_race_freed_in_earlier_rounds_is_carried_to_the_next():
    """Four entrants, one pair rejected in an earlier round (a = x, dropped): no exhaustive
    set holding a = b without a = x has more than three pairs (Holm would count five), so
    the next drop is held to 5% / 3 at a single look."""
    b = {s: A[s] - 0.10 + (0.01 if s % 2 else -0.01) for s in A}
    entrants = [racing.Entrant(label, [], label) for label in ("a", "b", "c", "x")]
    entrants[3].drop(1, 3, "worse")
    c = {s: A[s] - 0.001 * (s % 3) for s in A}
    rows = {"a": A, "b": b, "c": c, "x": {s: A[s] - 0.2 for s in (1, 2, 3)}}
    observed = {label: racing.Observed(row) for label, row in rows.items()}
    settings = Settings(min_seeds=6, max_seeds=6)
    decision = racing.decide(entrants, observed, 0, settings, _rejected(("a", "x")))
    assert [(c.entrant, level) for c, level in decision.drops][:1] == [
        ("b", pytest.approx(0.05 / 3))
    ]


def test_after_a_first_drop_the_level_freed_counts_the_hypotheses_that_can_still_be_true():
    """Three entrants, one look, the whole 5%. Once a beats b, a = c and b = c cannot both
    hold, so at most one hypothesis is left true: c is held to 5% (Shaffer 1986), where
    Holm's count of two would hold it to 2.5%."""
    b = {s: A[s] - 0.10 + (0.01 if s % 2 else -0.01) for s in A}
    wiggle = {1: 0.01, 4: 0.01, 2: -0.01, 5: -0.01}
    c = {s: A[s] - 0.011 + wiggle.get(s, 0.0) for s in A}
    rows = [A, b, c]
    assert _pooled_p(rows, 0, 1) < 0.05 / 3 and 0.05 / 2 < _pooled_p(rows, 0, 2) < 0.05
    entrants = [racing.Entrant(label, [], label) for label in ("a", "b", "c")]
    observed = {e.label: racing.Observed(row) for e, row in zip(entrants, rows, strict=True)}
    settings = Settings(min_seeds=6, max_seeds=6, test="pooled")
    decision = racing.decide(entrants, observed, 0, settings, frozenset())
    assert [(c.entrant, level) for c, level in decision.drops] == [
        ("b", pytest.approx(0.05 / 3)), ("c", pytest.approx(0.05))]  # fmt: skip


def test_the_closed_test_names_a_winner_when_only_the_last_challenger_is_close():
    """Five entrants, one look. a is far ahead of b, c and d, and 1.2 points ahead of e
    (p = 0.017, between 5%/4 and 5%/2). Every set holding a = e and none of a's rejected
    pairs is {a, e} beside groups of b, c and d, so the race's closed test holds a = e to
    5%/2 (the level split among a set's groups) and a is the one left; Bonferroni over the
    set's size (the verdict's closure, and the race's before 2026-12-06) holds it to 5%/4,
    and e would race on."""
    w1 = {1: 0.01, 2: -0.01, 3: 0.0, 4: 0.01, 5: -0.01, 6: 0.0}
    w2 = {1: -0.01, 2: 0.0, 3: 0.01, 4: 0.0, 5: 0.01, 6: -0.01}
    rows = {"a": A, "b": {s: A[s] - 0.20 + w1[s] for s in A},
            "c": {s: A[s] - 0.19 + w2[s] for s in A},
            "d": {s: A[s] - 0.18 + w1[s] for s in A},
            "e": {s: A[s] - 0.012 + w2[s] for s in A}}  # fmt: skip
    entrants = [racing.Entrant(label, [], label) for label in rows]
    observed = {label: racing.Observed(row) for label, row in rows.items()}
    settings = Settings(min_seeds=6, max_seeds=6, test="pooled")
    decision = racing.decide(entrants, observed, 0, settings, frozenset())
    ps = {c.entrant: c.difference.p for c in decision.compared}
    assert ps["e"] == pytest.approx(_pooled_p(list(rows.values()), 0, 4))
    assert 0.05 / 4 < ps["e"] <= 0.05 / 2
    levels = {c.entrant: level for c, level in decision.drops}
    assert levels["e"] == pytest.approx(0.05 / 2)
    racing.apply(entrants, decision, 1, 6)
    assert [e.label for e in entrants if e.racing] == ["a"]
    assert decision.rejected >= {frozenset(("a", x)) for x in "bcde"}


def test_validation_decides_even_where_test_disagrees(tmp_path):
    # On test, lr=0.1 would win by far; on validation it is the clear loser.
    test = {WORSE: {s: 0.99 for s in LUCK}}
    race, _ = _race(tmp_path, [BEST, WORSE], test=test)
    found = race.run()
    assert found.outcome.winner == BEST and WORSE in found.outcome.dropped
    assert found.outcome.test_accuracy == {
        BEST: pytest.approx(0.90 + sum(LUCK[s] for s in (1, 2, 3)) / 3 - 0.05)
    }


def test_a_candidate_within_the_margin_of_the_leader_ends_the_race(tmp_path, capsys):
    race, fake = _race(tmp_path, [BEST, TIE], Settings(min_seeds=3, max_seeds=6))
    found = race.run()
    assert found.outcome.why == f"every challenger left ({TIE}) is within ±1 points of {BEST}"
    assert found.outcome.winner is None and found.outcome.leading == BEST
    assert len(found.rounds) < 4  # before max_seeds
    assert "within the margin of" in capsys.readouterr().out


def test_a_race_tunes_each_candidate_on_validation_and_drops_candidates_whole(tmp_path):
    # Two candidates (backbones) x two learning rates. mobilenet_v2 is best at 0.01, b0 at
    # 0.001; b0's best trails mobilenet_v2's best by 10 points: b0 goes, both its rates.
    values = {
        "backbone=mobilenet_v2 optimizer.lr=0.01": A,
        "backbone=mobilenet_v2 optimizer.lr=0.001": {s: A[s] - 0.15 for s in A},
        "backbone=b0 optimizer.lr=0.01": {s: A[s] - 0.30 for s in A},
        "backbone=b0 optimizer.lr=0.001": {s: A[s] - 0.10 + 0.001 * s for s in A},
    }
    sweep = ["backbone=mobilenet_v2,b0", "optimizer.lr=0.01,0.001"]
    race, fake = _race(tmp_path, list(values), values=values, sweep=sweep)
    found = race.run()
    assert found.candidates == ["backbone=mobilenet_v2", "backbone=b0"]
    dropped = found.outcome.dropped
    assert "worse than backbone=mobilenet_v2 optimizer.lr=0.01" in dropped[
        "backbone=mobilenet_v2 optimizer.lr=0.001"]["reason"]  # fmt: skip
    assert dropped["backbone=b0 optimizer.lr=0.001"]["reason"].startswith(
        "its best configuration is worse than backbone=mobilenet_v2 optimizer.lr=0.01"
    )
    assert "backbone=b0 optimizer.lr=0.01" in dropped  # with its candidate
    assert found.outcome.winner == "backbone=mobilenet_v2"
    assert found.outcome.chosen == {"backbone=mobilenet_v2": "optimizer.lr=0.01"}


def test_a_candidate_whose_other_configuration_is_not_yet_shown_worse_races_on():
    """b's measured best (b1) is shown worse than the leader's best (m1), but its other
    configuration (b2), much noisier, is shown worse neither than b1 nor than m1: it may be
    b's true best.
    Dropping b whole would claim more than the pairs tested show, so b races on, b1
    included, and goes whole once b2 is shown worse than b1."""
    swing = {1: 0.08, 2: -0.08, 3: 0.06, 4: -0.06, 5: 0.07, 6: -0.07}
    rows = {"m1": A, "m2": {s: A[s] - 0.15 for s in A},
            "b1": {s: A[s] - 0.10 + 0.001 * s for s in A},
            "b2": {s: A[s] - 0.11 + 2.5 * swing[s] for s in A}}  # fmt: skip
    entrants = [racing.Entrant(label, [], label[0]) for label in rows]
    observed = {label: racing.Observed(row) for label, row in rows.items()}
    settings = Settings(min_seeds=6, max_seeds=6)
    decision = racing.decide(entrants, observed, 0, settings, frozenset())
    assert {c.entrant for c, _ in decision.drops} == {"m2"}
    assert frozenset(("m1", "b1")) in decision.rejected
    assert frozenset(("b1", "b2")) not in decision.rejected and decision.whole == frozenset()
    assert frozenset(("m1", "b2")) not in decision.rejected
    assert decision.open == ["b"]
    racing.apply(entrants, decision, 1, 6)
    assert [e.label for e in entrants if e.racing] == ["m1", "b1", "b2"]
    # b2 now shown worse than b1 at the next look: b goes whole, on m1 > b1 shown before
    rows["b2"] = {s: A[s] - 0.30 + 0.001 * s for s in A}
    observed = {label: racing.Observed(row) for label, row in rows.items()}
    later = racing.decide(entrants, observed, 0, settings, decision.rejected)
    assert later.whole == {"b"}
    racing.apply(entrants, later, 2, 6)
    assert [e.label for e in entrants if e.racing] == ["m1"]
    assert "its best configuration is worse than m1" in entrants[2].reason
    assert "shown at an earlier look" in entrants[2].reason


def test_a_tuned_candidate_within_the_margin_of_the_leader_ends_the_race(tmp_path):
    # b0's best (0.001) is 0.2 points under mobilenet_v2's best (0.01), well within the
    # 1-point margin: the race ends there with no winner. The equivalence is the candidate's
    # (b0), not its best configuration's label, or the race would never see it.
    values = {
        "backbone=mobilenet_v2 optimizer.lr=0.01": A,
        "backbone=mobilenet_v2 optimizer.lr=0.001": {s: A[s] - 0.15 for s in A},
        "backbone=b0 optimizer.lr=0.01": {s: A[s] - 0.30 for s in A},
        "backbone=b0 optimizer.lr=0.001": VALUES[TIE],
    }
    sweep = ["backbone=mobilenet_v2,b0", "optimizer.lr=0.01,0.001"]
    race, _ = _race(tmp_path, list(values), values=values, sweep=sweep)
    found = race.run()
    assert found.outcome.why == (
        "every challenger left (backbone=b0) is within ±1 points of backbone=mobilenet_v2"
    )
    assert found.outcome.winner is None and len(found.rounds) < 4  # before max_seeds
    last = {s.entrant: s for s in found.rounds[-1].standings}
    assert last["backbone=b0 optimizer.lr=0.001"].equivalent


def test_a_race_on_a_full_grids_records_counts_only_the_runs_it_would_have_trained(tmp_path):
    race, fake = _race(tmp_path, [BEST, WORSE, CLOSE])
    fake([(e, s) for e in race.entrants for s in range(1, 7)])  # another sweep left a grid
    found = race.run()
    assert {r.launched for r in found.rounds} == {0}
    last = {s.entrant: s for s in found.rounds[-1].standings}
    assert last[WORSE].seeds == [1, 2, 3]  # as it stood when round 1 dropped it
    assert found.outcome.runs == sum(len(s.seeds) + len(s.failed) for s in last.values())


def test_the_race_floor_benchmark_decides_as_the_race_command_does(tmp_path):
    """benchmarks/race_floor.py replays a grid's records in the race's own rounds: the same
    runs, training hours and entrants left as the race itself on those records."""
    race, fake = _race(tmp_path, [BEST, WORSE, CLOSE], diverge=[(CLOSE, 5)])
    fake([(e, s) for e in race.entrants for s in range(1, 7)])
    found = race.run()
    sweep = {"optimizer.lr": ["0.001", "0.1", "0.003"]}
    labels, x, hours = race_floor.grid(tmp_path / "runs", sweep, 6)
    assert x[2, 4] == 0.25  # the diverged seed at chance (4 classes), as the race counts it
    replayed = race_floor.replay(x, hours, labels, 1, Settings(min_seeds=3, max_seeds=6), False)
    assert replayed["runs"] == found.outcome.runs and found.outcome.runs < 18
    assert replayed["hours"] == pytest.approx(found.outcome.training_hours, abs=1e-3)
    left = {s.entrant for s in found.rounds[-1].standings if s.state != "dropped"}
    assert set(replayed["left"]) == left


def test_a_failed_run_is_a_missing_seed_a_diverged_one_counts_at_chance(tmp_path):
    fail = {(BEST, 2): "no weights"}
    fail |= {(WORSE, s): "no such handle" for s in range(1, 7)}
    race, _ = _race(tmp_path, [BEST, WORSE, CLOSE], fail=fail, diverge={(CLOSE, 1)},
                    settings=Settings(min_seeds=3, max_seeds=3))  # fmt: skip
    found = race.run()
    first = {s.entrant: s for s in found.rounds[0].standings}
    assert first[BEST].seeds == [1, 3] and first[BEST].failed == [2]
    assert first[BEST].mean == pytest.approx((0.90 + 0.89) / 2)  # no zero for the failure
    assert first[CLOSE].diverged == [1] and 1 in first[CLOSE].seeds  # at chance, 1 / 4
    assert first[CLOSE].mean == pytest.approx((0.25 + VALUES[CLOSE][2] + VALUES[CLOSE][3]) / 3)
    reason = found.outcome.dropped[WORSE]["reason"]
    assert reason == "every seed failed (WeightsUnavailable: no such handle)"


def test_a_race_stops_once_its_budget_is_spent(tmp_path):
    # Every fake run trains 360 s: round 1 of three entrants is 9 runs, 0.9 h.
    race, fake = _race(tmp_path, [BEST, TIE, CLOSE],
                       Settings(min_seeds=3, max_seeds=6, budget_hours=0.5))  # fmt: skip
    found = race.run()
    assert found.outcome.why == "budget_hours (0.5) spent: 0.90 h of training"
    assert len(found.rounds) == 1 and len(fake.launched) == 9


def test_a_race_cut_off_and_launched_again_goes_on_where_it_stopped(tmp_path):
    race, fake = _race(tmp_path, [BEST, WORSE, CLOSE], cut_after=10)
    with pytest.raises(KeyboardInterrupt):
        race.run()
    assert len(fake.launched) == 10  # round 1 (9 runs) and one run of round 2
    again, refake = _race(tmp_path, [BEST, WORSE, CLOSE])
    found = again.run()
    # Nothing completed is trained again: round 1 launches nothing, round 2 the one missing.
    assert [r.launched for r in found.rounds][:2] == [0, 1]
    uncut, _ = _race(tmp_path / "uncut", [BEST, WORSE, CLOSE])
    assert found.outcome == uncut.run().outcome


def test_the_race_settings_are_checked_with_their_keys():
    with pytest.raises(ConfigError, match=r"hydra.sweeper.min_seeds=1.*2 or more"):
        Settings(min_seeds=1).check()
    with pytest.raises(ConfigError, match="hydra.sweeper.max_seeds=2"):
        Settings(min_seeds=3, max_seeds=2).check()
    with pytest.raises(ConfigError, match="hydra.sweeper.metric=loss"):
        Settings(metric="loss").check()
    with pytest.raises(
        ConfigError, match="hydra.sweeper.test=holm.*Allowed: blocks, pooled, pairs"
    ):
        Settings(test="holm").check()
    with pytest.raises(ConfigError, match="the test split reports what validation chose"):
        Settings(metric="test_accuracy").check()
    with pytest.raises(ConfigError, match="a maximum over epochs"):
        Settings(metric="best_val_accuracy").check()


def test_the_sweep_becomes_candidates_and_tuning_and_the_race_owns_the_seed():
    common, found = candidates(["backbone=b0,mobilenet_v2", "epochs=2", "optimizer=adam,sgd"])
    assert common == ["epochs=2"]
    assert [(e.candidate, e.config) for e in found] == [
        ("backbone=b0", "optimizer=adam"), ("backbone=b0", "optimizer=sgd"),
        ("backbone=mobilenet_v2", "optimizer=adam"), ("backbone=mobilenet_v2", "optimizer=sgd"),
    ]  # fmt: skip
    _, rates = candidates(["optimizer.lr=0.1,0.01"])  # nothing to compare: rates are candidates
    assert [(e.candidate, e.config) for e in rates] == [
        ("optimizer.lr=0.1", "as configured"), ("optimizer.lr=0.01", "as configured")
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="seed=1,2: the race chooses the seeds"):
        candidates(["backbone=b0,b1", "seed=1,2"])


def test_a_race_on_test_accuracy_exits_2_before_anything_runs(tmp_path):
    proc = bench_run(tmp_path, None, "-m", "hydra/sweeper=race", "backbone=b0,b1",
                     "hydra.sweeper.metric=test_accuracy")  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "hydra.sweeper.metric=test_accuracy: the test split reports" in proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_tuned_race_through_the_real_command_drops_a_candidate_that_always_fails(
    tmp_path, tfds_dir, tiny
):
    """Through joblib (two jobs at a time), two candidates (hub handles) at two learning
    rates each: the handle that does not load fails every seed and goes with both its
    rates; the other is the one left, with the rate validation chose and its test accuracy.
    Launched again (basic launcher), the race trains none of its completed points again."""
    missing = tmp_path / "no_such_handle"
    good = next(o for o in tiny if o.startswith("backbone.hub_handle="))
    rest = [o for o in tiny if o != good]
    args = ["-m", "hydra/sweeper=race", "hydra.sweeper.min_seeds=2", "hydra.sweeper.max_seeds=3",
            "hydra.sweeper.compare=[backbone.hub_handle]", "epochs=2", *rest,
            f"{good},{missing}", "optimizer.lr=0.01,0.001"]  # fmt: skip
    proc = bench_run(tmp_path, tfds_dir, *args, "hydra/launcher=joblib")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "race round 1: seeds 1-2 for 4 entrants; 8 runs to train" in proc.stdout
    assert "race standings after round 1 (final_val_accuracy" in proc.stdout
    assert f"race over: {good} is the one left" in proc.stdout
    (sweep_dir,) = (tmp_path / "multirun").iterdir()
    found = json.loads((sweep_dir / "race.json").read_text())
    assert found == json.loads((tmp_path / "runs" / "races" / f"{sweep_dir.name}.json").read_text())
    document = RaceDocument.from_dict(found)
    assert document.outcome.winner == good
    records = load_records(tmp_path)
    by_rate: dict[float, list[float]] = {}
    for r in records:
        if r["status"] == "completed":
            rate = r["config"]["optimizer"]["lr"]
            by_rate.setdefault(rate, []).append(r["metrics"]["final_val_accuracy"])
    chosen = max(by_rate, key=lambda rate: np.mean(by_rate[rate]))
    assert document.outcome.chosen == {good: f"optimizer.lr={chosen}"}
    tests = [
        r["metrics"]["test_accuracy"] for r in records
        if r["status"] == "completed" and r["config"]["optimizer"]["lr"] == chosen
    ]  # fmt: skip
    assert document.outcome.test_accuracy[good] == pytest.approx(np.mean(tests))
    for rate in ("0.01", "0.001"):
        entrant = f"backbone.hub_handle={missing} optimizer.lr={rate}"
        reason = document.outcome.dropped[entrant]["reason"]
        assert reason.startswith("every seed failed (WeightsUnavailable: backbone.hub_handle=")
    assert sorted(r["status"] for r in records) == ["completed"] * 4 + ["failed"] * 4
    assert len({r["env"]["pid"] for r in records}) == 8  # each its own worker
    again = bench_run(tmp_path, tfds_dir, *args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Epoch 1/2" not in again.stdout  # the completed points are not trained again
    assert f"race over: {good} is the one left" in again.stdout
    out = tmp_path / "report"  # the page shows the race's course and outcome
    assert report.main(["--runs", str(tmp_path / "runs"), "--out", str(out)]) == 0
    page = (out / "report.md").read_text()
    assert f"## Race {sweep_dir.name}" in page
    assert f"{good} won on final_val_accuracy: {good} is the one left. 8 runs of the 12" in page
    assert f"{good} chose optimizer.lr={chosen} on validation: test accuracy" in page


def test_a_race_with_a_bad_candidate_exits_2_before_anything_runs(tmp_path):
    proc = bench_run(tmp_path, None, "-m", "hydra/sweeper=race", "backbone=b0,b9")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "1 of 2 race candidates have config errors; nothing ran" in proc.stderr
    assert "backbone=b9" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_the_race_sweeper_is_known_from_an_editable_install_too():
    """Hydra lists hydra_plugins' folders to find plugins; bench registers its own."""
    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    from hydra_plugins.bench_race_sweeper import race_sweeper

    race_sweeper.register()
    assert race_sweeper.RaceSweeper in Plugins.instance().discover(Sweeper)
    assert Path(race_sweeper.__file__).parent.name == "bench_race_sweeper"
