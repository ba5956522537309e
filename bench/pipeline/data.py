"""Datasets into tf.data: load the splits, resize, cache, augment, scale to the backbone's range.

Every dataset arrives as (uint8-range image, int label) pairs, from TFDS (split syntax,
configurable ``data_dir``) or from a class-per-subfolder directory; the same pipeline
then decodes and resizes to the run's ``image_size`` once, keeps the result (in memory
when it fits, else on disk: ``input_cache``), and every epoch shuffles, batches, augments
and scales to the pixel range the backbone's source expects (the registry says which).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

import bench.pipeline.datasets.shapes  # noqa: F401  (registers the embedded TFDS builder)
from bench.core import splits
from bench.core.console import say
from bench.core.errors import ConfigError, DataUnavailable
from bench.core.record import SplitInfo
from bench.core.schema import Config, Loader
from bench.core.spec import RunSpec
from bench.pipeline import augment, folder, pixels

AUTOTUNE = tf.data.AUTOTUNE


@dataclass
class Data:
    """The three splits as batched tf.data pipelines plus what the model needs to know.

    ``epochs(start, end)`` is the training pipeline of epochs ``start`` to ``end - 1``
    (counted from 0 across phases), each epoch's order and augmentation a function of
    (seed, epoch). ``plain`` holds every split (training included) without shuffling or
    augmentation, in the order the training pipeline shuffles from: the feature cache
    reads it once.
    """

    train: tf.data.Dataset  # epoch 0 of the training pipeline (one pass)
    val: tf.data.Dataset
    test: tf.data.Dataset | None
    num_classes: int
    class_names: list[str]
    train_examples: int | None
    epochs: Callable[[int, int], tf.data.Dataset] | None = None  # from_epoch(start, end)
    drop_remainder: bool = False  # the last partial training batch is dropped (TPUs)
    skipped_files: list[str] = field(default_factory=list)  # unreadable, left out (folder)
    plain: dict[str, tf.data.Dataset] = field(default_factory=dict)
    # Each split resized, unbatched, 0..255 as the kept model takes them (pipeline.exports).
    images: dict[str, tf.data.Dataset | None] = field(default_factory=dict)
    identity: str = ""  # which data, in which version (part of the feature cache's key)
    input_cache: str = "none"  # where decoded, resized images are kept: memory | disk | none
    splits: dict[str, SplitInfo] = field(default_factory=dict)  # the record's, per role


def load(spec: RunSpec, drop_remainder: bool = False, cache_dir: Path | None = None) -> Data:
    """Builds the train/val/test pipelines for a run.

    Args:
        spec: The run; its dataset, image_size, batch size, augment, input_cache and seed
            are used.
        drop_remainder: Drop the last partial training batch (TPUs need static shapes).
        cache_dir: Where an on-disk input cache goes (emptied first); None: no disk cache.

    Raises:
        ConfigError: for an unknown TFDS name.
        DataUnavailable: when the data cannot be found or downloaded.
    """
    cfg = spec.cfg
    if cache_dir is not None:  # an earlier attempt's files may be partial
        shutil.rmtree(cache_dir, ignore_errors=True)
    source = _folder_source(cfg) if cfg.dataset.loader == Loader.folder else _tfds_source(cfg)
    raw = [source.roles.get(role) for role in splits.ROLES]
    input_range = spec.backbone.input_range(cfg.backbone.source.value)
    count = int(raw[0].cardinality())  # negative when unknown
    where = input_cache(cfg, [int(ds.cardinality()) for ds in raw if ds is not None], cache_dir)
    train, val, test = (
        None if ds is None else resized(ds, cfg.image_size, where, cache_dir, name)
        for ds, name in zip(raw, splits.ROLES, strict=True)
    )

    def evaluation(ds):
        return None if ds is None else batches(ds, spec.batch_size, input_range)

    def epoch(number):
        return training_epoch(train, spec, input_range, number, drop_remainder)

    return Data(
        train=sharded(epoch(0).prefetch(AUTOTUNE)),
        epochs=lambda start, end: from_epoch(epoch, start, end),
        drop_remainder=drop_remainder,
        val=evaluation(val),
        test=evaluation(test),
        num_classes=cfg.dataset.num_classes or len(source.class_names),
        class_names=source.class_names,
        train_examples=count if count >= 0 else source.splits["train"].examples,
        skipped_files=source.skipped,
        plain={"train": evaluation(train), "val": evaluation(val), "test": evaluation(test)},
        images={"train": train, "val": val, "test": test},
        identity=source.identity,
        input_cache=where,
        splits=source.splits,
    )


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


MEMORY_SHARE = 0.25  # input_cache=auto keeps images in memory up to this share of free RAM


def input_cache(cfg: Config, counts: list[int], cache_dir: Path | None) -> str:
    """Where the decoded, resized images are kept after the first epoch.

    ``auto``: in memory when every split's float32 images fit in a quarter of the free
    memory, else on disk (when the run has a folder for it), else nowhere.
    """
    if cfg.input_cache != "auto":
        return cfg.input_cache if cfg.input_cache != "disk" or cache_dir else "none"
    size = sum(counts) * cfg.image_size**2 * 3 * 4
    free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if all(n >= 0 for n in counts) and size <= MEMORY_SHARE * free:
        return "memory"
    return "disk" if cache_dir else "none"


def resized(
    ds: tf.data.Dataset, image_size: int, where: str, cache_dir: Path | None, name: str
) -> tf.data.Dataset:
    """Decoded images resized to ``image_size`` (float32, 0-255), cached as ``where`` says:
    decoding and resizing then happen in the first epoch only."""
    size = (image_size, image_size)
    ds = ds.map(lambda x, y: (tf.image.resize(tf.cast(x, tf.float32), size), y), AUTOTUNE)
    if where == "memory":
        return ds.cache()
    if where == "disk":
        cache_dir.mkdir(parents=True, exist_ok=True)
        return ds.cache(str(cache_dir / name))
    return ds


def _tfds_source(cfg: Config) -> Source:
    """Named splits as TFDS gives them (their files in an order fixed by the seed); carved
    roles filtered by index out of the training split read in its fixed order."""
    ds_cfg, plan = cfg.dataset, splits.of(cfg.dataset)
    named = [role for role in plan.roles() if not role.carved]
    # The files' order fixed by the seed; each epoch's order is training_epoch's.
    read = tfds.ReadConfig(shuffle_seed=cfg.seed, shuffle_reshuffle_each_iteration=False)
    loaded, info = _tfds_load(cfg, [r.split for r in named], read_config=read, shuffle_files=True)
    roles = {role.name: _pairs(ds, ds_cfg) for role, ds in zip(named, loaded, strict=True)}
    found = {role.name: _info(role, _count(info, role.split)) for role in named}
    if plan.shares:
        carved, counts = _carved(cfg, plan, info)
        roles.update(carved)
        found.update({r.name: _info(r, counts[r.name]) for r in plan.roles() if r.carved})
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
        index = splits.carve(labels, plan.shares, ds_cfg.split_seed)
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


def _folder_source(cfg: Config) -> Source:
    plan = splits.of(cfg.dataset)
    found = folder.load(cfg.dataset.path, plan)
    if found.skipped:
        more = ", ..." if len(found.skipped) > 5 else ""
        say(
            f"dataset.path={cfg.dataset.path}: skipped {len(found.skipped)} unreadable files "
            f"({', '.join(found.skipped[:5])}{more})"
        )
    infos = {r.name: _info(r, found.counts[r.name]) for r in plan.roles()}
    return Source(found.roles, found.class_names, found.identity, infos, found.skipped)


def sharded(ds: tf.data.Dataset) -> tf.data.Dataset:
    """``ds`` split across the workers of a multi-worker run by element (auto-shard DATA).

    tf.distribute's default shards by file, which fails for a TFDS split in fewer files
    than workers, a folder dataset and the feature cache (all in memory); by element each
    worker reads everything and keeps its share, which after the input cache's first
    epoch costs little.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def batches(
    ds: tf.data.Dataset, batch_size: int, input_range: tuple[float, float]
) -> tf.data.Dataset:
    """Resized images to batches in their order (validation, test, the feature cache):
    batch, scale to the backbone's range, prefetch."""
    return sharded(scaled(ds.batch(batch_size), input_range).prefetch(AUTOTUNE))


