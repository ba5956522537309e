"""What a race decides after each round, as pure functions over the values its records gave.

Every value of the sweep is an **entrant**: a **candidate** (the values of the ``compare``
keys, ``backbone`` by default) at one tuning configuration (the other swept keys). After
each round the race states two kinds of comparison, on validation (the test split only
reports what the race chose):

- within a candidate, each configuration against the candidate's best one;
- across candidates, each candidate's best configuration against the leading candidate's,
  and each of a challenger's other configurations against it too.

A configuration shown worse than its candidate's best, or than the leader's best, is
dropped. A candidate goes with all its configurations once its best is shown worse than
the leader's best and every other configuration it still races is shown worse than one of
the two (the pairs cover "the candidate at its best is worse" only then); until then it
races on, its best included.

The level holds over the whole race. The family is every pair of entrants (the best is
chosen from the data, so only the family of all pairs covers what is said of it), tested as
a closed test (stats.closed_step): each set of hypotheses that can be true together
(Bergmann and Hommel's exhaustive sets: a way the entrants fall into groups of equal ones)
is tested by a weighted Bonferroni, the level split equally among the set's groups and a
group's share among its pairs (stats.divisors), each pair against the group-sequential
boundary (bench.core.sequential) of its share, at every planned look (a paired t's boundary
set on its own path, sequential.t_nominal); a pair is rejected once every set that holds it
is, and a set holding a pair rejected at an earlier look stays rejected. Each set's test
holds its level over all looks, so the closure does (Maurer and Bretz 2013); a set rejected
at an earlier look only by a crossing is tested afresh, a little less power than the full
closure. Splitting by group rather than by pair (Bonferroni over the set's size, the
verdict's closure and the race's until 2026-12-06) holds a leader's last comparison to the
level over 2 instead of 4 when the others are shown apart, and a pair inside a larger group
to a smaller share: benchmarks/calibration.py measured it naming a 2-sd leader of five in
85% of races instead of 79%, at the same level. Beyond stats.EXHAUSTIVE_UP_TO entrants (not
candidates) Holm's step-down with Shaffer's count stands in. The noise is measured on every
entrant's seeds, dropped ones' too (stats.blocks). A challenger whose best configuration is
shown equivalent to the leader's (two one-sided tests within the margin) needs no more
seeds; when every challenger is worse or equivalent, the race ends.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from bench.core import sequential, stats
from bench.core.race_settings import Settings

AS_CONFIGURED = "as configured"


@dataclass
class Entrant:
    """One value of the sweep (its overrides) and where it stands."""

    label: str
    overrides: list[str]
    candidate: str
    config: str = AS_CONFIGURED
    state: str = "racing"  # racing | dropped
    dropped_at: int | None = None
    reason: str | None = None
    seeds_at_drop: int | None = None
    tried: set[int] = field(default_factory=set)  # seeds launched by this race

    @property
    def racing(self) -> bool:
        return self.state != "dropped"

    def upto(self, seeds: int) -> int:
        """The seeds that count in a round of ``seeds``: a dropped entrant stays at the
        round that dropped it, even when other sweeps left later seeds."""
        return seeds if self.seeds_at_drop is None else min(seeds, self.seeds_at_drop)

    def drop(self, number: int, seeds: int, reason: str) -> None:
        self.state, self.dropped_at, self.seeds_at_drop = "dropped", number, seeds
        self.reason = reason


@dataclass(frozen=True)
class Observed:
    """What one entrant's records said at a round: the metric per seed (a diverged run at
    chance), the seeds that failed otherwise (missing), and the training hours."""

    values: dict[int, float] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    diverged: frozenset[int] = frozenset()
    hours: float = 0.0

    @property
    def mean(self) -> float | None:
        return sum(self.values.values()) / len(self.values) if self.values else None


@dataclass(frozen=True)
class Comparison:
    """One stated comparison: ``better`` (a best configuration) against ``entrant``."""

    entrant: str
    better: str
    kind: str  # "within" a candidate, "across" candidates' bests, or "beside" the leader's
    difference: stats.Difference


@dataclass
class Decision:
    """What one round decides."""

    leader: str | None  # the leading candidate
    best: dict[str, str]  # candidate -> its best entrant
    compared: list[Comparison]
    drops: list[tuple[Comparison, float | None]]  # and the nominal level each was held to
    equivalent: list[str]  # challenger candidates shown within the margin of the leader
    open: list[str]  # challenger candidates neither worse nor equivalent yet
    strictest: float = 0.05  # the strictest share of the level left after this round
    rejected: frozenset[frozenset[str]] = frozenset()  # pairs rejected so far, this round's too
    whole: frozenset[str] = frozenset()  # candidates dropped with all their configurations


def look_levels(settings: Settings, look: int, alpha: float, test: str | None = None) -> float:
    """The nominal two-sided level at a planned look for a hypothesis given ``alpha``.

    A paired t's boundaries are set on its own path (sequential.t_nominal), the block
    tests', whose noise is measured on every entrant's seeds, on a z's. Both are for the
    planned seeds: a pair that has fewer (a failed run) is held to the same level.

    Args:
        settings: The race's keys (its looks and spending).
        look: The planned look, 0-based.
        alpha: The share of the race's level the hypothesis is held to over every look.
        test: The comparison's test (stats.PAIRED, stats.BLOCKS, ...); None: a z's.

    Returns:
        The level the comparison's p-value must be at or below at this look.
    """
    if test == stats.PAIRED:
        return sequential.t_nominal(settings.looks, alpha, settings.spending)[look]
    fractions = [n / settings.max_seeds for n in settings.looks]
    return sequential.nominal(fractions, alpha, settings.spending)[look]


def decide(
    entrants: list[Entrant], observed: dict[str, Observed], look: int, settings: Settings,
    rejected: frozenset[frozenset[str]],
) -> Decision:  # fmt: skip
    """The round's comparisons and drops (not yet applied to ``entrants``).

    Args:
        entrants: Every entrant, dropped ones included (they stay in the family).
        observed: Each entrant's values this round.
        look: The planned look (0-based) this round is.
        settings: The race's keys.
        rejected: The pairs of entrants (labels) rejected in earlier rounds
            (Decision.rejected): every exhaustive set holding one stays rejected.
    """
    racing = [e for e in entrants if e.racing and observed[e.label].values]
    best = _best(racing, observed)
    leader = max(best, key=lambda c: observed[best[c]].mean) if best else None
    compared = _compare(racing, best, leader, observed, settings)
    alpha, labels = 1 - settings.level, [e.label for e in entrants]
    pairs = [frozenset(p) for p in itertools.combinations(labels, 2)]
    claimed = {pairs.index(frozenset((c.better, c.entrant))): c for c in compared
               if c.difference.tested and c.difference.value > 0}  # fmt: skip
    ps = np.full(len(pairs), np.inf)  # a pair not claimed this look never crosses
    ps[list(claimed)] = [c.difference.p for c in claimed.values()]
    paired = np.zeros(len(pairs), dtype=bool)
    paired[list(claimed)] = [c.difference.test == stats.PAIRED for c in claimed.values()]

    def crosses(divisor: int) -> np.ndarray:
        levels = np.full(len(pairs), look_levels(settings, look, alpha / divisor))
        if paired.any():
            levels[paired] = look_levels(settings, look, alpha / divisor, stats.PAIRED)
        return ps <= levels

    before = np.array([p in rejected for p in pairs], dtype=bool)
    now, held = stats.closed_step(len(labels), crosses, before)
    rejected_now = frozenset(p for p, r in zip(pairs, now, strict=True) if r)
    shown = [c for n, c in claimed.items() if now[n]]
    whole = _whole(shown, racing, rejected_now)
    drops = sorted(  # a level of None: the pair was rejected at an earlier look
        ((c, look_levels(settings, look, alpha / held[n], c.difference.test) if held[n]
          else None)
         for n, c in claimed.items() if now[n]
         and (c.kind != "across" or _candidate(racing, c.entrant) in whole)),
        key=lambda found: found[0].difference.p,
    )  # fmt: skip
    across = [c for c in compared if c.kind == "across" and c not in shown]
    # the candidates, not their best entrants' labels (the same only when nothing is tuned)
    equivalent = [_candidate(racing, e) for e in _equivalent(across, settings, look)]
    challengers = [_candidate(racing, c.entrant) for c in compared if c.kind == "across"]
    open_ = [c for c in challengers if c not in equivalent and c not in whole]
    remaining = max(stats.strictest(len(labels), now), 1)
    return Decision(leader, best, compared, drops, equivalent, open_, alpha / remaining,
                    rejected_now, whole)  # fmt: skip


def _whole(shown: list[Comparison], racing: list[Entrant], rejected: frozenset) -> frozenset[str]:
    """The candidates to drop with all their configurations: the best is shown worse than
    the leader's best, and every other configuration still racing is shown worse than that
    best or than the leader's best. Then the candidate at its best is worse, by pairs the
    family covers. While one configuration is not yet shown worse (it may be the
    candidate's true best, unluckily measured so far), the candidate races on, its best
    included."""
    found = set()
    for comparison in shown:
        if comparison.kind != "across":
            continue
        candidate, top = _candidate(racing, comparison.entrant), comparison.entrant
        others = [e.label for e in racing if e.candidate == candidate and e.label != top]
        if all(frozenset((top, other)) in rejected or frozenset((comparison.better, other))
               in rejected for other in others):  # fmt: skip
            found.add(candidate)
    return frozenset(found)


def _best(racing: list[Entrant], observed: dict[str, Observed]) -> dict[str, str]:
    """Each candidate's best entrant: the highest mean of the metric (validation)."""
    found: dict[str, str] = {}
    for entrant in racing:
        held = found.get(entrant.candidate)
        if held is None or observed[entrant.label].mean > observed[held].mean:
            found[entrant.candidate] = entrant.label
    return found


def _compare(racing, best, leader, observed, settings: Settings) -> list[Comparison]:
    """Across candidates, each best against the leader's best, and each other
    configuration of a challenger against it too ("beside"); within each candidate, every
    configuration against its best (last, so an entrant's standing shows this one)."""
    wanted: list[tuple[str, str, str]] = []
    for candidate, top in best.items():
        if candidate != leader:
            wanted.append((best[leader], top, "across"))
            wanted += [(best[leader], e.label, "beside") for e in racing
                       if e.candidate == candidate and e.label != top]  # fmt: skip
    for entrant in racing:
        top = best[entrant.candidate]
        if entrant.label != top:
            wanted.append((top, entrant.label, "within"))
    labels = [e.label for e in racing]
    # Dropped entrants lend the seeds they ran to the layout that measures the noise; not
    # their diverged runs: a value at chance is a result, not a draw of the seed's noise.
    lent = [
        {s: v for s, v in seen.values.items() if s not in seen.diverged}
        for label, seen in observed.items() if label not in labels
    ]  # fmt: skip
    groups = [observed[label].values for label in labels] + [g for g in lent if g]
    pairs = [(labels.index(a), labels.index(b)) for a, b, _ in wanted]
    level = settings.level
    if settings.test == "pairs":
        tested = [stats.compare(groups[i], groups[j], level) for i, j in pairs]
    else:
        tested = stats.blocks(groups, pairs, level, pooled=settings.test == "pooled")
    return [Comparison(b, a, kind, d) for (a, b, kind), d in zip(wanted, tested, strict=True)]


def _equivalent(across: list[Comparison], settings: Settings, look: int) -> list[str]:
    """Challenger candidates whose best is within the margin of the leader's best: two
    one-sided tests, each challenger at its share of the level at this look."""
    if not across:
        return []
    # Each one-sided test holds (1 - level) / challengers over the race: a one-sided
    # boundary is the two-sided one of twice the level, at half its nominal level.
    share = 2 * (1 - settings.level) / len(across)
    found = []
    for comparison in across:
        p = stats.equivalence(comparison.difference, settings.margin / 100)
        if (
            p is not None
            and p <= look_levels(settings, look, share, comparison.difference.test) / 2
        ):
            found.append(comparison.entrant)
    return found


def _candidate(racing: list[Entrant], label: str) -> str:
    return next(e.candidate for e in racing if e.label == label)


def stop(entrants: list[Entrant], decision: Decision, seeds: int, settings: Settings,
         hours: float) -> str | None:  # fmt: skip
    """Why the race ends after this round, or None."""
    candidates = {e.candidate for e in entrants if e.racing}
    if len(candidates) <= 1:
        if candidates:
            return f"{next(iter(candidates))} is the one left"
        return "no candidate is left (every one failed)"
    equivalent = [c for c in decision.equivalent if c in candidates]
    if decision.leader and not decision.open and equivalent:
        return (f"every challenger left ({', '.join(sorted(equivalent))}) is within "
                f"±{settings.margin:g} points of {decision.leader}")  # fmt: skip
    if seeds >= settings.max_seeds:
        return f"max_seeds ({settings.max_seeds}) reached with {len(candidates)} left"
    budget = settings.budget_hours
    if budget is not None and hours >= budget:
        return f"budget_hours ({budget}) spent: {hours:.2f} h of training"
    return None


def apply(entrants: list[Entrant], decision: Decision, number: int, seeds: int) -> None:
    """Drops what ``decision`` showed worse: a configuration, or a whole candidate
    (Decision.whole)."""
    for comparison, level in decision.drops:
        loser = next(e for e in entrants if e.label == comparison.entrant)
        whole = comparison.kind == "across" and loser.candidate in decision.whole
        tuned = sum(e.candidate == loser.candidate for e in entrants) > 1
        why = reason(comparison, level, whole and tuned)
        for entrant in entrants:
            hit = entrant.candidate == loser.candidate if whole else entrant is loser
            if hit and entrant.racing:
                entrant.drop(number, seeds, why)


def drop_failed(entrants: list[Entrant], observed: dict[str, Observed], number: int,
                seeds: int) -> None:  # fmt: skip
    """Drops an entrant whose every seed so far failed (none diverged: those are results)."""
    for entrant in entrants:
        seen = observed[entrant.label]
        if entrant.racing and not seen.values and len(seen.failed) == seeds:
            entrant.drop(number, seeds, f"every seed failed ({seen.failed[max(seen.failed)]})")


def reason(comparison: Comparison, level: float | None, candidate_wide: bool) -> str:
    """Why an entrant was dropped, in the words of its comparison (``level`` None: the
    comparison was shown at an earlier look, and the candidate's last configuration since)."""
    d = comparison.difference
    what = "its best configuration is " if candidate_wide else ""
    held = f"against the look's {level:.4f}" if level is not None else "shown at an earlier look"
    return (
        f"{what}worse than {comparison.better} by {d.value * 100:.1f} points on validation "
        f"({d.test}, p = {d.p:.4f} {held})"
    )


# ---- the race's document (race.json), which the race writes and the report reads ----


@dataclass
class Standing:
    """An entrant after one round."""

    entrant: str
    candidate: str
    config: str
    state: str
    mean: float | None
    interval: tuple[float, float] | None
    seeds: list[int]
    failed: list[int]
    diverged: list[int] = field(default_factory=list)
    against: str | None = None
    difference: float | None = None  # the better entrant minus this one
    test: str | None = None
    p: float | None = None
    seeds_needed: int | None = None  # per side, to tell the margin apart
    equivalent: bool = False
    note: str | None = None
    dropped_at: int | None = None


@dataclass
class Round:
    """One round: the seeds every racing entrant had, the runs launched, the standings."""

    round: int
    seeds: int
    launched: int
    standings: list[Standing]
    leader: str | None = None


@dataclass
class Outcome:
    """How the race ended."""

    finished: bool
    why: str | None
    winner: str | None  # the last candidate left, if one is
    leading: str | None
    chosen: dict[str, str] = field(default_factory=dict)  # candidate left -> its config
    test_accuracy: dict[str, float | None] = field(default_factory=dict)  # of what was chosen
    test_seeds: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, dict] = field(default_factory=dict)  # entrant -> round, reason
    runs: int = 0
    grid_runs: int = 0
    training_hours: float = 0.0


