"""The seed recipes' building blocks: hub backbones, input ranges, staged unfreezing,
weights files, presets and the published reference numbers."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from PIL import Image

from bench.core import backbones
from bench.core.errors import ConfigError
from bench.core.schema import Policy
from bench.pipeline import data, freeze, model, train
from tests.helpers import ROOT, make_spec, options
from tests.hub_fixture import write_tf1_module

SMALL = ["dataset=shapes", "image_size=32", "batch_size=32", "dataset.train_split='train[:128]'"]
SMALL += ["dataset.val_split='validation[:64]'", "dataset.test_split=null"]


def _variables(layer) -> list[np.ndarray]:
    return [v.numpy().copy() for v in layer.variables]


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["frozen", "unfrozen"])
def test_hub_backbone_from_a_local_saved_model_trains(hub_dir, tfds_dir, policy):
    spec = make_spec(
        *SMALL, "backbone.source=hub", f"backbone.hub_handle={hub_dir}", f"freeze={policy}",
        "head=linear", "epochs=1", tfds_dir=tfds_dir,
    )  # fmt: skip
    loaded = data.load(spec)
    built = model.build(spec, loaded.num_classes)
    before = _variables(built.backbone)
    strategy = tf.distribute.get_strategy()
    result = train.run(train.Training(built, loaded, spec, strategy, spec.plan.phases))
    assert [row.phase for row in result.history] == ["train"]
    after = _variables(built.backbone)
    changed = [not np.array_equal(a, b) for a, b in zip(before, after, strict=True)]
    assert any(changed) == (policy == "unfrozen")
    assert bool(built.backbone.trainable_variables) == (policy == "unfrozen")
    # Counted by hand from tests/hub_fixture.py (16 features) and head=linear on 4 classes:
    # head 16*4+4 = 68; the hub model's conv 3*3*3*8+8 = 224, BatchNorm gamma and beta 16,
    # conv2 3*3*8*16+16 = 1168.
    assert result.params_trainable == (68 if policy == "frozen" else 68 + 224 + 16 + 1168)


def test_hub_handle_marked_not_fine_tunable_is_refused_before_training():
    with pytest.raises(ConfigError, match="TF1 hub.Module cannot be fine-tuned") as info:
        make_spec("experiment=wandb_report", "freeze=unfrozen")
    assert backbones.get("b0").hub_handle_tf2 in str(info.value)


def test_local_tf1_module_is_refused_too(tmp_path):
    module = write_tf1_module(tmp_path / "tf1")
    with pytest.raises(ConfigError, match="cannot be fine-tuned"):
        make_spec("backbone.source=hub", f"backbone.hub_handle={module}", "freeze=unfrozen")
    assert make_spec("backbone.source=hub", f"backbone.hub_handle={module}", "freeze=frozen")


def test_hub_cannot_keep_batchnorm_frozen(hub_dir):
    with pytest.raises(ConfigError, match="trains as a whole"):
        make_spec("backbone.source=hub", f"backbone.hub_handle={hub_dir}", "freeze=finetune")


def test_hub_handle_offline_says_how_to_get_it():
    spec = make_spec("experiment=wandb_report", "image_size=32")
    with pytest.raises(model.WeightsUnavailable, match="TFHUB_CACHE_DIR"):
        model.build(spec, num_classes=2)


@pytest.mark.parametrize(
    ("backbone", "source", "expected"),
    [("b0", "keras", (0.0, 255.0)), ("mobilenet_v2", "keras", (-1.0, 1.0)),
     ("b0", "hub", (0.0, 1.0)), ("mobilenet_v2", "hub", (0.0, 1.0))],
)  # fmt: skip
def test_the_same_image_reaches_each_backbone_in_its_range(
    tmp_path, hub_dir, backbone, source, expected
):
    for label, value in (("black", 0), ("white", 255)):
        (tmp_path / "img" / label).mkdir(parents=True)
        for index in range(5):
            pixels = np.full((32, 32, 3), value, np.uint8)
            pixels[0, 0] = 255 - value  # one odd pixel keeps both ends in every image
            Image.fromarray(pixels).save(tmp_path / "img" / label / f"{index}.png")
    overrides = [f"backbone={backbone}", f"backbone.source={source}", "dataset=folder"]
    overrides += [f"dataset.path={tmp_path / 'img'}", "image_size=32", "augment=none"]
    if source == "hub":
        overrides.append(f"backbone.hub_handle={hub_dir}")
    train = data.load(make_spec(*overrides)).train
    images = np.concatenate([x.numpy() for x, _ in train])
    assert (images.min(), images.max()) == pytest.approx(expected)
    if (backbone, source) == ("mobilenet_v2", "keras"):  # exactly Keras' own preprocessing
        for image, label in train.unbatch().as_numpy_iterator():
            value = (0, 255)[int(label)]  # classes sort as black, white
            raw = np.full((32, 32, 3), value, np.float32)
            raw[0, 0] = 255 - value  # the file on disk, as written above
            wanted = keras.applications.mobilenet_v2.preprocess_input(raw)
            np.testing.assert_allclose(image, wanted, atol=1e-5)


def _b0():
    spec = make_spec("backbone=b0", "backbone.weights=none", "image_size=32")
    return model.keras_backbone(spec, (32, 32, 3))


@pytest.mark.parametrize(
    ("blocks", "unfrozen_blocks"), [(1, ["block7a"]), (2, ["block6d", "block7a"])]
)
def test_top_blocks_unfreezes_whole_blocks_without_batchnorm(blocks, unfrozen_blocks):
    backbone = _b0()
    freeze.apply(backbone, Policy.top_blocks, blocks, backbones.get("b0").block_of)
    trainable = {v.name for v in backbone.trainable_variables}
    expected = {"top_conv/kernel:0"}
    for block in unfrozen_blocks:
        expected |= {
            f"{block}_expand_conv/kernel:0", f"{block}_dwconv/depthwise_kernel:0",
            f"{block}_se_reduce/kernel:0", f"{block}_se_reduce/bias:0",
            f"{block}_se_expand/kernel:0", f"{block}_se_expand/bias:0",
            f"{block}_project_conv/kernel:0",
        }  # fmt: skip
    assert trainable == expected


def test_top_blocks_beyond_the_backbone_is_a_config_error():
    with pytest.raises(ConfigError, match="has 16 blocks"):
        freeze.apply(_b0(), Policy.top_blocks, 17, backbones.get("b0").block_of)


def test_two_phase_without_an_unfreezing_policy_is_a_config_error():
    with pytest.raises(ConfigError, match="unfreezes nothing"):
        make_spec("freeze=two_phase", "freeze.policy=frozen")


def test_weights_file_reproduces_the_backbone(tmp_path):
    original = _b0()
    rng = np.random.default_rng(0)
    # Positive values keep BatchNorm variances valid; any change from the init will do.
    dtypes = [w.dtype.as_numpy_dtype for w in original.weights]
    original.set_weights(
        [
            rng.uniform(0.5, 1.0, w.shape).astype(d)
            for w, d in zip(original.weights, dtypes, strict=True)
        ]
    )
    path = tmp_path / "b0_notop.h5"
    original.save_weights(str(path))
    spec = make_spec("backbone=b0", f"backbone.weights={path}", "image_size=32")
    reloaded = model.keras_backbone(spec, (32, 32, 3))
    images = rng.uniform(0, 255, size=(2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(original(images), reloaded(images), rtol=1e-5, atol=1e-5)


def test_weights_file_of_another_backbone_is_a_clear_error(tmp_path):
    path = tmp_path / "b0_notop.h5"
    _b0().save_weights(str(path))
    spec = make_spec("backbone=mobilenet_v2", f"backbone.weights={path}", "image_size=32")
    with pytest.raises(ConfigError, match="does not fit MobileNetV2"):
        model.keras_backbone(spec, (32, 32, 3))


def test_reference_csv_is_keyed_like_records():
    rows = list(csv.DictReader(open(ROOT / "results" / "reference" / "published.csv")))
    assert rows and all(row["source"] and row["url"] for row in rows)
    for row in rows:
        assert row["backbone"] in backbones.REGISTRY
        assert row["dataset"] in options("dataset")
        assert row["freeze"] in options("freeze")
        # Never a maximum over epochs: it was chosen on the data it reports.
        assert row["metric"] in ("final_val_accuracy", "test_accuracy")
        assert 0 < float(row["value"]) <= 1
        assert not row["preset"] or row["preset"] in options("experiment")
    presets = {row["preset"] for row in rows}
    assert {"keras_io_cifar100", "guide_cifar10"} <= presets