def scaled(ds: tf.data.Dataset, input_range: tuple[float, float]) -> tf.data.Dataset:
    """0-255 images to the backbone's input range."""
    return ds.map(lambda x, y: (pixels.to_input_range(x, input_range), y), AUTOTUNE)


def shuffle_seed(run_seed: int, epoch: int) -> int:
    """The shuffle seed of one epoch: a function of (run seed, epoch) alone. A Python int:
    tf.data compares a seed with 0 in Python, which a tensor seed cannot take."""
    return run_seed * 1_000_003 + epoch


def shuffled(
    ds: tf.data.Dataset, cfg: Config, batch_size: int, epoch: int, drop_remainder: bool = False
) -> tf.data.Dataset:
    """Epoch ``epoch``'s order of ``ds`` (the run's buffer, seeded by (seed, epoch)), batched."""
    seed = shuffle_seed(cfg.seed, epoch)
    order = ds.shuffle(cfg.dataset.shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
    return order.batch(batch_size, drop_remainder=drop_remainder)


def training_epoch(
    ds: tf.data.Dataset,
    spec: RunSpec,
    input_range: tuple[float, float],
    epoch: int,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Epoch ``epoch`` of the training pipeline: shuffle, batch, augment, scale.

    Its order and its augmentation draws are a function of (seed, epoch), not of how many
    epochs this process iterated before, so a run resumed at epoch *k* sees from there on
    exactly what the uncut run saw.
    """
    cfg = spec.cfg
    out = shuffled(ds, cfg, spec.batch_size, epoch, drop_remainder)
    if spec.plan.augments:  # decided once, in the run's plan
        out = out.enumerate().map(
            lambda i, xy: (
                augment.apply(xy[0], cfg.augment, augment.seed_of(cfg.seed, epoch, i)),
                xy[1],
            ),
            AUTOTUNE,
        )
    return scaled(out, input_range)


def from_epoch(one_epoch: Callable[[int], tf.data.Dataset], start: int, end: int):
    """Epochs ``start`` to ``end - 1`` of ``one_epoch(epoch)`` end to end, for
    ``fit(steps_per_epoch=...)`` (Keras then keeps one iterator across epochs)."""
    found = one_epoch(start)
    for epoch in range(start + 1, end):
        found = found.concatenate(one_epoch(epoch))
    return sharded(found.prefetch(AUTOTUNE))
