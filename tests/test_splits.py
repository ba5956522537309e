"""Three splits with fixed roles: a dataset that lacks validation or test has them carved out
of its training split, seeded, stratified and disjoint, for a folder (by file) and for a TFDS
dataset with only ``train`` (under ``tfds.testing.mock_data``, which ignores TFDS's own
slicing, so percentage slices would put every example in every role)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from bench.core import splits
from bench.core.errors import ConfigError
from bench.core.record import SplitInfo
from bench.pipeline import carving, data
from tests.helpers import make_spec, write_folder


def _examples(loaded: data.Data, role: str) -> list[tuple[str, int]]:
    """(hash of the resized pixels, label) of every example of a role: the generated
    images are random, so equal hashes mean the same example."""
    found = []
    for images, labels in loaded.plain[role]:
        for image, label in zip(images.numpy(), labels.numpy(), strict=True):
            found.append((hashlib.sha1(image.tobytes()).hexdigest(), int(label)))
    return found


def _roles(*overrides: str) -> dict[str, list[tuple[str, int]]]:
    loaded = data.load(make_spec(*overrides, "image_size=32", "batch_size=8"))
    return {role: _examples(loaded, role) for role in splits.ROLES}


def _assert_disjoint_and_stratified(roles, total: int, shares: dict[str, float]) -> None:
    hashes = {role: {h for h, _ in found} for role, found in roles.items()}
    assert sum(len(found) for found in roles.values()) == total
    assert sum(len(h) for h in hashes.values()) == total  # no example twice anywhere
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not hashes[a] & hashes[b], f"{a} and {b} share examples"
    every = np.bincount([y for found in roles.values() for _, y in found])
    for role, share in shares.items():
        counts = np.bincount([y for _, y in roles[role]], minlength=len(every))
        # Each class gives its share, to within one example (largest remainders).
        assert np.all(np.abs(counts - share * every) <= 1), (role, counts, share * every)


def test_a_folder_is_carved_by_file_into_three_disjoint_stratified_roles(tmp_path):
    root = write_folder(tmp_path / "images", per_class=20)
    roles = _roles("dataset=folder", f"dataset.path={root}")
    _assert_disjoint_and_stratified(roles, 60, {"val": 0.15, "test": 0.15})
    assert [len(roles[r]) for r in splits.ROLES] == [42, 9, 9]
    again = _roles("dataset=folder", f"dataset.path={root}")
    assert again == roles  # the same split seed: the same files in each role, same order
    other = _roles("dataset=folder", f"dataset.path={root}", "dataset.split_seed=1")
    assert {h for h, _ in other["test"]} != {h for h, _ in roles["test"]}


def test_a_tfds_dataset_with_only_train_is_carved_into_three_roles():
    with tfds.testing.mock_data(num_examples=80):
        roles = _roles("dataset=cats_vs_dogs")
        again = _roles("dataset=cats_vs_dogs")
        other = _roles("dataset=cats_vs_dogs", "dataset.split_seed=7")
    _assert_disjoint_and_stratified(roles, 80, {"val": 0.15, "test": 0.15})
    assert [len(roles[r]) for r in splits.ROLES] == [56, 12, 12]
    assert again == roles
    assert {h for h, _ in other["val"]} != {h for h, _ in roles["val"]}


def test_a_dataset_with_a_test_split_has_only_validation_carved():
    with tfds.testing.mock_data(num_examples=40):
        loaded = data.load(make_spec("dataset=cifar10", "image_size=32", "batch_size=8"))
        val = _examples(loaded, "val")
        train = _examples(loaded, "train")
    assert loaded.splits["val"] == SplitInfo("train", 0.1, 0, 4)
    assert loaded.splits["train"].split == "train" and loaded.splits["train"].share == 0.9
    assert loaded.splits["test"].split == "test" and loaded.splits["test"].share is None
    assert len(val) == 4 and len(train) == 36
    assert not {h for h, _ in val} & {h for h, _ in train}


def test_no_test_split_is_asked_for_explicitly(tmp_path):
    root = write_folder(tmp_path / "images")
    loaded = data.load(
        make_spec("dataset=folder", f"dataset.path={root}", "dataset.test_fraction=0",
                  "image_size=32", "batch_size=8")
    )  # fmt: skip
    assert loaded.test is None and set(loaded.splits) == {"train", "val"}


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["dataset=shapes", "dataset.test_split=validation"], "dataset.test_split"),
        (["dataset=cats_vs_dogs", "dataset.val_fraction=0.6", "dataset.test_fraction=0.4"],
         "dataset.val_fraction"),
        (["dataset=cats_vs_dogs", "dataset.val_fraction=0"], "dataset.val_fraction"),
    ],
)  # fmt: skip
def test_splits_that_would_share_or_exhaust_examples_are_config_errors(overrides, key):
    with pytest.raises(ConfigError) as error:
        make_spec(*overrides)
    assert error.value.key == key and "Fix:" in str(error.value)


def test_carving_gives_every_role_one_example_at_least_and_keeps_classes_in_proportion():
    labels = [0] * 50 + [1] * 30 + [2] * 20
    found = carving.carve(labels, {"val": 0.15, "test": 0.15}, seed=3)
    assert [len(found[r]) for r in ("train", "val", "test")] == [70, 15, 15]
    assert sorted(np.concatenate(list(found.values())).tolist()) == list(range(100))
    val_classes = np.bincount(np.asarray(labels)[found["val"]])
    assert val_classes.tolist() == [8, 4, 3]  # 7.5, 4.5, 3.0: one more to the first tie
    tiny = carving.carve([0, 1, 0, 1, 0, 1], {"val": 0.15, "test": 0.15}, seed=0)
    assert [len(tiny[r]) for r in ("train", "val", "test")] == [4, 1, 1]
    with pytest.raises(ValueError, match="keep some for training"):
        carving.carve([0, 1], {"val": 0.15, "test": 0.15}, seed=0)
