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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
import tf_keras as keras

import bench.pipeline.datasets.shapes  # noqa: F401  (registers the embedded TFDS builder)
from bench.core.console import say
from bench.core.errors import ConfigError, DataUnavailable
from bench.core.schema import AugmentConfig, Config, Flip, Loader
from bench.core.spec import RunSpec
from bench.pipeline import folder

AUTOTUNE = tf.data.AUTOTUNE


@dataclass
class Data:
    """The three splits as batched tf.data pipelines plus what the model needs to know.

    ``plain`` holds every split (training included) without shuffling or augmentation,
    in the order the training pipeline shuffles from: the feature cache reads it once.
    """

    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset | None
    num_classes: int
    class_names: list[str]
    train_examples: int | None
    skipped_files: list[str] = field(default_factory=list)  # unreadable, left out (folder)
    plain: dict[str, tf.data.Dataset] = field(default_factory=dict)
    identity: str = ""  # which data, in which version (part of the feature cache's key)
    input_cache: str = "none"  # where decoded, resized images are kept: memory | disk | none


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
    skipped: list[str] = []
    if cache_dir is not None:  # an earlier attempt's files may be partial
        shutil.rmtree(cache_dir, ignore_errors=True)
    if cfg.dataset.loader == Loader.folder:
        raw, class_names, skipped, identity = _folder_splits(cfg)
    else:
        raw, class_names, identity = _tfds_splits(cfg)
    input_range = spec.backbone.input_range(cfg.backbone.source.value)
    count = int(raw[0].cardinality())  # negative when unknown
    train_examples = count if count >= 0 else None
    where = input_cache(cfg, [int(ds.cardinality()) for ds in raw if ds is not None], cache_dir)
    train, val, test = (
        None if ds is None else resized(ds, cfg.image_size, where, cache_dir, name)
        for ds, name in zip(raw, ("train", "val", "test"), strict=True)
    )

    def evaluation(ds):
        return None if ds is None else batches(ds, cfg, spec.batch_size, input_range)

    return Data(
        train=batches(
            train, cfg, spec.batch_size, input_range, training=True, drop_remainder=drop_remainder
        ),
        val=evaluation(val),
        test=evaluation(test),
        num_classes=cfg.dataset.num_classes or len(class_names),
        class_names=class_names,
        train_examples=train_examples,
        skipped_files=skipped,
        plain={"train": evaluation(train), "val": evaluation(val), "test": evaluation(test)},
        identity=identity,
        input_cache=where,
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


def _tfds_splits(cfg: Config):
    ds_cfg = cfg.dataset
    splits = [ds_cfg.train_split, ds_cfg.val_split] + (
        [ds_cfg.test_split] if ds_cfg.test_split else []
    )
    try:
        datasets, info = tfds.load(
            ds_cfg.name,
            split=splits,
            data_dir=cfg.data_dir,
            download=ds_cfg.download,
            with_info=True,
            read_config=tfds.ReadConfig(shuffle_seed=cfg.seed),
            shuffle_files=True,
        )
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
            why=f"could not load {ds_cfg.name} splits {splits} ({type(error).__name__}: "
            f"{str(error)[:300]})",
        ) from error  # fmt: skip
    label = info.features[ds_cfg.label_key]
    pairs = [
        ds.map(lambda ex: (ex[ds_cfg.image_key], ex[ds_cfg.label_key]), num_parallel_calls=AUTOTUNE)
        for ds in datasets
    ]
    identity = f"tfds:{ds_cfg.name}:{info.version}:{ds_cfg.image_key}:{ds_cfg.label_key}"
    return (pairs[0], pairs[1], pairs[2] if len(pairs) > 2 else None), list(label.names), identity


def _folder_splits(cfg: Config):
    found = folder.load(cfg.dataset.path, cfg.dataset.val_fraction, cfg.seed)
    if found.skipped:
        more = ", ..." if len(found.skipped) > 5 else ""
        say(
            f"dataset.path={cfg.dataset.path}: skipped {len(found.skipped)} unreadable files "
            f"({', '.join(found.skipped[:5])}{more})"
        )
    return (found.train, found.val, None), found.class_names, found.skipped, found.identity


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
    ds: tf.data.Dataset,
    cfg: Config,
    batch_size: int,
    input_range: tuple[float, float],
    training: bool = False,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Resized images to batches: shuffle (training), batch, augment (training), scale to
    the backbone's range, prefetch."""
    if training:
        ds = ds.shuffle(cfg.dataset.shuffle_buffer, seed=cfg.seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    augmenter = augmentation(cfg.augment, cfg.seed) if training else None
    if augmenter is not None:
        ds = ds.map(lambda x, y: (augmenter(x, training=True), y), AUTOTUNE)
    low, high = input_range
    scale = (high - low) / 255.0
    ds = ds.map(lambda x, y: (tf.clip_by_value(x, 0.0, 255.0) * scale + low, y), AUTOTUNE)
    return sharded(ds.prefetch(AUTOTUNE))


def augmentation(aug: AugmentConfig, seed: int) -> keras.Sequential | None:
    """Keras preprocessing layers for the augment config, or None when it asks for none.

    Each layer gets its own seed derived from the run's (``numpy.random.SeedSequence``):
    layers seeded alike would draw the same random numbers, so a flip and a rotation
    would always fire together.
    """
    seeds = iter(int(s) for s in np.random.SeedSequence(seed).generate_state(4))
    layers = []
    if aug.flip != Flip.none:
        layers.append(keras.layers.RandomFlip(Flip(aug.flip).value, seed=next(seeds)))
    if aug.rotation:
        layers.append(keras.layers.RandomRotation(aug.rotation, seed=next(seeds)))
    if aug.translation:
        layers.append(
            keras.layers.RandomTranslation(aug.translation, aug.translation, seed=next(seeds))
        )
    if aug.contrast:
        layers.append(keras.layers.RandomContrast(aug.contrast, seed=next(seeds)))
    return keras.Sequential(layers, name="augment") if layers else None
