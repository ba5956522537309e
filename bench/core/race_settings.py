"""The race's keys (``hydra.sweeper.*`` of ``hydra/sweeper=race``), defined once.

The Hydra plugin builds its config schema from :class:`Settings`' fields, the sweeper hands
them back as a :class:`Settings`, and the race reads that. This module imports nothing
heavy: Hydra imports the plugin, and so this, whenever ``bench.run`` starts. Annotations
stay evaluated (no ``from __future__ import annotations``): the plugin builds its schema
from them.
"""

from dataclasses import dataclass, fields

from bench.core.errors import ConfigError

# auto: the validation accuracy of the tested weights. The test split reports what the
# race chose and never chooses; a maximum over epochs belongs to no kept model.
METRICS = ("auto", "final_val_accuracy")
REFUSED = {
    "test_accuracy": "the test split reports what validation chose; choosing on it makes "
    "the reported accuracy read high",
    "best_val_accuracy": "a maximum over epochs is chosen on the data it reports, and no "
    "kept model has it",
}
TESTS = ("blocks", "pooled", "pairs")  # bench.core.stats.blocks (own, pooled), .compare
SPENDING = ("obrien_fleming", "pocock")  # bench.core.sequential


@dataclass(frozen=True)
class Settings:
    """The race's keys, with what each does."""

    #: What chooses: ``auto``, the validation accuracy of the tested weights
    #: (final_val_accuracy). ``test_accuracy`` and ``best_val_accuracy`` are refused.
    metric: str = "auto"
    #: The keys whose values are the candidates; every other swept key is tuned inside
    #: each candidate. When none of them is swept, the swept keys are the candidates.
    compare: tuple[str, ...] = ("backbone",)
    #: Seeds every entrant runs in the first round.
    min_seeds: int = 3
    #: Seeds no entrant goes beyond: the last planned look.
    max_seeds: int = 10
    #: Seeds added to the entrants still racing each round.
    step: int = 1
    #: Stops once this much training time is spent; null: no budget.
    budget_hours: float | None = None
    #: The level of every drop and equivalence, held over the whole race.
    level: float = 0.95
    #: The test: ``blocks`` (seeds as blocks, each entrant's own noise), ``pooled`` (one
    #: noise for all: more power, if it is alike) or ``pairs`` (each pair's own paired t).
    test: str = "blocks"
    #: How the level is spent over the planned looks: ``obrien_fleming`` or ``pocock``.
    spending: str = "obrien_fleming"
    #: Accuracy points within which two candidates are equivalent.
    margin: float = 1.0

    def check(self) -> None:
        """Raises ConfigError naming the key, the value, what is allowed and the fix."""
        key = "hydra.sweeper"
        if self.metric in REFUSED:
            raise ConfigError(f"{key}.metric", self.metric, METRICS, f"pass {key}.metric=auto",
                              why=REFUSED[self.metric])  # fmt: skip
        for name, allowed in (("metric", METRICS), ("test", TESTS), ("spending", SPENDING)):
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"{key}.{name}", value, allowed,
                                  f"pass {key}.{name}={allowed[0]}")  # fmt: skip
        if self.min_seeds < 2:
            raise ConfigError(f"{key}.min_seeds", self.min_seeds, "2 or more",
                              f"pass {key}.min_seeds=3",
                              why="a comparison needs two seeds")  # fmt: skip
        if self.max_seeds < self.min_seeds:
            raise ConfigError(f"{key}.max_seeds", self.max_seeds,
                              f">= {key}.min_seeds ({self.min_seeds})",
                              f"pass {key}.max_seeds={self.min_seeds} or more")  # fmt: skip
        self._check_numbers(key)

    def _check_numbers(self, key: str) -> None:
        if self.step < 1:
            raise ConfigError(f"{key}.step", self.step, "1 or more", f"pass {key}.step=1")
        if self.budget_hours is not None and self.budget_hours <= 0:
            raise ConfigError(f"{key}.budget_hours", self.budget_hours, "> 0, or null",
                              f"pass {key}.budget_hours=null for no budget")  # fmt: skip
        if not 0.5 < self.level < 1:
            raise ConfigError(f"{key}.level", self.level, "between 0.5 and 1",
                              f"pass {key}.level=0.95")  # fmt: skip
        if self.margin <= 0:
            raise ConfigError(f"{key}.margin", self.margin, "> 0 (accuracy points)",
                              f"pass {key}.margin=1.0")  # fmt: skip
        if not self.compare:
            raise ConfigError(f"{key}.compare", "[]", "one or more config keys",
                              f"pass {key}.compare=[backbone]")  # fmt: skip

    @property
    def looks(self) -> list[int]:
        """The seeds at each planned look: min_seeds, then step more, up to max_seeds."""
        found = list(range(self.min_seeds, self.max_seeds, self.step))
        return found + [self.max_seeds]

    @classmethod
    def of(cls, values: dict) -> "Settings":
        """The settings from the sweeper's config (unknown keys ignored)."""
        known = {f.name for f in fields(cls)}
        found = {k: v for k, v in values.items() if k in known}
        if "compare" in found:
            found["compare"] = tuple(found["compare"])
        return cls(**found)
