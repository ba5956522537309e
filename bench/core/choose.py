"""Choosing a configuration on validation, and reporting it on runs that did not choose it.

A run that scores high on validation is often a lucky run (its initial weights, its order),
and a lucky run is lucky on test too: the test accuracy of the very runs that won on
validation reads high, though the test split never chose anything. So each seed's reported
score is cross-fitted (leave one seed out): the test accuracy, on that seed, of the
configuration the *other* seeds' validation chose. No reported number comes from a run that
took part in choosing it; with all configurations equal in truth, the reported accuracy is
unbiased (benchmarks/selection.py measures it). The configuration a user should take is
still the one all seeds choose.

Pure functions over ``{configuration: {seed: value}}``: the report and the race share them.
"""

from __future__ import annotations

from collections.abc import Mapping

Scores = Mapping[str, Mapping[int, float]]


def best(values: Scores, without: int | None = None) -> str | None:
    """The configuration with the highest mean over its seeds (leaving out ``without``);
    ties go to the first; None when none has a seed left."""
    found, top = None, float("-inf")
    for name, by_seed in values.items():
        kept = [v for s, v in by_seed.items() if s != without]
        if kept and sum(kept) / len(kept) > top:
            found, top = name, sum(kept) / len(kept)
    return found


def crossfit(validation: Scores, test: Scores) -> dict[int, tuple[str, float]]:
    """Per seed, the configuration the other seeds' validation chose and its test score on
    this seed. With a single configuration this is that configuration's own scores; a seed
    whose chosen configuration has no test score there is left out."""
    seeds = sorted({s for by_seed in test.values() for s in by_seed})
    found = {}
    for seed in seeds:
        chosen = best(validation, without=seed) if len(validation) > 1 else next(iter(validation))
        if chosen is not None and seed in test.get(chosen, {}):
            found[seed] = (chosen, test[chosen][seed])
    return found
