"""Datasets into tf.data: load the splits, resize, augment, scale to the backbone's range.

Every dataset arrives as (uint8-range image, int label) pairs, from TFDS (split syntax,
configurable ``data_dir``) or from a class-per-subfolder directory; the same pipeline
then resizes to the run's ``image_size`` and scales to the pixel range the backbone's
source expects (the registry says which).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    """The three splits as batched tf.data pipelines plus what the model needs to know."""

    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset | None
    num_classes: int
    class_names: list[str]
    train_examples: int | None
    skipped_files: list[str] = field(default_factory=list)  # unreadable, left out (folder)


def load(spec: RunSpec, drop_remainder: bool = False) -> Data:
    """Builds the train/val/test pipelines for a run.

    Args:
        spec: The run; its dataset, image_size, batch_size, augment and seed are used.
        drop_remainder: Drop the last partial training batch (TPUs need static shapes).

    Raises:
        ConfigError: for an unknown TFDS name.
        DataUnavailable: when the data cannot be found or downloaded.
    """
    cfg = spec.cfg
    skipped: list[str] = []
    if cfg.dataset.loader == Loader.folder:
        raw, class_names, skipped = _folder_splits(cfg)
    else:
        raw, class_names = _tfds_splits(cfg)
    input_range = spec.backbone.input_range(cfg.backbone.source.value)
    train, val, test = raw
    count = int(train.cardinality())  # negative when unknown
    train_examples = count if count >= 0 else None

    def evaluation(ds):
        return pipeline(ds, cfg, spec.batch_size, input_range, training=False)

    return Data(
        train=pipeline(
            train, cfg, spec.batch_size, input_range, training=True, drop_remainder=drop_remainder
        ),
        val=evaluation(val),
        test=None if test is None else evaluation(test),
        num_classes=cfg.dataset.num_classes or len(class_names),
        class_names=class_names,
        train_examples=train_examples,
        skipped_files=skipped,
    )


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
    return (pairs[0], pairs[1], pairs[2] if len(pairs) > 2 else None), list(label.names)


def _folder_splits(cfg: Config):
    found = folder.load(cfg.dataset.path, cfg.dataset.val_fraction, cfg.seed)
    if found.skipped:
        more = ", ..." if len(found.skipped) > 5 else ""
        say(
            f"dataset.path={cfg.dataset.path}: skipped {len(found.skipped)} unreadable files "
            f"({', '.join(found.skipped[:5])}{more})"
        )
    return (found.train, found.val, None), found.class_names, found.skipped


def pipeline(
    ds: tf.data.Dataset,
    cfg: Config,
    batch_size: int,
    input_range: tuple[float, float],
    training: bool,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Shuffle (training), resize, batch, augment (training), scale, prefetch."""
    if training:
        ds = ds.shuffle(cfg.dataset.shuffle_buffer, seed=cfg.seed, reshuffle_each_iteration=True)
    size = (cfg.image_size, cfg.image_size)
    ds = ds.map(lambda x, y: (tf.image.resize(tf.cast(x, tf.float32), size), y), AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    augmenter = augmentation(cfg.augment, cfg.seed) if training else None
    if augmenter is not None:
        ds = ds.map(lambda x, y: (augmenter(x, training=True), y), AUTOTUNE)
    low, high = input_range
    scale = (high - low) / 255.0
    ds = ds.map(lambda x, y: (tf.clip_by_value(x, 0.0, 255.0) * scale + low, y), AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


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
