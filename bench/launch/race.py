"""Races: spend seeds only where they decide something, and tune each candidate on the way.

``python -m bench.run -m hydra/sweeper=race backbone=b0,b1,mobilenet_v2 optimizer.lr=0.01,0.001``
makes each value of the sweep an entrant: a candidate (the ``compare`` keys' values,
``backbone`` by default) at one tuning configuration (the other swept keys). Each round
trains seeds 1 to n of every entrant still racing, through the configured launcher (basic,
joblib, submitit), starting at ``min_seeds`` and adding ``step`` up to ``max_seeds``.

After each round the race reads the records once and decides on validation
(bench.core.racing): within a candidate, a configuration shown worse than its best is
dropped; across candidates, a candidate whose best is shown worse than the leading
candidate's best, and whose other configurations are shown worse than that best, is
dropped whole. Its level holds over every round (group-sequential
boundaries, every pair of entrants in one family under a closed test). The race ends
when one candidate is left, every challenger is shown equivalent to the leader (within
``margin`` points) or worse, ``max_seeds`` is reached, or ``budget_hours`` of training is
spent; then it reads the test accuracy of each surviving candidate's chosen configuration
over the seeds it ran.

A diverged run counts at chance (one over the classes); any other failed run is a missing
seed; an entrant whose every seed failed is dropped with the reason. Decisions come from the
records in ``results_dir`` only, so a race cut off and launched again goes on where it
stopped; a point another launcher is training is waited for. race.json (the typed
:class:`bench.core.racing.RaceDocument`) goes beside the sweep and to
``<results_dir>/races/``, where the report finds it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from tabulate import tabulate

from bench.core import racing, record
from bench.core.atomic import write as atomic_write
from bench.core.console import say
from bench.core.race_settings import Settings
from bench.core.racing import Entrant, Observed
from bench.core.spec import RunSpec
from bench.launch import locks

WAIT_S = 5.0  # between looks at a point another launcher is training
SELECTS = "final_val_accuracy"  # what the race decides on (Settings.metric auto)
DIVERGED = "Diverged"


class Race:
    """The rounds of one race.

    Args:
        settings: The sweeper's keys.
        common: The overrides every job shares.
        entrants: The entrants.
        spec_for: The RunSpec of an entrant at a seed (its run_id, where its record is).
        launch: Trains the given (entrant, seed) points through the launcher.
        outputs: Where race.json goes (the sweep folder, ``<results_dir>/races/<name>.json``).
    """

    def __init__(
        self, settings: Settings, common: list[str], entrants: list[Entrant],
        spec_for: Callable[[Entrant, int], RunSpec],
        launch: Callable[[list[tuple[Entrant, int]]], None], outputs: list[Path],
    ):  # fmt: skip
        self.settings, self.common, self.entrants = settings, common, entrants
        self.spec_for, self.launch, self.outputs = spec_for, launch, outputs
        self.rounds: list[racing.Round] = []
        self.rejected: frozenset[frozenset[str]] = frozenset()  # pairs rejected so far
        self.hours = 0.0

    def run(self) -> racing.RaceDocument:
        """Runs rounds until the race is decided; returns what race.json holds."""
        for look, seeds in enumerate(self.settings.looks):
            number = look + 1
            todo = self._todo(seeds)
            say(f"race round {number}: seeds 1-{seeds} for {self._racing_count()} entrants; "
                f"{len(todo)} runs to train, the rest already done")  # fmt: skip
            if todo:
                self.launch(todo)
                for entrant, seed in todo:
                    entrant.tried.add(seed)
            self._wait_for_others(seeds)
            stop = self._round(number, look, seeds, len(todo))
            if stop:
                say(f"race over: {stop}")
                return self._finish(stop)
        raise AssertionError("unreachable: the last look stops at max_seeds")

    def _round(self, number: int, look: int, seeds: int, launched: int) -> str | None:
        """Reads the records once, decides, applies the drops, reports; why it ends."""
        observed = {e.label: self.observe(e, seeds) for e in self.entrants}
        racing.drop_failed(self.entrants, observed, number, seeds)
        decision = racing.decide(self.entrants, observed, look, self.settings, self.rejected)
        racing.apply(self.entrants, decision, number, seeds)
        self.rejected = decision.rejected
        self.hours = sum(seen.hours for seen in observed.values())
        compared = {c.entrant: c for c in decision.compared}
        margin = self.settings.margin
        standings = [racing.standing(e, observed[e.label], decision, compared, margin)
                     for e in self.entrants]  # fmt: skip
        self.rounds.append(racing.Round(number, seeds, launched, standings, decision.leader))
        stop = racing.stop(self.entrants, decision, seeds, self.settings, self.hours)
        self._print(number, standings, decision)
        self._write(self.document(stop))
        return stop

    def _racing_count(self) -> int:
        return sum(e.racing for e in self.entrants)

    def _record(self, entrant: Entrant, seed: int) -> record.Record | None:
        try:
            return record.read(self.spec_for(entrant, seed).record_path)
        except (OSError, ValueError):
            return None

    def _todo(self, seeds: int) -> list[tuple[Entrant, int]]:
        """Racing entrants' seeds up to ``seeds`` with no completed record that this race
        has not tried (a failed seed is not retried in the same race)."""
        found = []
        for entrant in self.entrants:
            if not entrant.racing:
                continue
            for seed in range(1, seeds + 1):
                done = self._record(entrant, seed)
                if seed not in entrant.tried and not (done and done.completed):
                    found.append((entrant, seed))
        return found

    def _wait_for_others(self, seeds: int) -> None:
        """Waits for points another launcher or agent holds (their records land later)."""
        for entrant in self.entrants:
            for seed in range(1, entrant.upto(seeds) + 1):
                spec = self.spec_for(entrant, seed)
                path = locks.path_for(spec.cfg.results_dir, spec.run_id)
                while path.exists() and not locks.stale(locks.holder(path), path):
                    time.sleep(WAIT_S)

    def observe(self, entrant: Entrant, seeds: int, metric: str = SELECTS) -> Observed:
        """One entrant's records up to its seeds this round, each read once."""
        values, failed, diverged, hours = {}, {}, set(), 0.0
        for seed in range(1, entrant.upto(seeds) + 1):
            found = self._record(entrant, seed)
            if found is None:
                continue
            hours += (found.metrics.train_time_s or 0.0) / 3600
            value, at_chance = reading(found, metric)
            if value is not None:
                values[seed] = value
                if at_chance:
                    diverged.add(seed)
            elif not found.completed:
                failed[seed] = f"{found.error.type}: {found.error.message}"
        return Observed(values, failed, frozenset(diverged), hours)

    def _finish(self, stop: str) -> racing.RaceDocument:
        """The document of a finished race, with the test accuracy of what it chose."""
        found = self.document(stop)
        last = self.rounds[-1]
        for candidate, entrant in self._chosen(last).items():
            seen = self.observe(entrant, last.seeds, metric="test_accuracy")
            found.outcome.chosen[candidate] = entrant.config
            found.outcome.test_accuracy[candidate] = seen.mean
            found.outcome.test_seeds[candidate] = len(seen.values)
        self._write(found)
        return found

    def _chosen(self, last: racing.Round) -> dict[str, Entrant]:
        """Each surviving candidate's best configuration, on validation."""
        best: dict[str, racing.Standing] = {}
        for s in last.standings:
            if s.state != "dropped" and s.mean is not None:
                if s.candidate not in best or s.mean > best[s.candidate].mean:
                    best[s.candidate] = s
        by_label = {e.label: e for e in self.entrants}
        return {c: by_label[s.entrant] for c, s in best.items()}

    def document(self, stop: str | None) -> racing.RaceDocument:
        """What race.json holds."""
        last = self.rounds[-1] if self.rounds else None
        candidates = list(dict.fromkeys(e.candidate for e in self.entrants))
        left = {e.candidate for e in self.entrants if e.racing}
        runs = sum(len(s.seeds) + len(s.failed) for s in last.standings) if last else 0
        outcome = racing.Outcome(
            finished=stop is not None, why=stop,
            winner=next(iter(left)) if len(left) == 1 and stop else None,
            leading=last.leader if last else None,
            dropped={e.label: {"round": e.dropped_at, "reason": e.reason}
                     for e in self.entrants if not e.racing},
            runs=runs, grid_runs=len(self.entrants) * self.settings.max_seeds,
            training_hours=self.hours,
        )  # fmt: skip
        return racing.RaceDocument(
            SELECTS, asdict(self.settings), self.common, list(self.settings.compare),
            candidates, [e.label for e in self.entrants], list(self.rounds), outcome,
        )  # fmt: skip

    def _print(self, number: int, standings: list[racing.Standing], decision) -> None:
        rows = []
        for s in sorted(standings, key=lambda s: (s.state == "dropped", -(s.mean or 0))):
            interval = f"{s.interval[0]:.3f} to {s.interval[1]:.3f}" if s.interval else "-"
            rows.append([s.entrant, "-" if s.mean is None else f"{s.mean:.3f}", interval,
                         len(s.seeds), len(s.failed), _state(s)])  # fmt: skip
        say(f"race standings after round {number} ({SELECTS}; leading: {decision.leader}):")
        headers = ["entrant", "mean", "95% CI", "seeds", "failed", "state"]
        print(tabulate(rows, headers=headers, tablefmt="plain"), flush=True)

    def _write(self, found: racing.RaceDocument) -> None:
        text = json.dumps(found.to_dict(), indent=2, default=str) + "\n"
        for path in self.outputs:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda handle: handle.write(text))


def reading(found: record.Record, metric: str = SELECTS) -> tuple[float | None, bool]:
    """What one record says to a race: its ``metric``, or chance (1 / classes) for a
    diverged run, which is a result (then True); None for any other failure, a missing
    seed that says nothing of the configuration, or a completed run without the metric."""
    value = getattr(found.metrics, metric)
    if found.completed and value is not None:
        return float(value), False
    if not found.completed and found.error.type == DIVERGED and _classes(found):
        return 1.0 / _classes(found), True
    return None, False


def _classes(found: record.Record) -> int | None:
    return (found.config.get("dataset") or {}).get("num_classes")


def _state(s: racing.Standing) -> str:
    if s.state == "dropped":
        return f"dropped at round {s.dropped_at}: {s.note}"
    if s.equivalent:
        return f"racing (within the margin of {s.against})"
    if s.test:
        needed = (f"about {s.seeds_needed} seeds" if s.seeds_needed else "more than "
                  "50 seeds")  # fmt: skip
        return f"racing ({needed} each would tell the margin from {s.against})"
    return s.state
