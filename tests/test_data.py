"""Data: shapes for real, folders, the input cache, sharding (every dataset option through its
loader: test_contract.py)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
import tf_keras as keras

from bench.core import plan as run_plan
from bench.core.errors import ConfigError, DataUnavailable
from bench.pipeline import augment, data, sources
from tests.helpers import make_spec, write_folder


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


def _accuracy_of_a_small_cnn(loaded: data.Data) -> float:
    keras.utils.set_random_seed(0)
    net = _small_cnn(loaded.num_classes)
    net.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    steps = -(-loaded.train_examples // 32)
    net.fit(loaded.epochs(0, 8), steps_per_epoch=steps, epochs=8, verbose=0)
    return net.evaluate(loaded.val, verbose=0, return_dict=True)["accuracy"]


@pytest.mark.slow
def test_shapes_is_learnable_through_the_pipeline(tfds_dir):
    spec = make_spec("dataset=shapes", "image_size=32", "batch_size=32", tfds_dir=tfds_dir)
    assert _accuracy_of_a_small_cnn(data.load(spec)) > 0.8


@pytest.mark.slow
def test_shapes_whose_labels_do_not_follow_their_shapes_is_not(tmp_path, monkeypatch):
    """The control: the same generator, broken so that each image's shape is drawn apart
    from its label, goes through TFDS and the pipeline as before, and the same network stays
    near chance (0.25): the threshold above tells a dataset that teaches from one that
    cannot."""
    from bench.pipeline.datasets.shapes import shapes_dataset_builder as shapes

    real = shapes.render
    monkeypatch.setattr(shapes, "render", lambda label, rng: real(int(rng.integers(4)), rng))
    broken = tmp_path / "tfds"
    tfds.builder("shapes", data_dir=str(broken)).download_and_prepare()
    spec = make_spec("dataset=shapes", "image_size=32", "batch_size=32", tfds_dir=broken)
    assert _accuracy_of_a_small_cnn(data.load(spec)) < 0.4


def test_folder_loads_with_carved_validation_and_test_splits(tmp_path):
    root = write_folder(tmp_path / "images")
    spec = make_spec("dataset=folder", f"dataset.path={root}", "image_size=40", "batch_size=8")
    loaded = data.load(spec)
    assert loaded.class_names == ["ants", "bees", "wasps"] and loaded.num_classes == 3
    assert loaded.train_examples == 20
    assert sum(int(y.shape[0]) for _, y in loaded.val) == 5
    assert sum(int(y.shape[0]) for _, y in loaded.test) == 5
    images, _ = next(iter(loaded.train))
    assert images.shape[1:] == (40, 40, 3)


def test_folder_without_class_subfolders_is_a_config_error(tmp_path):
    (tmp_path / "flat").mkdir()
    with pytest.raises(ConfigError, match="one subfolder per class"):
        make_spec("dataset=folder", f"dataset.path={tmp_path / 'flat'}")


def test_missing_tfds_data_offline_says_how_to_prepare_it(tmp_path):
    spec = make_spec("dataset=cifar10", "dataset.download=false", f"data_dir={tmp_path}")
    with pytest.raises(DataUnavailable, match=r"tfds build cifar10 --data_dir DIR"):
        data.load(spec)


def test_unknown_tfds_name_is_a_config_error():
    spec = make_spec("dataset=cifar10", "dataset.name=not_a_dataset")
    with pytest.raises(ConfigError, match="not a TFDS dataset"):
        data.load(spec)


def _augmented(aug, seed: tuple[int, int], images: np.ndarray) -> np.ndarray:
    return augment.apply(tf.constant(images), aug, tf.constant(seed, tf.int64)).numpy()


def _images(count: int = 8) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (count, 16, 16, 3)).astype("float32")


def test_augmentation_is_a_function_of_its_seed_alone():
    """The draws of a batch come from its seed, not from how many batches came before."""
    aug, images = make_spec("augment=keras_io").cfg.augment, _images()
    first = _augmented(aug, (7, 0), images)
    for _ in range(3):  # other batches drawn in between change nothing
        _augmented(aug, (7, 5), images)
    np.testing.assert_array_equal(_augmented(aug, (7, 0), images), first)
    assert not np.allclose(_augmented(aug, (7, 1), images), first)  # another batch, other draws
    assert not np.allclose(first, images) and first.min() >= 0 and first.max() <= 255
    assert run_plan.augments(make_spec("augment=keras_io").cfg)
    assert not run_plan.augments(make_spec("augment=none").cfg)


def test_a_flip_mirrors_some_images_of_a_batch_and_leaves_the_others():
    aug, images = make_spec("augment=flip").cfg.augment, _images(32)
    out = _augmented(aug, (1, 2), images)
    mirrored = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images, strict=True)]
    kept = [np.array_equal(o, i) for o, i in zip(out, images, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert 0 < sum(mirrored) < 32  # drawn per image


def test_each_augmentation_draws_its_own_random_numbers():
    """Two flips seeded alike would always fire together (only "neither" and "both"); each
    op takes its own stream of the batch's seed, so all four outcomes occur."""
    aug = make_spec("augment=flip", "augment.flip=horizontal_and_vertical").cfg.augment
    images = _images(64)
    outcomes = set()
    for out, image in zip(_augmented(aug, (3, 0), images), images, strict=True):
        for name, seen in {"neither": image, "left-right": image[:, ::-1],
                           "up-down": image[::-1], "both": image[::-1, ::-1]}.items():  # fmt: skip
            if np.array_equal(out, seen):
                outcomes.add(name)
    assert outcomes == {"neither", "left-right", "up-down", "both"}


