"""Datasets into tf.data: load the splits, resize, cache, augment, scale to the backbone's range.

Every dataset arrives as (uint8-range image, int label) pairs per role, from TFDS (split
syntax, configurable ``data_dir``) or from a class-per-subfolder directory
(bench.pipeline.sources); the same pipeline
then decodes and resizes to the run's ``image_size`` once, keeps the result (in memory
when it fits, else on disk: ``input_cache``), and every epoch shuffles, batches, augments
and scales to the pixel range the backbone's source expects (the registry says which).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import tensorflow as tf

from bench.core import splits
from bench.core.record import SplitInfo
from bench.core.schema import Config
from bench.core.spec import RunSpec
from bench.pipeline import augment, pixels, sources

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
    source = sources.read(cfg)
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
    ``fit(steps_per_epoch=...)`` (Keras then keeps one iterator across epochs).

    tf.data's model-based autotuning is off for this input. Its thread, which wakes once
    per optimisation period (doubling to a minute), sometimes missed the iterator's
    cancellation when ``fit`` ended, and the iterator's destructor then waited out the
    period: 17 to 35 s in a quarter of 10-epoch B0 runs, 5 s in most 5-epoch smoke runs
    (TensorFlow 2.21; found with gdb in ``Model::OptimizeLoop``, docs/performance.md).
    ``AUTOTUNE`` parallelism then stays where tf.data starts it: the smaller of 16 and the
    cores' count.
    """
    found = one_epoch(start)
    for epoch in range(start + 1, end):
        found = found.concatenate(one_epoch(epoch))
    options = tf.data.Options()
    options.autotune.enabled = False
    return sharded(found.prefetch(AUTOTUNE)).with_options(options)
