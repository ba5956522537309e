"""Races: spend seeds only where they decide something.

``python -m bench.run -m hydra/sweeper=race backbone=b0,b1,b2,b3,mobilenet_v2`` makes each
value of the sweep a candidate and trains it in rounds, through the configured launcher
(basic, joblib, submitit). Every candidate first runs seeds 1 to ``min_seeds``. After each
round the leader (highest mean of the metric) is compared with every other candidate still
in the race, all of them as one family under Holm's method (:mod:`bench.core.stats`); a
candidate shown worse than the leader is dropped. ``test=blocks`` (the default) takes the
seeds every racing candidate ran as blocks and pools the seed noise over all of them
(:func:`bench.core.stats.against`); ``test=pairs`` pairs each challenger with the leader
by seed alone (else Welch's t). The rest get ``step`` more seeds, until one remains,
``max_seeds`` is reached, ``budget_hours`` of training time is spent, or no challenger
left could be told from the leader within ``max_seeds``: more seeds would not decide
anything (each one's seeds needed, :func:`bench.core.stats.seeds_needed` at Holm's
strictest step, exceeds ``max_seeds``). A failed run is a missing seed, not a zero; a
candidate whose every seed failed is dropped with the reason.

Decisions are made from the records in ``results_dir`` only, so a race that is cut off and
launched again reads what its points left, skips what is completed and goes on where it
stopped; a point another launcher is training is waited for. After each round the
standings are printed and written to ``race.json`` in the sweep folder and to
``<results_dir>/races/``, where the report finds them.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tabulate import tabulate

from bench.core import record, stats
from bench.core.atomic import write as atomic_write
from bench.core.console import say
from bench.core.errors import ConfigError
from bench.core.spec import RunSpec
from bench.launch import locks

METRICS = ("auto", "test_accuracy", "best_val_accuracy", "final_val_accuracy")
TESTS = ("blocks", "pairs")  # stats.against (seed noise pooled), stats.compare (per pair)
WAIT_S = 5.0  # between looks at a point another launcher is training


@dataclass(frozen=True)
class Settings:
    """``hydra.sweeper.*`` of the race (bench.core.schema.RaceSweeperConf)."""

    metric: str = "auto"
    min_seeds: int = 3
    max_seeds: int = 10
    step: int = 1
    budget_hours: float | None = None
    level: float = 0.95
    test: str = "blocks"

    def check(self) -> None:
        """Raises ConfigError naming the key, the value, what is allowed and the fix."""
        key = "hydra.sweeper"
        if self.metric not in METRICS:
            raise ConfigError(f"{key}.metric", self.metric, METRICS, f"pass {key}.metric=auto")
        if self.min_seeds < 2:
            raise ConfigError(
                f"{key}.min_seeds", self.min_seeds, "2 or more", f"pass {key}.min_seeds=3",
                why="a comparison needs two seeds",
            )  # fmt: skip
        if self.max_seeds < self.min_seeds:
            raise ConfigError(f"{key}.max_seeds", self.max_seeds,
                              f">= {key}.min_seeds ({self.min_seeds})",
                              f"pass {key}.max_seeds={self.min_seeds} or more")  # fmt: skip
        if self.step < 1:
            raise ConfigError(f"{key}.step", self.step, "1 or more", f"pass {key}.step=1")
        if self.budget_hours is not None and self.budget_hours <= 0:
            raise ConfigError(f"{key}.budget_hours", self.budget_hours, "> 0, or null",
                              f"pass {key}.budget_hours=null for no budget")  # fmt: skip
        if self.test not in TESTS:
            raise ConfigError(f"{key}.test", self.test, TESTS, f"pass {key}.test=blocks")
        if not 0.5 < self.level < 1:
            raise ConfigError(f"{key}.level", self.level, "between 0.5 and 1",
                              f"pass {key}.level=0.95")  # fmt: skip


@dataclass
class Candidate:
    """One value of the sweep (its overrides) and where it stands."""

    label: str
    overrides: list[str]
    state: str = "racing"  # racing | leading | dropped | winner
    dropped_at: int | None = None
    reason: str | None = None
    tried: set[int] = field(default_factory=set)  # seeds launched by this race
    seeds_at_drop: int | None = None

    @property
    def racing(self) -> bool:
        return self.state != "dropped"

    def upto(self, seeds: int) -> int:
        """The seeds that count for this candidate in a round of ``seeds``: a dropped one
        stays at the round that dropped it, even when other sweeps left later seeds."""
        return seeds if self.seeds_at_drop is None else min(seeds, self.seeds_at_drop)

    def drop(self, number: int, seeds: int, reason: str) -> None:
        """Takes this candidate out of the race at round ``number`` of ``seeds`` seeds."""
        self.state, self.dropped_at, self.seeds_at_drop = "dropped", number, seeds
        self.reason = reason


@dataclass
class Standing:
    """A candidate after one round."""

    candidate: str
    state: str
    mean: float | None
    interval: tuple[float, float] | None
    seeds: list[int]
    failed: list[int]
    against: str | None = None
    difference: float | None = None  # the leader minus this candidate
    test: str | None = None
    p_adjusted: float | None = None
    seeds_needed: int | None = None  # per side to resolve the difference, None beyond 50
    note: str | None = None
    dropped_at: int | None = None  # the round


class Race:
    """The rounds of one race.

    Args:
        settings: The sweeper's keys.
        common: The overrides every job shares.
        entrants: The candidates.
        spec_for: The RunSpec of a candidate at a seed (its run_id, where its record is).
        launch: Trains the given (candidate, seed) points through the launcher.
        outputs: Where race.json goes (the sweep folder, ``<results_dir>/races/<name>.json``).
    """

    def __init__(
        self,
        settings: Settings,
        common: list[str],
        entrants: list[Candidate],
        spec_for: Callable[[Candidate, int], RunSpec],
        launch: Callable[[list[tuple[Candidate, int]]], None],
        outputs: list[Path],
    ):
        self.settings, self.common, self.entrants = settings, common, entrants
        self.spec_for, self.launch, self.outputs = spec_for, launch, outputs
        self.rounds: list[dict] = []
        self.metric = settings.metric
        self.open: list[str] = []  # challengers the last round could not resolve in time

    def run(self) -> dict:
        """Runs rounds until the race is decided; returns what race.json holds."""
        seeds = self.settings.min_seeds
        for number in itertools.count(1):
            todo = self._todo(seeds)
            say(f"race round {number}: seeds 1-{seeds} for {self._racing_count()} candidates; "
                f"{len(todo)} runs to train, the rest already done")  # fmt: skip
            if todo:
                self.launch(todo)
                for candidate, seed in todo:
                    candidate.tried.add(seed)
            self._wait_for_others(seeds)
            standings = self._decide(number, seeds)
            self.rounds.append({"round": number, "seeds": seeds, "launched": len(todo),
                                "standings": [asdict(s) for s in standings]})  # fmt: skip
            stop = self._stop(seeds)
            self._print(number, standings)
            self._write(stop)
            if stop:
                say(f"race over: {stop}")
                return self.document(stop)
            seeds = min(seeds + self.settings.step, self.settings.max_seeds)
        raise AssertionError("unreachable")

    def _racing_count(self) -> int:
        return sum(c.racing for c in self.entrants)

    def _record(self, candidate: Candidate, seed: int) -> record.Record | None:
        try:
            return record.read(self.spec_for(candidate, seed).record_path)
        except (OSError, ValueError):
            return None

    def _todo(self, seeds: int) -> list[tuple[Candidate, int]]:
        """Racing candidates' seeds up to ``seeds`` that have no completed record and that
        this race has not tried (a failed seed is not retried in the same race)."""
        found = []
        for candidate in self.entrants:
            if not candidate.racing:
                continue
            for seed in range(1, seeds + 1):
                done = self._record(candidate, seed)
                if seed not in candidate.tried and not (done and done.completed):
                    found.append((candidate, seed))
        return found

    def _wait_for_others(self, seeds: int) -> None:
        """Waits for points another launcher or agent holds (their records land later)."""
        for candidate in self.entrants:
            for seed in range(1, candidate.upto(seeds) + 1):
                spec = self.spec_for(candidate, seed)
                path = locks.path_for(spec.cfg.results_dir, spec.run_id)
                while path.exists() and not locks.stale(locks.holder(path), path):
                    time.sleep(WAIT_S)

    def values(self, candidate: Candidate, seeds: int) -> tuple[dict[int, float], dict[int, str]]:
        """``{seed: metric}`` of the completed runs and ``{seed: error}`` of failed ones."""
        done, failed = {}, {}
        for seed in range(1, candidate.upto(seeds) + 1):
            found = self._record(candidate, seed)
            if found is None:
                continue
            if found.completed and getattr(found.metrics, self._metric(seeds)) is not None:
                done[seed] = float(getattr(found.metrics, self._metric(seeds)))
            elif not found.completed:
                failed[seed] = f"{found.error.type}: {found.error.message}"
        return done, failed

    def _metric(self, seeds: int) -> str:
        """``auto``: test accuracy when every completed run has it, else best validation."""
        if self.metric != "auto":
            return self.metric
        for candidate in self.entrants:
            for seed in range(1, candidate.upto(seeds) + 1):
                found = self._record(candidate, seed)
                if found and found.completed and found.metrics.test_accuracy is None:
                    return "best_val_accuracy"
        return "test_accuracy"

    def _decide(self, number: int, seeds: int) -> list[Standing]:
        """Drops every candidate shown worse than the leader; returns the standings."""
        results = {c.label: self.values(c, seeds) for c in self.entrants}
        for candidate in self.entrants:
            done, failed = results[candidate.label]
            if candidate.racing and not done and failed and len(failed) == seeds:
                candidate.drop(number, seeds, f"every seed failed ({failed[max(failed)]})")
        racing = [c for c in self.entrants if c.racing and results[c.label][0]]
        notes: dict[str, dict] = {}
        if racing:
            leader = max(racing, key=lambda c: _mean(results[c.label][0]))
            others = [c for c in racing if c is not leader]
            tested = stats.holm(self._tests(leader, racing, results))
            self.open = []
            for candidate, found in zip(others, tested, strict=True):
                needed = self._needed(found)
                notes[candidate.label] = {
                    "against": leader.label, "difference": found.value, "test": found.test,
                    "p_adjusted": found.p_adjusted, "seeds_needed": needed,
                }  # fmt: skip
                if found.significant and found.value > 0:
                    candidate.drop(number, seeds, (
                        f"worse than {leader.label} by {found.value * 100:.1f} points "
                        f"({found.test}, Holm-adjusted p = {found.p_adjusted:.3f} over "
                        f"{found.family} comparisons)"
                    ))  # fmt: skip
                else:
                    candidate.state = "racing"
                    if found.tested and (needed is None or needed > self.settings.max_seeds):
                        self.open.append(candidate.label)
            leader.state = "leading"
        return [self._standing(c, results[c.label], notes.get(c.label, {})) for c in self.entrants]

    def _tests(self, leader: Candidate, racing: list[Candidate], results: dict) -> list:
        """The leader minus each other candidate racing, in ``racing``'s order."""
        level, best = self.settings.level, results[leader.label][0]
        if self.settings.test == "blocks":
            groups = [results[c.label][0] for c in racing]
            return stats.against(groups, racing.index(leader), level)
        return [stats.compare(best, results[c.label][0], level) for c in racing if c is not leader]

    def _needed(self, found: stats.Difference) -> int | None:
        """Seeds per side that would resolve ``found`` under this round's family: at Holm's
        strictest step, alpha over the family's size."""
        return stats.seeds_needed(found, alpha=(1 - self.settings.level) / max(1, found.family))

    def _standing(self, candidate: Candidate, result, note: dict) -> Standing:
        done, failed = result
        values = list(done.values())
        mean = _mean(done) if done else None
        spread = stats.mean_interval(mean, _std(values), len(values)) if done else None
        return Standing(candidate.label, candidate.state, mean, spread, sorted(done),
                        sorted(failed), note=candidate.reason, dropped_at=candidate.dropped_at,
                        **note)  # fmt: skip

    def _stop(self, seeds: int) -> str | None:
        """Why the race ends after this round, or None."""
        racing = [c for c in self.entrants if c.racing]
        if len(racing) <= 1:
            if racing:
                racing[0].state = "winner"
                return f"{racing[0].label} is the one left"
            return "no candidate is left (every one failed)"
        if seeds >= self.settings.max_seeds:
            return f"max_seeds ({self.settings.max_seeds}) reached with {len(racing)} left"
        budget = self.settings.budget_hours
        if budget is not None and self.training_hours(seeds) >= budget:
            return f"budget_hours ({budget}) spent: {self.training_hours(seeds):.2f} h of training"
        if len(self.open) == len(racing) - 1:
            leader = next(c.label for c in racing if c.state == "leading")
            return (f"{leader} leads and no challenger left ({', '.join(self.open)}) would be "
                    f"told from it within max_seeds ({self.settings.max_seeds}) at the "
                    "spread seen so far")  # fmt: skip
        return None

    def training_hours(self, seeds: int) -> float:
        """Training time of every completed run of the race so far, in hours."""
        total = 0.0
        for candidate in self.entrants:
            for seed in range(1, candidate.upto(seeds) + 1):
                found = self._record(candidate, seed)
                if found and found.completed and found.metrics.train_time_s:
                    total += found.metrics.train_time_s
        return total / 3600

    def _print(self, number: int, standings: list[Standing]) -> None:
        rows = []
        for s in sorted(standings, key=lambda s: (s.state == "dropped", -(s.mean or 0))):
            interval = f"{s.interval[0]:.3f} to {s.interval[1]:.3f}" if s.interval else "-"
            state = _state(s)
            rows.append([s.candidate, "-" if s.mean is None else f"{s.mean:.3f}", interval,
                         len(s.seeds), len(s.failed), state])  # fmt: skip
        say(f"race standings after round {number} ({self._metric(self.rounds[-1]['seeds'])}):")
        headers = ["candidate", "mean", "95% CI", "seeds", "failed", "state"]
        print(tabulate(rows, headers=headers, tablefmt="plain"), flush=True)

    def document(self, stop: str | None) -> dict:
        """What race.json holds."""
        seeds = self.rounds[-1]["seeds"] if self.rounds else 0
        runs = sum(len(s["seeds"]) + len(s["failed"]) for s in self.rounds[-1]["standings"])
        return {
            "metric": self._metric(seeds),
            "settings": asdict(self.settings),
            "common": self.common,
            "candidates": [c.label for c in self.entrants],
            "rounds": self.rounds,
            "outcome": {
                "finished": stop is not None,
                "why": stop,
                "winner": self._first("winner"),
                "leading": self._first("leading", "winner"),
                "dropped": {
                    c.label: {"round": c.dropped_at, "reason": c.reason}
                    for c in self.entrants
                    if c.state == "dropped"
                },  # fmt: skip
                "runs": runs,
                "grid_runs": len(self.entrants) * self.settings.max_seeds,
                "training_hours": self.training_hours(seeds),
            },
        }

    def _first(self, *states: str) -> str | None:
        return next((c.label for c in self.entrants if c.state in states), None)

    def _write(self, stop: str | None) -> None:
        text = json.dumps(self.document(stop), indent=2, default=str) + "\n"
        for path in self.outputs:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda handle: handle.write(text))


def _state(s: Standing) -> str:
    if s.state == "dropped":
        return f"dropped at round {s.dropped_at}: {s.note}"
    if s.state == "racing" and s.test:
        needed = (f"about {s.seeds_needed} seeds" if s.seeds_needed else "more than "
                  f"{stats.MAX_SEEDS} seeds")  # fmt: skip
        return f"racing ({needed} each would tell it from {s.against})"
    return s.state


def _mean(values: dict[int, float]) -> float:
    return sum(values.values()) / len(values)


def _std(values: list[float]) -> float:
    if len(values) < 2:
        return float("nan")
    mean = sum(values) / len(values)
    return (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