def _shard(ds: tf.data.Dataset, index: int) -> tf.data.Dataset:
    # The rewrite tf.distribute applies to each worker's copy of a dataset.
    from tensorflow.python.data.experimental.ops.distribute import _AutoShardDataset

    return _AutoShardDataset(ds, num_workers=2, index=index, num_replicas=2)


def _labels(ds: tf.data.Dataset) -> list[int]:
    return sorted(int(y) for _, batch in ds for y in batch.numpy())


@pytest.mark.parametrize("source", ["shapes (one TFDS file)", "folder"])
def test_two_workers_each_read_half_of_every_split(tmp_path, tfds_dir, source):
    if source == "folder":
        root = write_folder(tmp_path / "images")
        overrides = ["dataset=folder", f"dataset.path={root}", "dataset.val_fraction=0.4"]
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


def _epochs(ds: tf.data.Dataset, steps: int, count: int) -> list[np.ndarray]:
    batches = [y.numpy() for _, y in ds.take(steps * count)]
    return [np.concatenate(batches[e * steps : (e + 1) * steps]) for e in range(count)]


@pytest.mark.parametrize("where", ["memory", "disk", "none"])
def test_the_input_cache_keeps_the_images_and_the_seeded_order(tmp_path, tfds_dir, where):
    """The documented pipeline, rebuilt here from TFDS and tf.data alone: the split read with
    the run's seed (its files' order fixed), images resized to image_size, then epoch e
    shuffled with the seed seed * 1,000,003 + e (dataset.shuffle_buffer) and batched. Every
    input cache gives exactly that, and the input started at epoch 1 (a resumed run) is
    the uncut input from its epoch 1 on."""

    args = ["dataset=shapes", "dataset.train_split='train[:64]'", "image_size=32",
            "batch_size=16", "seed=3", f"input_cache={where}"]  # fmt: skip
    cache_dir = tmp_path / "input"
    loaded = data.load(make_spec(*args, tfds_dir=tfds_dir), cache_dir=cache_dir)
    assert loaded.input_cache == where
    fixed = tfds.ReadConfig(shuffle_seed=3, shuffle_reshuffle_each_iteration=False)
    raw = tfds.load("shapes", split="train[:64]", data_dir=str(tfds_dir), shuffle_files=True,
                    read_config=fixed)  # fmt: skip
    labels = raw.map(lambda ex: ex["label"])
    expected = [
        np.concatenate(list(labels.shuffle(2048, seed=3 * 1_000_003 + e,
                                           reshuffle_each_iteration=False).batch(16)
                            .as_numpy_iterator()))
        for e in range(3)
    ]  # fmt: skip
    orders = _epochs(loaded.epochs(0, 3), 4, 3)
    assert all(np.array_equal(a, b) for a, b in zip(orders, expected, strict=True))
    # Each epoch its own order of the same images; epoch 0 alone is loaded.train.
    assert not np.array_equal(orders[0], orders[1]) and sorted(orders[0]) == sorted(orders[1])
    assert np.array_equal(_epochs(loaded.train, 4, 1)[0], orders[0])
    resumed = _epochs(loaded.epochs(1, 3), 4, 2)
    assert all(np.array_equal(a, b) for a, b in zip(resumed, orders[1:], strict=True))
    assert (where == "disk") == any(cache_dir.glob("train*"))  # written in the first epoch
    resized = np.stack([tf.image.resize(tf.cast(ex["image"], tf.float32), (32, 32)).numpy()
                        for ex in raw.as_numpy_iterator()])  # fmt: skip
    plain = np.concatenate([x.numpy() for x, _ in loaded.plain["train"]])
    np.testing.assert_allclose(plain, resized, atol=1e-3)  # b0 takes 0..255 as they are


