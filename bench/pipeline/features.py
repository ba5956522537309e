"""The feature cache: a frozen backbone's features, computed once per sweep, not per epoch.

A frozen backbone without augmentation maps every image to the same features in every
epoch of every run that shares it, so a head/optimizer/batch sweep can train on stored
features. They are computed once under the run's strategy (backbone in inference mode,
:class:`bench.pipeline.model.InferenceWhenFrozen`), stored as one ``.npz`` file per key
in ``feature_cache_dir``, and read back by every later run with the same key. The key
covers everything that changes the features (:func:`components`). Writes go to a private
temporary file renamed into place, so two runs filling one entry at once both succeed and
the entry is whole; a damaged entry is computed again (:mod:`bench.pipeline.store`). A run
that fills an entry trains on the arrays it holds, and stores them at its end, with its
record (:func:`bench.pipeline.outcome.finish`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from bench.core.record import FeatureCacheInfo
from bench.core.spec import RunSpec
from bench.pipeline import model, stop
from bench.pipeline.data import AUTOTUNE, Data, from_epoch, sharded, shuffled
from bench.pipeline.keep import multiply_adds
from bench.pipeline.model import Built, StoredBackbone
from bench.pipeline.place import Place
from bench.pipeline.store import read

SPLITS = ("train", "val", "test")


@dataclass
class FeatureData:
    """The splits as (features, label) pipelines, batched like the image pipelines."""

    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset | None
    epochs: Callable[[int, int], tf.data.Dataset] | None = None  # as Data.epochs
    backbone: StoredBackbone | None = None  # what computed them (None: an entry too old)
    filled: Entry | None = None  # computed by this run (the chief): outcome.finish stores it


@dataclass
class Entry:
    """A run's place in the cache: its key, its file and, on a hit, the stored arrays."""

    key: str
    path: Path
    parts: dict
    arrays: dict[str, np.ndarray] | None = None  # None: not stored yet (a miss)

    def head_input(self) -> tuple[tuple[int, ...], StoredBackbone] | None:
        """On a hit: the features' shape and the backbone that computed them (what
        :func:`bench.pipeline.model.build_head` needs); else None."""
        stored = None if self.arrays is None else stored_backbone(self.arrays)
        return None if stored is None else (self.arrays["train_x"].shape[1:], stored)


def stored_backbone(arrays: dict[str, np.ndarray]) -> StoredBackbone | None:
    """The backbone an entry's features came from, as the entry describes it (None for an
    entry written before it did)."""
    if "backbone_params" not in arrays:
        return None
    macs = arrays.get("backbone_macs")
    return StoredBackbone(int(arrays["backbone_params"]), int(macs) if macs is not None else None)


def build_model(
    spec: RunSpec, data: Data, where: Place
) -> tuple[Built, FeatureData | None, FeatureCacheInfo]:
    """The model, and the cached features it trains on where the cache applies: only the
    head when a hit makes the backbone unnecessary (the plan says when)."""
    policy, workers = where.compute.precision, where.compute.workers
    entry = lookup(spec, data, policy)
    head_input = entry.head_input() if entry and spec.plan.head_only(workers) else None
    with where.strategy.scope():
        if head_input:  # every phase trains on cached features: no backbone to build
            built = model.build_head(spec, data.num_classes, *head_input, policy)
        else:
            built = model.build(spec, data.num_classes, policy, where.devices.kind == "TPU")
    stop.check()
    on_features, info = prepare(spec, data, entry, built)
    return built, on_features, info


def lookup(spec: RunSpec, data: Data, policy: str) -> Entry | None:
    """The run's entry, read when it is stored; None when the cache does not apply.

    Args:
        spec: The run.
        data: Its image pipelines (their ``identity`` is part of the key).
        policy: The precision policy in force (part of the key).
    """
    if not spec.plan.feature_cache:
        return None
    parts = components(spec, data, policy)
    key = digest(parts)
    path = cache_dir(spec) / f"{key}.npz"
    return Entry(key, path, parts, read(path))


def prepare(
    spec: RunSpec, data: Data, entry: Entry | None, built: Built
) -> tuple[FeatureData | None, FeatureCacheInfo]:
    """The run's feature pipelines (None when the cache does not apply) and what happened.

    Args:
        spec: The run.
        data: Its image pipelines (``data.plain`` is read once to fill the cache).
        entry: What :func:`lookup` found.
        built: The model, built under the run's strategy; on a miss its ``features``
            (the frozen backbone and, for heads without a conv layer, the pooling) fill
            the entry.
    """
    if entry is None:
        return None, FeatureCacheInfo(status="unused", reason=spec.plan.feature_cache_off)
    arrays, status, fill_s = entry.arrays, "hit", None
    if arrays is None:
        start = time.perf_counter()
        arrays = compute(data, built.features)
        arrays.update(backbone_facts(built, spec.cfg.image_size))
        status, fill_s = "filled", time.perf_counter() - start
    info = FeatureCacheInfo(status=status, key=entry.key, path=str(entry.path), fill_time_s=fill_s)
    found = pipelines(arrays, spec, data.drop_remainder)
    if status == "filled" and spec.site.role.chief:  # in a multi-worker run the chief stores
        found.filled = dataclasses.replace(entry, arrays=arrays)
    return found, info


