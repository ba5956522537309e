"""One contract per axis that every option of it passes (the VTAB pattern: a shared test class,
parametrized over the option files, so a new option is checked without a new test).

Expected values are the published or documented ones, written here as literals: Keras'
parameter counts, the papers' resolutions, TFDS's class counts, each family's input range.
"""

from __future__ import annotations

import contextlib
import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from bench.core import backbones
from bench.pipeline import data, heads, model
from tests.helpers import CONF, GROUPS, compose, make_spec, options, write_folder


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g in GROUPS for o in options(g)], ids=lambda v: str(v)
)
def test_every_option_composes_and_validates(group, option, tmp_path):
    overrides = [f"{group}={option}"]
    if option == "folder":
        for name in ("a", "b"):
            (tmp_path / "imgs" / name).mkdir(parents=True)
        overrides.append(f"dataset.path={tmp_path / 'imgs'}")
    spec = make_spec(*overrides)
    if group != "experiment":
        assert getattr(spec.cfg, group).name == option
    assert re.fullmatch(r"[0-9a-f]{12}", spec.run_id)


# ---- backbone ---------------------------------------------------------------------------

# Tan & Le 2019 (EfficientNet B0-B7), Sandler et al. 2018 (MobileNetV2).
NATIVE = {"b0": 224, "b1": 240, "b2": 260, "b3": 300, "b4": 380, "b5": 456, "b6": 528,
          "b7": 600, "mobilenet_v2": 224}  # fmt: skip
# Keras' published sizes of each application without its top (include_top=False).
KERAS_NOTOP_PARAMS = {
    "b0": 4_049_571, "b1": 6_575_239, "b2": 7_768_569, "b3": 10_783_535, "b4": 17_673_823,
    "b5": 28_513_527, "b6": 40_960_143, "b7": 64_097_687, "mobilenet_v2": 2_257_984,
}  # fmt: skip
# Blocks as Keras names them: EfficientNet's stages repeat (1, 2, 2, 3, 3, 4, 1) blocks,
# scaled by each variant's depth and rounded up; MobileNetV2 has expanded_conv and
# block_1 .. block_16.
BLOCKS = {"b0": 16, "b1": 23, "b2": 23, "b3": 26, "b4": 32, "b5": 39, "b6": 45, "b7": 55,
          "mobilenet_v2": 17}  # fmt: skip
# What each family's Keras builder expects (its docs): EfficientNet rescales inside the
# model, MobileNetV2 wants preprocess_input's [-1, 1]; TF Hub image models take [0, 1].
KERAS_RANGE = {"efficientnet": (0.0, 255.0), "mobilenet_v2": (-1.0, 1.0)}
# The layer names that open a block, read off the Keras models (not the registry's pattern).
BLOCK_NAME = {"efficientnet": r"^block(\d+[a-z])_", "mobilenet_v2": r"^(expanded_conv|block_\d+)_"}


def test_the_contracts_cover_the_registry():
    assert set(options("backbone")) == set(backbones.REGISTRY) == set(NATIVE)
    assert set(KERAS_NOTOP_PARAMS) == set(BLOCKS) == set(NATIVE)


