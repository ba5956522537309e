"""Carving roles out of a training split: disjoint, stratified, seeded index sets.

The plan of which roles are carved, and by how much, is the config's (bench.core.splits);
the carving works on the examples' labels, which only the worker reads: indices in the
source's fixed order (TFDS) or files (a folder), never TFDS's percentage slices, so it is
the same under ``tfds.testing.mock_data``, which ignores slicing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def carve(labels: Sequence[int], shares: dict[str, float], seed: int) -> dict[str, np.ndarray]:
    """Disjoint, stratified, seeded index sets of ``labels`` for each role.

    Each carved role gets ``share`` of the examples (at least one), spread over the
    classes in proportion to their sizes (largest remainders); ``train`` gets the rest.
    Within a class the examples are assigned in an order drawn from ``seed`` alone, so the
    same labels and seed always give the same split.

    Args:
        labels: The class of each example, in the source's fixed order.
        shares: ``{role: share}`` of the carved roles (``val``, ``test``).
        seed: The carving's seed.

    Returns:
        ``{role: sorted indices}`` for ``train`` and every carved role.

    Raises:
        ValueError: when the examples are too few for every role to get one.
    """
    labels = np.asarray(labels, dtype=np.int64)
    total = len(labels)
    targets = {role: max(1, int(share * total + 0.5)) for role, share in shares.items()}
    if sum(targets.values()) >= total:
        raise ValueError(f"{total} examples cannot give {targets} and keep some for training")
    classes, counts = np.unique(labels, return_counts=True)
    quotas = {role: _spread(target, counts) for role, target in targets.items()}
    rng = np.random.default_rng(seed)
    found: dict[str, list[np.ndarray]] = {role: [] for role in ("train", *shares)}
    for c, cls in enumerate(classes):
        members = rng.permutation(np.flatnonzero(labels == cls))
        start = 0
        for role in shares:
            take = min(quotas[role][c], len(members) - start)
            found[role].append(members[start : start + take])
            start += take
        found["train"].append(members[start:])
    return {role: np.sort(np.concatenate(parts)) for role, parts in found.items()}


def _spread(target: int, counts: np.ndarray) -> np.ndarray:
    """``target`` examples over classes of ``counts`` in proportion (largest remainders)."""
    exact = target * counts / counts.sum()
    quota = np.floor(exact).astype(int)
    short = target - int(quota.sum())
    quota[np.argsort(-(exact - quota), kind="stable")[:short]] += 1
    return quota
