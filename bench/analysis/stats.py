"""How sure a number is: the 95% interval of a mean, and Welch's t for a difference of means.

Both work from a group's summary (mean, sample std, count), which is what a comparison
table holds. A group of one run has no spread to test against: callers say so in words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

LEVEL = 0.95


def mean_interval(mean: float, std: float, count: int) -> tuple[float, float] | None:
    """The 95% t interval of a mean over ``count`` runs; None for a single run."""
    if count < 2 or math.isnan(std):
        return None
    half = stats.t.ppf(0.5 + LEVEL / 2, count - 1) * std / math.sqrt(count)
    return mean - half, mean + half


@dataclass(frozen=True)
class Difference:
    """``a`` minus ``b`` on one metric, with Welch's 95% interval when both repeat seeds."""

    a: float
    b: float
    n_a: int
    n_b: int
    interval: tuple[float, float] | None

    @property
    def value(self) -> float:
        return self.a - self.b

    @property
    def tested(self) -> bool:
        """Both sides have two or more runs, so the interval exists."""
        return self.interval is not None

    @property
    def significant(self) -> bool:
        """The 95% interval of the difference excludes zero."""
        return self.tested and (self.interval[0] > 0 or self.interval[1] < 0)


def welch(
    mean_a: float, std_a: float, n_a: int, mean_b: float, std_b: float, n_b: int
) -> Difference:
    """The difference of two means with Welch's t interval (unequal variances).

    With two or more runs on each side the interval is ``diff ± t(0.975, df) * se`` with
    ``se = sqrt(s_a²/n_a + s_b²/n_b)`` and the Welch-Satterthwaite ``df``; identical runs
    on both sides (``se == 0``) give the difference itself as the interval.
    """
    n_a, n_b = int(n_a), int(n_b)
    interval = None
    if min(n_a, n_b) >= 2 and not (math.isnan(std_a) or math.isnan(std_b)):
        var_a, var_b = std_a**2 / n_a, std_b**2 / n_b
        diff, se = mean_a - mean_b, math.sqrt(var_a + var_b)
        if se == 0:
            interval = (diff, diff)
        else:
            df = (var_a + var_b) ** 2 / (var_a**2 / (n_a - 1) + var_b**2 / (n_b - 1))
            half = stats.t.ppf(0.5 + LEVEL / 2, df) * se
            interval = (diff - half, diff + half)
    return Difference(mean_a, mean_b, n_a, n_b, interval)
