"""Three splits with fixed roles: train fits, validation selects, test reports.

A dataset names the split behind each role (``dataset.train_split``, ``val_split``,
``test_split``). A role left null is carved out of the training split: a seeded
(``dataset.split_seed``), stratified and disjoint share of it (``val_fraction``,
``test_fraction``; 70/15/15 when neither is given). The carving works on example indices
in the source's fixed order (TFDS) or on files (a folder), never on TFDS's percentage
slices, so it is the same under ``tfds.testing.mock_data``, which ignores slicing.

``test_fraction=0`` with no ``test_split`` is how a study asks for no test split at all:
the report then labels every figure "validation, also used for selection".

No TensorFlow here: the launcher validates the plan before a worker starts. The worker
carves the examples themselves, from their labels (bench.pipeline.carving).
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("train", "val", "test")


@dataclass(frozen=True)
class Role:
    """Where one role's examples come from.

    Attributes:
        name: ``train``, ``val`` or ``test``.
        split: The source split (a TFDS split string, or ``files`` for a folder).
        share: The share of ``split`` carved for this role; None when the role is the
            whole of ``split``.
        seed: The carving's seed (``dataset.split_seed``), when carved.
    """

    name: str
    split: str
    share: float | None = None
    seed: int | None = None

    @property
    def carved(self) -> bool:
        return self.share is not None

    def describe(self) -> str:
        """``train`` or ``15% of train (stratified, seed 0)``."""
        if not self.carved:
            return self.split
        return f"{self.share * 100:g}% of {self.split} (stratified, seed {self.seed})"


@dataclass(frozen=True)
class SplitPlan:
    """The roles of one dataset: which source feeds each, and what is carved from it."""

    train: Role
    val: Role
    test: Role | None  # None: asked for no test split (test_fraction=0)

    @property
    def roles(self) -> list[Role]:
        """Train, validation and (unless asked for none) test."""
        return [r for r in (self.train, self.val, self.test) if r is not None]

    @property
    def shares(self) -> dict[str, float]:
        """The carved roles' shares of the training source (train gets the rest)."""
        return {r.name: r.share for r in (self.val, self.test) if r is not None and r.carved}


def of(dataset) -> SplitPlan:
    """The plan of a ``DatasetConfig`` (bench.core.schema)."""
    train = "files" if dataset.loader == "folder" else dataset.train_split
    return plan(train, dataset.val_split, dataset.test_split, dataset.val_fraction,
                dataset.test_fraction, dataset.split_seed)  # fmt: skip


def plan(
    train_split: str, val_split: str | None, test_split: str | None,
    val_fraction: float, test_fraction: float, seed: int,
) -> SplitPlan:  # fmt: skip
    """Which source feeds each role and which roles are carved from the training split."""
    carved = {}
    if val_split is None:
        carved["val"] = val_fraction
    if test_split is None and test_fraction > 0:
        carved["test"] = test_fraction
    rest = 1.0 - sum(carved.values())
    train = Role("train", train_split, rest if carved else None, seed if carved else None)
    if "val" in carved:
        val = Role("val", train_split, carved["val"], seed)
    else:
        val = Role("val", val_split)
    if test_split is not None:
        test = Role("test", test_split)
    elif "test" in carved:
        test = Role("test", train_split, carved["test"], seed)
    else:
        test = None
    return SplitPlan(train, val, test)