@pytest.mark.parametrize("name", options("backbone"))
class TestBackbone:
    def test_image_size_defaults_to_its_native_resolution(self, name):
        assert make_spec(f"backbone={name}").cfg.image_size == NATIVE[name]
        assert make_spec(f"backbone={name}", "image_size=96").cfg.image_size == 96

    def test_builds_with_keras_parameter_count_and_block_names(self, name):
        spec = make_spec(f"backbone={name}", "backbone.weights=none", "image_size=64")
        backbone = model.keras_backbone(spec, (64, 64, 3))
        assert backbone.count_params() == KERAS_NOTOP_PARAMS[name]
        family = spec.backbone.family
        names = {m.group(1) for layer in backbone.layers
                 if (m := re.match(BLOCK_NAME[family], layer.name))}  # fmt: skip
        assert len(names) == BLOCKS[name] == spec.backbone.blocks
        # The registry's pattern finds those blocks and no others.
        found = {spec.backbone.block_of(layer.name) for layer in backbone.layers} - {None}
        assert len(found) == BLOCKS[name]

    def test_input_range_per_source(self, name):
        entry = backbones.get(name)
        assert entry.input_range("keras") == KERAS_RANGE[entry.family]
        assert entry.input_range("hub") == (0.0, 1.0)

    def test_hub_handles_say_whether_they_can_be_fine_tuned(self, name):
        entry = backbones.get(name)
        if entry.family == "efficientnet":  # the W&B report's TF1 hub.Modules
            assert "google/efficientnet" in entry.hub_handle and not entry.hub_fine_tunable
            assert "tensorflow/efficientnet" in entry.hub_handle_tf2
        else:
            assert entry.hub_fine_tunable and entry.hub_handle == entry.hub_handle_tf2


# ---- dataset ----------------------------------------------------------------------------

# Class counts from each dataset's TFDS metadata (its ClassLabel feature); shapes has four,
# the folder test set three.
NUM_CLASSES = {
    "cats_vs_dogs": 2, "cifar10": 10, "cifar100": 100, "food101": 101, "folder": 3,
    "oxford_flowers102": 102, "shapes": 4, "stanford_dogs": 120, "tf_flowers": 5,
}  # fmt: skip


def test_the_dataset_contract_covers_every_option():
    assert set(options("dataset")) == set(NUM_CLASSES)


def _loaded(name: str, backbone: str, tmp_path, tfds_dir) -> tuple[data.Data, dict]:
    """The dataset's pipelines and every batch of each split, read through its loader."""
    overrides = [f"dataset={name}", f"backbone={backbone}", "image_size=48", "batch_size=4"]
    if name == "folder":
        overrides.append(f"dataset.path={write_folder(tmp_path / 'images')}")
    mocked = name not in ("folder", "shapes")
    with tfds.testing.mock_data(num_examples=6) if mocked else contextlib.nullcontext():
        loaded = data.load(make_spec(*overrides, tfds_dir=tfds_dir))
        batches = {s: list(getattr(loaded, s) or []) for s in ("train", "val", "test")}
    return loaded, batches


@pytest.mark.parametrize("backbone", ["b0", "mobilenet_v2"])
@pytest.mark.parametrize("name", options("dataset"))
class TestDataset:
    def test_loads_through_its_loader_in_the_backbones_range(
        self, name, backbone, tmp_path, tfds_dir
    ):
        loaded, batches = _loaded(name, backbone, tmp_path, tfds_dir)
        assert loaded.num_classes == NUM_CLASSES[name] == len(loaded.class_names)
        images, labels = batches["train"][0]
        assert images.shape == (4, 48, 48, 3) and images.dtype == tf.float32
        assert batches["val"][0][0].shape[1:] == (48, 48, 3)
        assert labels.dtype.is_integer
        every = np.concatenate([y.numpy() for _, y in batches["train"]])
        assert every.min() >= 0 and every.max() < loaded.num_classes
        # Random and generated pixels span 0..255, so both ends of the range are reached.
        pixels = np.concatenate([x.numpy().ravel() for x, _ in batches["val"]])
        low, high = KERAS_RANGE["efficientnet" if backbone == "b0" else "mobilenet_v2"]
        assert pixels.min() == pytest.approx(low, abs=0.05 * (high - low))
        assert pixels.max() == pytest.approx(high, abs=0.05 * (high - low))
        # Every dataset has all three roles: a missing one is carved out of train.
        assert batches["test"] and set(loaded.splits) == {"train", "val", "test"}


# ---- head -------------------------------------------------------------------------------

