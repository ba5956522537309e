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

# test_accuracy per candidate and seed. A and C share their per-seed luck (C is 0.5 points
# behind, give or take, a tie); B is 10 points behind on every seed.
LUCK = {1: 0.00, 2: 0.02, 3: -0.01, 4: 0.01, 5: -0.02, 6: 0.015}
VALUES = {
    "optimizer.lr=0.001": {s: 0.90 + v for s, v in LUCK.items()},
    "optimizer.lr=0.1": {s: 0.80 + v + 0.001 * s for s, v in LUCK.items()},
    "optimizer.lr=0.002": {s: 0.895 + v + (0.008 if s % 2 else -0.008) for s, v in LUCK.items()},
}


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
    race = Race(settings or Settings(min_seeds=3, max_seeds=6), [], entrants, spec_for, fake,
                outputs)  # fmt: skip
    return race, fake


def test_a_candidate_shown_worse_is_dropped_and_the_rest_race_on_to_max_seeds(tmp_path, capsys):
    race, fake = _race(tmp_path, list(VALUES))
    found = race.run()
    printed = capsys.readouterr().out  # the standings of every round, the drop's round named
    assert "dropped at round 1: worse than optimizer.lr=0.001 by 9.8 points" in printed
    rounds = found["rounds"]
    assert [r["seeds"] for r in rounds] == [3, 4, 5, 6]
    assert [r["launched"] for r in rounds] == [9, 2, 2, 2]  # B stopped after round 1
    assert len(fake.launched) == found["outcome"]["runs"] == 15
    assert found["outcome"]["grid_runs"] == 18
    dropped = found["outcome"]["dropped"]
    assert list(dropped) == ["optimizer.lr=0.1"] and dropped["optimizer.lr=0.1"]["round"] == 1
    assert (
        "worse than optimizer.lr=0.001 by 9.8 points (paired t, Holm-adjusted p"
        in (dropped["optimizer.lr=0.1"]["reason"])
    )
    assert found["outcome"]["why"] == "max_seeds (6) reached with 2 left"
    assert (
        found["outcome"]["leading"] == "optimizer.lr=0.001" and found["outcome"]["winner"] is None
    )
    assert found["metric"] == "test_accuracy"
    last = {s["candidate"]: s for s in rounds[-1]["standings"]}
    assert last["optimizer.lr=0.002"]["state"] == "racing" and last["optimizer.lr=0.002"][
        "seeds"
    ] == [1, 2, 3, 4, 5, 6]
    assert last["optimizer.lr=0.1"]["seeds"] == [1, 2, 3]  # no seed after its drop
    for path in (tmp_path / "sweep" / "race.json", tmp_path / "runs" / "races" / "r.json"):
        assert json.loads(path.read_text()) == json.loads(json.dumps(found, default=str))


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
    race, fake = _race(tmp_path, list(VALUES), Settings(min_seeds=3, max_seeds=6, budget_hours=0.5))
    found = race.run()
    assert found["outcome"]["why"] == "budget_hours (0.5) spent: 0.90 h of training"
    assert len(found["rounds"]) == 1 and len(fake.launched) == 9


def test_a_race_cut_off_and_launched_again_goes_on_where_it_stopped(tmp_path):
    race, fake = _race(tmp_path, list(VALUES), cut_after=10)
    with pytest.raises(KeyboardInterrupt):
        race.run()
    assert len(fake.launched) == 10  # round 1 (9 runs) and one run of round 2
    again, refake = _race(tmp_path, list(VALUES))
    found = again.run()
    # Nothing completed is trained again: round 1 launches nothing, round 2 the one missing.
    assert [r["launched"] for r in found["rounds"]] == [0, 1, 2, 2]
    uncut, _ = _race(tmp_path / "uncut", list(VALUES))
    assert found["outcome"] == uncut.run()["outcome"]


def test_the_race_settings_are_checked_with_their_keys():
    with pytest.raises(ConfigError, match=r"hydra.sweeper.min_seeds=1.*2 or more"):
        Settings(min_seeds=1).check()
    with pytest.raises(ConfigError, match="hydra.sweeper.max_seeds=2"):
        Settings(min_seeds=3, max_seeds=2).check()
    with pytest.raises(ConfigError, match="hydra.sweeper.metric=loss"):
        Settings(metric="loss").check()


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
