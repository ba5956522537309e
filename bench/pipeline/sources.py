"""A dataset's examples per role, before any resizing: from TFDS or from a folder.

Every role (train fits, validation selects, test reports) comes from a named split or is
carved out of the training split (bench.core.splits plans it, bench.pipeline.carving
carves it). What comes out is (uint8-range image, int label) pairs per role, the class
names, an identity of the data for the feature cache's key, and each role's record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

import bench.pipeline.datasets.shapes  # noqa: F401  (registers the embedded TFDS builder)
from bench.core import splits
from bench.core.console import say
from bench.core.errors import ConfigError, DataUnavailable
from bench.core.record import SplitInfo
from bench.core.schema import Config, Loader
from bench.pipeline import carving, folder

AUTOTUNE = tf.data.AUTOTUNE


def read(cfg: Config) -> Source:
    """The examples of the run's dataset per role.

    Raises:
        ConfigError: for an unknown TFDS name.
        DataUnavailable: when the data cannot be found or downloaded, or is too small to
            carve every role.
    """
    return _folder(cfg) if cfg.dataset.loader == Loader.folder else _tfds(cfg)


@dataclass
class Source:
    """A dataset's examples per role as (uint8-range image, label) pairs, before resizing."""

    roles: dict[str, tf.data.Dataset]
    class_names: list[str]
    identity: str
    splits: dict[str, SplitInfo]
    skipped: list[str] = field(default_factory=list)


def _info(role: splits.Role, examples: int | None) -> SplitInfo:
    return SplitInfo(role.split, role.share, role.seed, examples)


def _tfds(cfg: Config) -> Source:
    """Named splits as TFDS gives them (their files in an order fixed by the seed); carved
    roles filtered by index out of the training split read in its fixed order."""
    ds_cfg, plan = cfg.dataset, splits.of(cfg.dataset)
    named = [role for role in plan.roles if not role.carved]
    # The files' order fixed by the seed; each epoch's order is training_epoch's.
    read = tfds.ReadConfig(shuffle_seed=cfg.seed, shuffle_reshuffle_each_iteration=False)
    loaded, info = _tfds_load(cfg, [r.split for r in named], read_config=read, shuffle_files=True)
    roles = {role.name: _pairs(ds, ds_cfg) for role, ds in zip(named, loaded, strict=True)}
    found = {role.name: _info(role, _count(info, role.split)) for role in named}
    if plan.shares:
        carved, counts = _carved(cfg, plan, info)
        roles.update(carved)
        found.update({r.name: _info(r, counts[r.name]) for r in plan.roles if r.carved})
    label = info.features[ds_cfg.label_key]
    shares = ",".join(f"{r}={v:g}" for r, v in plan.shares.items())
    carving = f":carved={shares}:seed={ds_cfg.split_seed}" if shares else ""
    identity = f"tfds:{ds_cfg.name}:{info.version}:{ds_cfg.image_key}:{ds_cfg.label_key}{carving}"
    return Source(roles, list(label.names), identity, found)