# Each head's layers after the features, as its config file describes it.
HEAD_LAYERS = {
    "guide_conv": ["Conv2D", "BatchNormalization", "GlobalAveragePooling2D", "Dropout", "Dense",
                   "Dense"],
    "keras_io": ["GlobalAveragePooling2D", "BatchNormalization", "Dropout", "Dense"],
    "linear": ["GlobalAveragePooling2D", "Dropout", "Dense"],
    "mlp": ["GlobalAveragePooling2D", "Dense", "Dense"],
}  # fmt: skip


def test_the_head_contract_covers_every_option():
    assert set(options("head")) == set(HEAD_LAYERS)


@pytest.mark.parametrize("name", options("head"))
class TestHead:
    def test_maps_a_feature_map_to_class_probabilities(self, name):
        head = heads.build((7, 7, 16), compose(f"head={name}").head, num_classes=5)
        kinds = [type(layer).__name__ for layer in head.layers[1:]]
        assert kinds == HEAD_LAYERS[name]
        out = head(tf.random.stateless_uniform((3, 7, 7, 16), seed=(1, 2)), training=False)
        assert out.shape == (3, 5) and out.dtype == tf.float32
        np.testing.assert_allclose(out.numpy().sum(axis=1), 1.0, rtol=1e-5)


# ---- augment ----------------------------------------------------------------------------


def _augmented(name: str, tfds_dir) -> dict[str, np.ndarray]:
    """Training and validation images and labels (no shuffling: buffer 1) next to the same
    splits unaugmented."""
    spec = make_spec("dataset=shapes", "backbone=b0", f"augment={name}", "image_size=32",
                     "batch_size=16", "dataset.shuffle_buffer=1", "seed=5",
                     "dataset.train_split='train[:64]'", "dataset.val_split='validation[:32]'",
                     tfds_dir=tfds_dir)  # fmt: skip
    loaded = data.load(spec)
    pipelines = {"train": loaded.train, "plain": loaded.plain["train"], "val": loaded.val,
                 "val_plain": loaded.plain["val"]}  # fmt: skip
    found = {}
    for key, ds in pipelines.items():
        found[key] = np.concatenate([x.numpy() for x, _ in ds])
        found[f"{key}_labels"] = np.concatenate([y.numpy() for _, y in ds])
    return found


# What each option may do to a training image: the transforms that leave it as it was or
# mirror it, for the options made of flips only; None where rotation, translation and
# contrast change it beyond that.
MAY = {
    "none": [lambda x: x],
    "flip": [lambda x: x, lambda x: x[:, ::-1]],
    "keras_io": None,
}


def test_the_augment_contract_covers_every_option():
    assert set(options("augment")) == set(MAY)


@pytest.mark.parametrize("name", options("augment"))
class TestAugment:
    def test_changes_the_training_images_it_should_and_only_those(self, name, tfds_dir):
        found = _augmented(name, tfds_dir)
        train, plain = found["train"], found["plain"]
        changed = [not np.allclose(a, b, atol=1e-3) for a, b in zip(train, plain, strict=True)]
        assert any(changed) == (name != "none")
        if MAY[name] is not None:  # flips only: each image as it was, or its mirror
            for a, b in zip(train, plain, strict=True):
                assert any(np.allclose(a, t(b), atol=1e-3) for t in MAY[name])
        if name == "flip":  # a seeded coin per image, not all alike
            assert not all(changed)
        # Labels stay with their images, and validation is never augmented.
        np.testing.assert_array_equal(found["train_labels"], found["plain_labels"])
        np.testing.assert_array_equal(found["val"], found["val_plain"])


# ---- preset -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", options("experiment"))
class TestPreset:
    def test_is_a_global_bundle_that_names_its_source(self, name):
        text = (CONF / "experiment" / f"{name}.yaml").read_text()
        assert text.startswith("# @package _global_\n")
        if name not in ("demo", "smoke"):  # the recipes cite their sources by public URL
            assert "# Source:" in text and "(https://" in text
