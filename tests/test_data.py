"""Data: every TFDS dataset config through the real TFDS code, folders, and shapes for real."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
import tf_keras as keras
from PIL import Image

from bench.core.errors import ConfigError
from bench.pipeline import data
from tests.conftest import make_spec, options

TFDS_DATASETS = [name for name in options("dataset") if name not in ("folder", "shapes")]
# Class counts from each dataset's TFDS metadata (its ClassLabel feature).
NUM_CLASSES = {
    "cats_vs_dogs": 2, "cifar10": 10, "cifar100": 100, "food101": 101,
    "oxford_flowers102": 102, "stanford_dogs": 120, "tf_flowers": 5,
}  # fmt: skip


def test_every_tfds_dataset_config_is_covered():
    assert set(TFDS_DATASETS) == set(NUM_CLASSES)


@pytest.mark.parametrize("name", TFDS_DATASETS)
@pytest.mark.parametrize("backbone", ["b0", "mobilenet_v2"])
def test_tfds_dataset_loads_through_tfds(name, backbone):
    spec = make_spec(f"dataset={name}", f"backbone={backbone}", "image_size=48", "batch_size=4")
    with tfds.testing.mock_data(num_examples=6):
        loaded = data.load(spec)
        images, labels = next(iter(loaded.train))
        val_images, _ = next(iter(loaded.val))
        test = None if loaded.test is None else next(iter(loaded.test))
    assert loaded.num_classes == NUM_CLASSES[name] == len(loaded.class_names)
    assert images.shape == (4, 48, 48, 3) and images.dtype == tf.float32
    assert val_images.shape[1:] == (48, 48, 3)
    assert labels.dtype.is_integer and 0 <= int(tf.reduce_min(labels))
    assert int(tf.reduce_max(labels)) < loaded.num_classes
    low, high = spec.backbone.input_range("keras")
    assert low <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= high
    assert (test is not None) == (spec.cfg.dataset.test_split is not None)


def test_shapes_for_real(tfds_dir):
    spec = make_spec("dataset=shapes", "image_size=32", "batch_size=50", tfds_dir=tfds_dir)
    loaded = data.load(spec)
    assert loaded.num_classes == 4
    assert loaded.class_names == ["circle", "square", "triangle", "cross"]
    assert loaded.train_examples == 1600
    assert sum(int(y.shape[0]) for _, y in loaded.val) == 400
    assert sum(int(y.shape[0]) for _, y in loaded.test) == 400
    labels = np.concatenate([y.numpy() for _, y in loaded.train])
    assert np.bincount(labels).tolist() == [400, 400, 400, 400]


@pytest.mark.parametrize(("backbone", "low", "high"), [("b0", 0, 255), ("mobilenet_v2", -1, 1)])
def test_pipeline_scales_to_the_backbone_range(tfds_dir, backbone, low, high):
    spec = make_spec("dataset=shapes", f"backbone={backbone}", "image_size=32", tfds_dir=tfds_dir)
    images = np.concatenate([x.numpy() for x, _ in data.load(spec).val.take(4)])
    # Shapes images span nearly the whole 0..255 range (dark backgrounds, light shapes).
    assert images.min() == pytest.approx(low, abs=0.05 * (high - low))
    assert images.max() == pytest.approx(high, abs=0.05 * (high - low))


def _small_cnn(num_classes: int) -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.GlobalMaxPooling2D(),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )


@pytest.mark.parametrize("broken", [False, True], ids=["working", "labels-shuffled"])
def test_shapes_is_learnable_and_a_broken_pipeline_is_not(tfds_dir, broken):
    spec = make_spec("dataset=shapes", "image_size=32", "batch_size=32", tfds_dir=tfds_dir)
    loaded = data.load(spec)
    train = loaded.train
    if broken:  # a pipeline that pairs images with the wrong labels
        train = train.map(lambda x, y: (x, tf.random.shuffle(y, seed=1)))
    keras.utils.set_random_seed(0)
    net = _small_cnn(loaded.num_classes)
    net.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    net.fit(train, epochs=8, verbose=0)
    accuracy = net.evaluate(loaded.val, verbose=0, return_dict=True)["accuracy"]
    if broken:
        assert accuracy < 0.4
    else:
        assert accuracy > 0.8


def _write_folder(root, classes=("ants", "bees", "wasps"), per_class=10):
    rng = np.random.default_rng(0)
    for label in classes:
        (root / label).mkdir(parents=True)
        for index in range(per_class):
            pixels = rng.integers(0, 255, size=(20 + index, 30, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{index}.png")
    return root


def test_folder_loads_with_a_validation_split(tmp_path):
    root = _write_folder(tmp_path / "images")
    spec = make_spec("dataset=folder", f"dataset.path={root}", "image_size=40", "batch_size=8")
    loaded = data.load(spec)
    assert loaded.class_names == ["ants", "bees", "wasps"] and loaded.num_classes == 3
    assert loaded.test is None
    assert loaded.train_examples == 24
    assert sum(int(y.shape[0]) for _, y in loaded.val) == 6
    images, _ = next(iter(loaded.train))
    assert images.shape[1:] == (40, 40, 3)


def test_folder_without_class_subfolders_is_a_config_error(tmp_path):
    (tmp_path / "flat").mkdir()
    with pytest.raises(ConfigError, match="one subfolder per class"):
        make_spec("dataset=folder", f"dataset.path={tmp_path / 'flat'}")


def test_missing_tfds_data_offline_says_how_to_prepare_it(tmp_path):
    spec = make_spec("dataset=cifar10", "dataset.download=false", f"data_dir={tmp_path}")
    with pytest.raises(data.DataUnavailable, match=r"tfds build cifar10 --data_dir DIR"):
        data.load(spec)


def test_unknown_tfds_name_is_a_config_error():
    spec = make_spec("dataset=cifar10", "dataset.name=not_a_dataset")
    with pytest.raises(ConfigError, match="not a TFDS dataset"):
        data.load(spec)


def test_keras_io_augmentation_has_its_four_layers():
    spec = make_spec("augment=keras_io")
    names = [type(layer).__name__ for layer in data.augmentation(spec.cfg.augment, 0).layers]
    assert names == ["RandomFlip", "RandomRotation", "RandomTranslation", "RandomContrast"]
    assert data.augmentation(make_spec("augment=none").cfg.augment, 0) is None


def test_each_augmentation_layer_draws_its_own_random_numbers():
    spec = make_spec("augment=keras_io", "seed=7")
    layers = data.augmentation(spec.cfg.augment, spec.cfg.seed).layers
    seeds = [layer._random_generator._seed for layer in layers]
    assert len(layers) == 4 and len(set(seeds)) == 4
    again = [
        layer._random_generator._seed for layer in data.augmentation(spec.cfg.augment, 7).layers
    ]
    assert again == seeds  # derived from the run's seed, so reproducible


def _shard(ds: tf.data.Dataset, index: int) -> tf.data.Dataset:
    # The rewrite tf.distribute applies to each worker's copy of a dataset.
    from tensorflow.python.data.experimental.ops.distribute import _AutoShardDataset

    return _AutoShardDataset(ds, num_workers=2, index=index, num_replicas=2)


def _labels(ds: tf.data.Dataset) -> list[int]:
    return sorted(int(y) for _, batch in ds for y in batch.numpy())


@pytest.mark.parametrize("source", ["shapes (one TFDS file)", "folder"])
def test_two_workers_each_read_half_of_every_split(tmp_path, tfds_dir, source):
    if source == "folder":
        root = _write_folder(tmp_path / "images")
        overrides = ["dataset=folder", f"dataset.path={root}", "dataset.val_fraction=0.5"]
    else:
        overrides = ["dataset=shapes", "dataset.train_split='train[:64]'"]
    loaded = data.load(make_spec(*overrides, "image_size=32", "batch_size=4", tfds_dir=tfds_dir))
    # Unshuffled: two copies of a shuffled split in one process draw two orders, where two
    # worker processes with one seed draw the same one.
    for name in ("train", "val"):
        ds = loaded.plain[name]
        halves = [_labels(_shard(ds, index)) for index in (0, 1)]
        assert sorted(halves[0] + halves[1]) == _labels(ds), name
        assert abs(len(halves[0]) - len(halves[1])) <= 4, name  # a batch apart at most


def _epochs(loaded: data.Data, count: int) -> list[np.ndarray]:
    return [np.concatenate([y.numpy() for _, y in loaded.train]) for _ in range(count)]


@pytest.mark.parametrize("where", ["memory", "disk", "none"])
def test_the_input_cache_keeps_the_batches_and_the_seeded_order(tmp_path, tfds_dir, where):
    args = ["dataset=shapes", "dataset.train_split='train[:64]'", "image_size=32",
            "batch_size=16", "seed=3"]  # fmt: skip
    cache_dir = tmp_path / "input"
    loaded = data.load(
        make_spec(*args, f"input_cache={where}", tfds_dir=tfds_dir), cache_dir=cache_dir
    )
    assert loaded.input_cache == where
    reference = data.load(make_spec(*args, "input_cache=none", tfds_dir=tfds_dir))
    orders, expected = _epochs(loaded, 3), _epochs(reference, 3)
    # Each epoch reshuffles; the same seed gives the same orders with any cache.
    assert all(np.array_equal(a, b) for a, b in zip(orders, expected, strict=True))
    assert not np.array_equal(orders[0], orders[1]) and sorted(orders[0]) == sorted(orders[1])
    assert (where == "disk") == any(cache_dir.glob("train*"))  # written in the first epoch
    images = [
        np.concatenate([x.numpy() for x, _ in ld.plain["train"]]) for ld in (loaded, reference)
    ]
    assert np.allclose(*images)