@dataclass
class RaceDocument:
    """race.json: the settings, every round and the outcome."""

    metric: str
    settings: dict
    common: list[str]
    compare: list[str]
    candidates: list[str]
    entrants: list[str]
    rounds: list[Round]
    outcome: Outcome

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RaceDocument:
        """Reads race.json (raises KeyError or TypeError for another layout)."""
        rounds = [
            Round(**{**r, "standings": [Standing(**s) for s in r["standings"]]})
            for r in data["rounds"]
        ]
        return cls(**{**data, "rounds": rounds, "outcome": Outcome(**data["outcome"])})


def standing(
    entrant: Entrant, seen: Observed, decision: Decision, compared, margin: float
) -> Standing:
    """The round's standing of one entrant (``margin`` in accuracy points: the seeds
    needed are those that would tell it apart)."""
    values = list(seen.values.values())
    mean = seen.mean
    spread = None
    if len(values) >= 2:
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        spread = stats.mean_interval(mean, sd, len(values))
    found = Standing(entrant.label, entrant.candidate, entrant.config, entrant.state, mean,
                     spread, sorted(seen.values), sorted(seen.failed), sorted(seen.diverged),
                     note=entrant.reason, dropped_at=entrant.dropped_at)  # fmt: skip
    mine = compared.get(entrant.label)
    if mine is not None and entrant.racing:
        d = mine.difference
        found.against, found.difference, found.test, found.p = mine.better, d.value, d.test, d.p
        found.seeds_needed = stats.seeds_needed(d, decision.strictest, margin / 100)
        found.equivalent = entrant.candidate in decision.equivalent and mine.kind == "across"
    return found