# (free memory in bytes, split sizes, a folder for the disk cache?) -> where auto keeps images
AUTO = {
    "fits in a quarter of free memory": (4 * 64 * 32 * 32 * 3 * 4, [64], True, "memory"),
    "more than a quarter": (4 * 64 * 32 * 32 * 3 * 4 - 4, [64], True, "disk"),
    "more, and no folder for a disk cache": (100, [64], False, "none"),
    "a split of unknown size": (2**40, [-2], True, "disk"),
}


@pytest.mark.parametrize("case", list(AUTO))
def test_input_cache_auto_keeps_images_in_memory_when_they_fit_else_on_disk(
    tmp_path, monkeypatch, case
):
    """README: in memory when every split's float32 images fit in a quarter of the free
    memory, else on disk in the run's checkpoint folder (32 px: 64 images of 32x32x3x4 B)."""
    free, counts, folder, expected = AUTO[case]
    page = 4096
    pages = {"SC_AVPHYS_PAGES": free / page, "SC_PAGE_SIZE": page}
    monkeypatch.setattr(data.os, "sysconf", lambda name: pages[name])
    cfg = make_spec("dataset=shapes", "image_size=32", "input_cache=auto").cfg
    assert data.input_cache(cfg, counts, tmp_path if folder else None) == expected


def test_the_epoch_order_is_a_function_of_seed_and_epoch_on_each_of_two_shards(tfds_dir):
    """Each worker of a two-worker run, resumed at epoch 2, reads what it read at epoch 2
    of the uncut run; a second load of the same point (another process) reads the same."""
    args = ["dataset=shapes", "dataset.train_split='train[:64]'", "image_size=32",
            "batch_size=8", "seed=5", "augment=keras_io"]  # fmt: skip
    loaded, again = (data.load(make_spec(*args, tfds_dir=tfds_dir)) for _ in range(2))
    for index in (0, 1):  # 8 batches an epoch, 4 for each worker
        uncut = _epochs(_shard(loaded.epochs(0, 3), index), 4, 3)
        resumed = _epochs(_shard(again.epochs(2, 3), index), 4, 1)
        assert np.array_equal(resumed[0], uncut[2]), index
        images = [x.numpy() for x, _ in _shard(loaded.epochs(2, 3), index).take(4)]
        images_again = [x.numpy() for x, _ in _shard(again.epochs(2, 3), index).take(4)]
        np.testing.assert_array_equal(np.concatenate(images), np.concatenate(images_again))


def test_a_dataset_another_job_finished_preparing_meanwhile_is_loaded_again(monkeypatch):
    """Two jobs of a parallel multirun prepare shapes at once on a fresh machine: TFDS's
    rename of its incomplete folder fails for the second, which then finds the data."""
    monkeypatch.setattr(sources.time, "sleep", lambda seconds: None)
    calls = []

    def load():
        calls.append(1)
        if len(calls) == 1:
            raise FileExistsError("Cannot rename incomplete.X: 1.0.0 already exists")
        return "loaded"

    assert sources._prepared(load) == "loaded" and len(calls) == 2

    def always():
        raise FileExistsError("still there")

    with pytest.raises(FileExistsError):
        sources._prepared(always)


def test_the_training_input_runs_without_tfdatas_autotuning_thread():
    """Its thread missed the iterator's cancellation at the end of ``fit`` in about one run
    in four and the destructor waited out its period (17 to 35 s, docs/performance.md);
    the epochs still come in order, each once."""
    epochs = data.from_epoch(lambda epoch: tf.data.Dataset.range(3).map(lambda i: i + 10 * epoch),
                             1, 3)  # fmt: skip
    assert epochs.options().autotune.enabled is False
    assert [int(i) for i in epochs] == [10, 11, 12, 20, 21, 22]