def _carved(cfg: Config, plan: splits.SplitPlan, info) -> tuple[dict, dict[str, int]]:
    """The carved roles: the training split read once for its labels (images left
    encoded), each role the examples whose index the carving gave it."""
    ds_cfg = cfg.dataset
    image = info.features[ds_cfg.image_key]
    skip = _encoded(image)
    # Only the two features read, the images left encoded until their role is known.
    partial = tfds.decode.PartialDecoding(
        {ds_cfg.image_key: True, ds_cfg.label_key: True},
        decoders={ds_cfg.image_key: tfds.decode.SkipDecoding()} if skip else None,
    )
    (source,), _ = _tfds_load(cfg, [ds_cfg.train_split], shuffle_files=False, decoders=partial)
    labels = np.concatenate(
        list(source.map(lambda ex: ex[ds_cfg.label_key]).batch(4096).as_numpy_iterator())
    )
    try:
        index = carving.carve(labels, plan.shares, ds_cfg.split_seed)
    except ValueError as error:
        raise DataUnavailable(
            "dataset.train_split", ds_cfg.train_split, "a split large enough to carve every role",
            "lower dataset.val_fraction / dataset.test_fraction, or name the splits",
            why=str(error),
        ) from error  # fmt: skip
    owner = np.full(len(labels), -1, dtype=np.int32)
    for code, role in enumerate(index):
        owner[index[role]] = code
    table = tf.constant(owner)
    decode = image.decode_example if skip else (lambda x: x)
    roles = {}
    for code, role in enumerate(index):
        part = source.enumerate().filter(lambda i, ex, c=code: tf.gather(table, i) == c)
        roles[role] = part.map(
            lambda i, ex: (decode(ex[ds_cfg.image_key]), ex[ds_cfg.label_key]), AUTOTUNE
        )
    return roles, {role: len(found) for role, found in index.items()}


def _encoded(feature) -> bool:
    """Whether a feature is stored encoded (an image file), so it can be read undecoded."""
    return isinstance(feature, tfds.features.Image)


def _count(info, split: str) -> int | None:
    try:
        return int(info.splits[split].num_examples)
    except (KeyError, ValueError, TypeError, AttributeError):
        return None  # e.g. tfds.testing.mock_data, whose info has no splits


def _pairs(ds: tf.data.Dataset, ds_cfg) -> tf.data.Dataset:
    return ds.map(lambda ex: (ex[ds_cfg.image_key], ex[ds_cfg.label_key]), AUTOTUNE)


def _tfds_load(cfg: Config, names: list[str], **options):
    """``tfds.load`` of ``names`` with the run's data_dir; the user's errors named."""
    ds_cfg = cfg.dataset
    try:
        return _prepared(lambda: tfds.load(
            ds_cfg.name, split=names, data_dir=cfg.data_dir, download=ds_cfg.download,
            with_info=True, **options,
        ))  # fmt: skip
    except tfds.core.registered.DatasetNotFoundError as error:
        raise ConfigError(
            "dataset.name", ds_cfg.name, "a dataset=<option> of conf/dataset, or a TFDS name",
            "pick a name from `tfds.list_builders()`", why="not a TFDS dataset",
        ) from error  # fmt: skip
    except Exception as error:  # noqa: BLE001  (TFDS raises many types for missing data)
        where = cfg.data_dir or "TFDS_DATA_DIR / ~/tensorflow_datasets"
        raise DataUnavailable(
            "data_dir", where, "a TFDS data_dir that holds the prepared dataset",
            f"offline? prepare it on a machine with network (`tfds build {ds_cfg.name} "
            "--data_dir DIR`), copy DIR here and pass data_dir=DIR",
            why=f"could not load {ds_cfg.name} splits {names} ({type(error).__name__}: "
            f"{str(error)[:300]})",
        ) from error  # fmt: skip


def _prepared(load: Callable, tries: int = 3):
    """``load()``, again when another process finished preparing the same dataset while
    this one was (two jobs of a parallel multirun on a fresh machine: TFDS renames its
    ``incomplete.*`` folder into place and the second rename finds it there)."""
    for attempt in range(tries):
        try:
            return load()
        except FileExistsError:
            if attempt == tries - 1:
                raise
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


def _folder(cfg: Config) -> Source:
    """A folder's readable files carved into roles; the unreadable ones said."""
    plan = splits.of(cfg.dataset)
    found = folder.scan(cfg.dataset.path, plan)
    if found.skipped:
        more = ", ..." if len(found.skipped) > 5 else ""
        say(
            f"dataset.path={cfg.dataset.path}: skipped {len(found.skipped)} unreadable files "
            f"({', '.join(found.skipped[:5])}{more})"
        )
    infos = {r.name: _info(r, found.counts[r.name]) for r in plan.roles}
    return Source(found.roles, found.class_names, found.identity, infos, found.skipped)