def cache_dir(spec: RunSpec) -> Path:
    """``feature_cache_dir`` (resolved by the spec: ``<results_dir>/features`` unless set)."""
    return Path(spec.cfg.feature_cache_dir)


def components(spec: RunSpec, data: Data, policy: str) -> dict:
    """Everything the stored features depend on; the key is their hash."""
    cfg = spec.cfg
    source = cfg.backbone.source.value
    return {
        "backbone": cfg.backbone.name,
        "source": source,
        "weights": weights_identity(spec),
        "dataset": data.identity,
        "splits": [cfg.dataset.train_split, cfg.dataset.val_split, cfg.dataset.test_split],
        "image_size": cfg.image_size,
        "input_range": list(spec.backbone.input_range(source)),
        "pooled": not cfg.head.conv_filters,
        "precision": policy,
        "tensorflow": tf.__version__,
    }


def backbone_facts(built: Built, size: int) -> dict[str, np.ndarray]:
    """What the entry keeps of the backbone that fills it, for the runs that will train on
    it without building one: its parameters and the multiply-adds of one image through
    ``features`` (counted once per entry, not once per run; a kept head adds its own)."""
    facts = {"backbone_params": np.array(built.backbone.count_params(), np.int64)}
    macs = multiply_adds(lambda image: built.features(image, training=False), (size, size, 3))
    if macs is not None:
        facts["backbone_macs"] = np.array(macs, np.int64)
    return facts


def weights_identity(spec: RunSpec) -> str:
    """The backbone's weights: ImageNet and the Keras version, a file's content hash, a hub
    handle (a local one with its files' hash), or random weights and the seed drawing them."""
    cfg = spec.cfg
    if cfg.backbone.source.value == "hub":
        handle = cfg.backbone.hub_handle
        return f"hub:{handle}:{tree_hash(handle)}" if os.path.isdir(handle) else f"hub:{handle}"
    if cfg.backbone.weights == "imagenet":
        return f"imagenet:tf_keras-{keras.__version__}"
    if cfg.backbone.weights == "none":
        return f"random:seed={cfg.seed}"
    return f"file:{file_hash(cfg.backbone.weights)}"


def file_hash(path: str | Path) -> str:
    """The SHA-256 of a file's content."""
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def tree_hash(root: str | Path) -> str:
    """The SHA-256 of every file under ``root``, names and contents."""
    sha = hashlib.sha256()
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        sha.update(str(path.relative_to(root)).encode())
        sha.update(file_hash(path).encode())
    return sha.hexdigest()


def digest(parts: dict) -> str:
    """The cache key: 16 hex digits of the components' hash."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def compute(data: Data, extractor: keras.Model) -> dict[str, np.ndarray]:
    """Runs every split once through ``extractor`` (Keras ``predict``, so under the strategy
    the model was built in); each label travels with its image, so order cannot drift."""
    labelled = pair_model(extractor)
    arrays = {}
    for split in SPLITS:
        ds = data.plain.get(split)
        if ds is None:
            continue
        features, labels = labelled.predict(
            ds.map(lambda x, y: ((x, y),)), verbose=0, callbacks=[stop.StopOnRequest()]
        )
        arrays[f"{split}_x"] = features
        arrays[f"{split}_y"] = labels.astype(np.int64)
    return arrays


def pair_model(extractor: keras.Model) -> keras.Model:
    """(image, label) -> (features, label): predict keeps each label beside its features."""
    image = keras.Input(shape=extractor.input_shape[1:], name="image")
    label = keras.Input(shape=(), dtype="int64", name="label")
    same = keras.layers.Lambda(lambda t: tf.identity(t), name="label_out")(label)
    return keras.Model([image, label], [extractor(image, training=False), same])


def pipelines(
    arrays: dict[str, np.ndarray], spec: RunSpec, drop_remainder: bool = False
) -> FeatureData:
    """Batched (features, label) datasets; the training one shuffled with the run's buffer,
    each epoch's order a function of (seed, epoch), and its last partial batch dropped when
    the images' is (TPUs): an epoch then has the steps ``fit`` is told it has, and a resumed
    epoch starts where the uncut run's did."""
    cfg, backbone = spec.cfg, stored_backbone(arrays)

    def split(name: str) -> tf.data.Dataset | None:
        if f"{name}_x" not in arrays:
            return None
        pairs = (arrays[f"{name}_x"], arrays[f"{name}_y"])
        return sharded(tf.data.Dataset.from_tensor_slices(pairs))

    train = tf.data.Dataset.from_tensor_slices((arrays["train_x"], arrays["train_y"]))

    def epoch(number):  # as the image pipeline: the order a function of (seed, epoch)
        return shuffled(train, cfg, spec.batch_size, number, drop_remainder)

    test = split("test")
    return FeatureData(
        train=sharded(epoch(0).prefetch(AUTOTUNE)),
        epochs=lambda start, end: from_epoch(epoch, start, end),
        val=split("val").batch(spec.batch_size).prefetch(AUTOTUNE),
        test=None if test is None else test.batch(spec.batch_size).prefetch(AUTOTUNE),
        backbone=backbone,
    )
