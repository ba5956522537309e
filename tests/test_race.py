"""Races: rounds, drops (paired, Holm-adjusted), failures as missing seeds, budgets, resuming
from the records, race.json, and the real command through two launchers.

The in-process tests give the race a launch that writes each point's record itself (a
known value per candidate and seed) instead of training: the race decides from records
alone, so that is all it sees of a run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.core import record
from bench.core.errors import ConfigError
from bench.core.record import ErrorInfo, Metrics, Record, Status
from bench.launch.race import Candidate, Race, Settings
from bench.launch.race_sweep import candidates
from tests.helpers import bench_run, load_records, make_spec

# test_accuracy per candidate and seed. A and TIE share their per-seed luck (TIE is 0.5
# points behind, give or take: more than 50 seeds would tell them apart); B is 10 points
# behind on every seed; CLOSE about 2 points, too noisily for 3 seeds to show it (paired p
# 0.07) but not for 4 (p 0.016); LATE looks like CLOSE for 3 seeds, then not at 4.
LUCK = {1: 0.00, 2: 0.02, 3: -0.01, 4: 0.01, 5: -0.02, 6: 0.015}
A = {s: 0.90 + v for s, v in LUCK.items()}
BEHIND = {"CLOSE": (0.01, 0.03, 0.02, 0.025, 0.02, 0.02), "LATE": (0.012, 0.03, 0.02, -0.01, 0, 0)}
VALUES = {
    "optimizer.lr=0.001": A,
    "optimizer.lr=0.1": {s: 0.80 + v + 0.001 * s for s, v in LUCK.items()},
    "optimizer.lr=0.002": {s: 0.895 + v + (0.008 if s % 2 else -0.008) for s, v in LUCK.items()},
    "optimizer.lr=0.003": {s: A[s] - d for s, d in enumerate(BEHIND["CLOSE"], start=1)},
    "optimizer.lr=0.004": {s: A[s] - d for s, d in enumerate(BEHIND["LATE"], start=1)},
}
BEST, WORSE, TIE, CLOSE, LATE = VALUES


class Fake:
    """A launcher that writes the records its points would leave (or fails them)."""

    def __init__(self, spec_for, values, fail: dict | None = None, cut_after: int | None = None):
        self.spec_for, self.values, self.fail = spec_for, values, fail or {}
        self.launched: list[tuple[str, int]] = []
        self.cut_after = cut_after

    def __call__(self, points):
        for candidate, seed in points:
            if self.cut_after is not None and len(self.launched) >= self.cut_after:
                raise KeyboardInterrupt("the race was cut off")
            self.launched.append((candidate.label, seed))
            spec = self.spec_for(candidate, seed)
            error = self.fail.get((candidate.label, seed))
            done = Record(
                run_id=spec.run_id, status=Status.failed if error else Status.completed,
                started_at=record.now(), finished_at=record.now(), config=spec.config_dict(),
                metrics=Metrics(test_accuracy=None if error else self.values[candidate.label][seed],
                                best_val_accuracy=0.5, train_time_s=360.0),
                error=ErrorInfo("WeightsUnavailable", error) if error else None,
                job={"attempt": f"{candidate.label}-{seed}-{len(self.launched)}"},
            )  # fmt: skip
            record.save(done, spec.cfg.results_dir)


def _race(tmp_path, labels, settings=None, fail=None, cut_after=None, values=VALUES):
    entrants = [Candidate(label, [label]) for label in labels]
    specs = {}

    def spec_for(candidate, seed):
        key = (candidate.label, seed)
        if key not in specs:
            specs[key] = make_spec("dataset=shapes", *candidate.overrides, f"seed={seed}",
                                   f"results_dir={tmp_path / 'runs'}")  # fmt: skip
        return specs[key]

    fake = Fake(spec_for, values, fail, cut_after)
    outputs = [tmp_path / "sweep" / "race.json", tmp_path / "runs" / "races" / "r.json"]
    settings = settings or Settings(min_seeds=3, max_seeds=6, test="pairs")
    race = Race(settings, [], entrants, spec_for, fake, outputs)
    return race, fake


def test_a_candidate_shown_worse_is_dropped_and_one_seeds_could_still_decide_races_on(
    tmp_path, capsys
):
    race, fake = _race(tmp_path, [BEST, WORSE, CLOSE])
    found = race.run()
    printed = capsys.readouterr().out  # the standings of every round, the drop's round named
    assert "dropped at round 1: worse than optimizer.lr=0.001 by 9.8 points" in printed
    assert "racing (about 6 seeds each would tell it from optimizer.lr=0.001)" in printed
    rounds = found["rounds"]
    assert [r["seeds"] for r in rounds] == [3, 4]
    assert [r["launched"] for r in rounds] == [9, 2]  # WORSE stopped after round 1
    assert len(fake.launched) == found["outcome"]["runs"] == 11
    assert found["outcome"]["grid_runs"] == 18
    dropped = found["outcome"]["dropped"]
    assert dropped[WORSE]["round"] == 1 and dropped[CLOSE]["round"] == 2
    assert (
        "worse than optimizer.lr=0.001 by 9.8 points (paired t, Holm-adjusted p"
        in (dropped[WORSE]["reason"])
    )
    assert "over 1 comparisons" in dropped[CLOSE]["reason"]  # round 2's family: CLOSE alone
    assert found["outcome"]["why"] == f"{BEST} is the one left"
    assert found["outcome"]["winner"] == found["outcome"]["leading"] == BEST
    assert found["metric"] == "test_accuracy"
    first = {s["candidate"]: s for s in rounds[0]["standings"]}
    assert first[CLOSE]["state"] == "racing" and first[CLOSE]["seeds_needed"] == 6
    assert rounds[-1]["standings"][1]["seeds"] == [1, 2, 3]  # no seed for WORSE after its drop
    for path in (tmp_path / "sweep" / "race.json", tmp_path / "runs" / "races" / "r.json"):
        assert json.loads(path.read_text()) == json.loads(json.dumps(found, default=str))
    from bench.analysis import report  # the report's course: seeds needed while racing

    (shown,) = report.races(tmp_path / "runs")
    course = shown.course.set_index(["round", "candidate"])["seeds each to settle"]
    assert course[1, CLOSE] == "about 6" and course[1, BEST] == "-" and course[1, WORSE] == "-"


def test_a_race_ends_once_no_challenger_would_be_told_from_the_leader_within_max_seeds(
    tmp_path, capsys
):
    race, fake = _race(tmp_path, [BEST, WORSE, TIE])
    found = race.run()
    assert "racing (more than 50 seeds each would tell it from optimizer.lr=0.001)" in (
        capsys.readouterr().out
    )
    assert found["outcome"]["why"] == (
        f"{BEST} leads and no challenger left ({TIE}) would be told from it within "
        "max_seeds (6) at the spread seen so far"
    )
    assert len(found["rounds"]) == 1 and len(fake.launched) == 9
    assert found["outcome"]["leading"] == BEST and found["outcome"]["winner"] is None
    assert list(found["outcome"]["dropped"]) == [WORSE]


def test_a_race_that_seeds_could_still_decide_runs_to_max_seeds(tmp_path):
    race, fake = _race(tmp_path, [BEST, LATE], Settings(min_seeds=3, max_seeds=4, test="pairs"))
    found = race.run()
    assert found["rounds"][0]["standings"][1]["seeds_needed"] == 4  # so round 2 is run
    assert found["outcome"]["why"] == "max_seeds (4) reached with 2 left"
    assert [r["launched"] for r in found["rounds"]] == [6, 2]
    assert found["outcome"]["leading"] == BEST and found["outcome"]["winner"] is None


def test_the_seed_noise_pooled_over_the_race_drops_what_each_pairs_own_cannot_yet(tmp_path):
    # The first test's race under the default test: CLOSE's 2 points, unresolved by its
    # own paired t at 3 seeds (2 degrees of freedom), fall outside the pooled noise (4).
    race, fake = _race(tmp_path, [BEST, WORSE, CLOSE], Settings(min_seeds=3, max_seeds=6))
    found = race.run()
    assert found["outcome"]["winner"] == BEST and len(fake.launched) == 9
    assert found["outcome"]["dropped"][CLOSE]["round"] == 1
    assert "(block t, Holm-adjusted p" in found["outcome"]["dropped"][CLOSE]["reason"]


def test_a_race_on_a_full_grids_records_counts_only_the_runs_it_would_have_trained(tmp_path):
    # A grid of every candidate at max_seeds is already on disk (another sweep left it).
    race, fake = _race(tmp_path, [BEST, WORSE, CLOSE])
    fake([(c, s) for c in race.entrants for s in range(1, 7)])
    found = race.run()
    assert [r["launched"] for r in found["rounds"]] == [0, 0]
    assert found["outcome"]["runs"] == 11  # as the race that trains them: 9, then 2
    last = {s["candidate"]: s for s in found["rounds"][-1]["standings"]}
    assert last[WORSE]["seeds"] == [1, 2, 3]  # as it stood when round 1 dropped it
    assert last[WORSE]["mean"] == pytest.approx(sum(VALUES[WORSE][s] for s in (1, 2, 3)) / 3)


def test_the_last_one_left_wins(tmp_path):
    race, fake = _race(tmp_path, ["optimizer.lr=0.001", "optimizer.lr=0.1"])
    found = race.run()
    assert found["outcome"]["winner"] == "optimizer.lr=0.001"
    assert found["outcome"]["why"] == "optimizer.lr=0.001 is the one left"
    assert len(found["rounds"]) == 1 and len(fake.launched) == 6


def test_a_failed_run_is_a_missing_seed_and_a_candidate_that_fails_every_seed_is_dropped(tmp_path):
    fail = {("optimizer.lr=0.001", 2): "no weights"}
    fail |= {("optimizer.lr=0.1", s): "no such handle" for s in range(1, 7)}
    race, _ = _race(tmp_path, ["optimizer.lr=0.001", "optimizer.lr=0.1"], fail=fail,
                    settings=Settings(min_seeds=3, max_seeds=3))  # fmt: skip
    found = race.run()
    first = {s["candidate"]: s for s in found["rounds"][0]["standings"]}
    assert first["optimizer.lr=0.001"]["seeds"] == [1, 3] and first["optimizer.lr=0.001"][
        "failed"
    ] == [2]
    # The mean of the seeds that completed, not a zero for the one that failed.
    assert first["optimizer.lr=0.001"]["mean"] == pytest.approx((0.90 + 0.89) / 2)
    reason = found["outcome"]["dropped"]["optimizer.lr=0.1"]["reason"]
    assert reason == "every seed failed (WeightsUnavailable: no such handle)"
    assert found["outcome"]["winner"] == "optimizer.lr=0.001"


def test_a_race_stops_once_its_budget_is_spent(tmp_path):
    # Every fake run trains 360 s: round 1 of three candidates is 9 runs, 0.9 h.
    race, fake = _race(
        tmp_path, [BEST, WORSE, TIE], Settings(min_seeds=3, max_seeds=6, budget_hours=0.5)
    )
    found = race.run()
    assert found["outcome"]["why"] == "budget_hours (0.5) spent: 0.90 h of training"
    assert len(found["rounds"]) == 1 and len(fake.launched) == 9


def test_a_race_cut_off_and_launched_again_goes_on_where_it_stopped(tmp_path):
    race, fake = _race(tmp_path, [BEST, WORSE, CLOSE], cut_after=10)
    with pytest.raises(KeyboardInterrupt):
        race.run()
    assert len(fake.launched) == 10  # round 1 (9 runs) and one run of round 2
    again, refake = _race(tmp_path, [BEST, WORSE, CLOSE])
    found = again.run()
    # Nothing completed is trained again: round 1 launches nothing, round 2 the one missing.
    assert [r["launched"] for r in found["rounds"]] == [0, 1]
    uncut, _ = _race(tmp_path / "uncut", [BEST, WORSE, CLOSE])
    assert found["outcome"] == uncut.run()["outcome"]


def test_the_race_settings_are_checked_with_their_keys():
    with pytest.raises(ConfigError, match=r"hydra.sweeper.min_seeds=1.*2 or more"):
        Settings(min_seeds=1).check()
    with pytest.raises(ConfigError, match="hydra.sweeper.max_seeds=2"):
        Settings(min_seeds=3, max_seeds=2).check()
    with pytest.raises(ConfigError, match="hydra.sweeper.metric=loss"):
        Settings(metric="loss").check()
    with pytest.raises(ConfigError, match="hydra.sweeper.test=holm.*Allowed: blocks, pairs"):
        Settings(test="holm").check()


def test_the_sweep_becomes_candidates_and_the_race_owns_the_seed():
    common, found = candidates(["backbone=b0,mobilenet_v2", "epochs=2", "optimizer=adam,sgd"])
    assert common == ["epochs=2"]
    assert [c.label for c in found] == [
        "backbone=b0 optimizer=adam", "backbone=b0 optimizer=sgd",
        "backbone=mobilenet_v2 optimizer=adam", "backbone=mobilenet_v2 optimizer=sgd",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="seed=1,2: the race chooses the seeds"):
        candidates(["backbone=b0,b1", "seed=1,2"])


@pytest.mark.slow
def test_a_race_through_the_real_command_drops_a_candidate_that_always_fails(
    tmp_path, tfds_dir, tiny
):
    """Through joblib (two jobs at a time): a candidate whose hub handle does not load fails
    both its seeds and is dropped with the reason; the other is the one left. Launched
    again (basic launcher), the race trains none of its completed points again."""
    missing = tmp_path / "no_such_handle"
    good = next(o for o in tiny if o.startswith("backbone.hub_handle="))
    rest = [o for o in tiny if o != good]
    args = ["-m", "hydra/sweeper=race", "hydra.sweeper.min_seeds=2", "hydra.sweeper.max_seeds=3",
            "epochs=2", *rest, f"{good},{missing}"]  # fmt: skip
    proc = bench_run(tmp_path, tfds_dir, *args, "hydra/launcher=joblib")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "race round 1: seeds 1-2 for 2 candidates; 4 runs to train" in proc.stdout
    assert "race standings after round 1 (test_accuracy)" in proc.stdout
    assert f"race over: {good} is the one left" in proc.stdout
    (sweep_dir,) = (tmp_path / "multirun").iterdir()
    found = json.loads((sweep_dir / "race.json").read_text())
    assert found == json.loads((tmp_path / "runs" / "races" / f"{sweep_dir.name}.json").read_text())
    assert found["outcome"]["winner"] == good
    reason = found["outcome"]["dropped"][f"backbone.hub_handle={missing}"]["reason"]
    assert reason.startswith("every seed failed (WeightsUnavailable: backbone.hub_handle=")
    records = load_records(tmp_path)
    assert sorted((r["config"]["seed"], r["status"]) for r in records) == [
        (1, "completed"), (1, "failed"), (2, "completed"), (2, "failed")
    ]  # fmt: skip
    assert len({r["env"]["pid"] for r in records}) == 4  # each its own worker
    again = bench_run(tmp_path, tfds_dir, *args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Epoch 1/2" not in again.stdout  # the completed points are not trained again
    for kept in load_records(tmp_path):
        if kept["status"] == "completed":
            assert kept["attempts"] == 1
    assert f"race over: {good} is the one left" in again.stdout
    from bench.analysis import report  # the page shows the race's course and outcome

    out = tmp_path / "report"
    assert report.main(["--runs", str(tmp_path / "runs"), "--out", str(out)]) == 0
    page = (out / "report.md").read_text()
    assert f"## Race {sweep_dir.name}" in page
    assert f"{good} won on test_accuracy: {good} is the one left. 4 runs of the 6" in page


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
