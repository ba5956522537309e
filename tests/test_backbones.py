"""The registry: every backbone builds, with Keras' own parameter counts and input ranges."""

from __future__ import annotations

import numpy as np
import pytest

from bench.core import backbones
from bench.core.schema import Policy
from bench.pipeline import freeze, model
from tests.conftest import make_spec

# Keras' published sizes of each application without its top (include_top=False).
KERAS_NOTOP_PARAMS = {
    "b0": 4_049_571,
    "b1": 6_575_239,
    "b2": 7_768_569,
    "b3": 10_783_535,
    "b4": 17_673_823,
    "b5": 28_513_527,
    "b6": 40_960_143,
    "b7": 64_097_687,
    "mobilenet_v2": 2_257_984,
}


@pytest.mark.parametrize("name", sorted(backbones.REGISTRY))
def test_backbone_builds_with_keras_parameter_count(name):
    spec = make_spec(f"backbone={name}", "backbone.weights=none", "image_size=64")
    backbone = model.keras_backbone(spec, (64, 64, 3))
    assert backbone.count_params() == KERAS_NOTOP_PARAMS[name]
    # The registry's block count (used to validate freeze.blocks before training) is the
    # number of blocks its pattern finds in the model Keras builds.
    found = {spec.backbone.block_of(layer.name) for layer in backbone.layers} - {None}
    assert len(found) == backbones.get(name).blocks


def test_registry_covers_the_counts():
    assert set(KERAS_NOTOP_PARAMS) == set(backbones.REGISTRY)


@pytest.mark.parametrize(
    ("name", "source", "expected"),
    [
        ("b0", "keras", (0.0, 255.0)),
        ("b7", "keras", (0.0, 255.0)),
        ("mobilenet_v2", "keras", (-1.0, 1.0)),
        ("b0", "hub", (0.0, 1.0)),
        ("mobilenet_v2", "hub", (0.0, 1.0)),
    ],
)
def test_input_range_per_source_and_family(name, source, expected):
    assert backbones.get(name).input_range(source) == expected


def test_unknown_backbone_lists_the_allowed_names():
    with pytest.raises(KeyError, match="allowed: b0, b1"):
        backbones.get("b9")


def test_tf1_hub_handles_are_marked_not_fine_tunable():
    for name in [f"b{i}" for i in range(8)]:
        entry = backbones.get(name)
        assert "google/efficientnet" in entry.hub_handle and not entry.hub_fine_tunable
        assert "tensorflow/efficientnet" in entry.hub_handle_tf2
    assert backbones.get("mobilenet_v2").hub_fine_tunable


def test_blocks_follow_keras_layer_names():
    b0, mnv2 = backbones.get("b0"), backbones.get("mobilenet_v2")
    assert b0.block_of("block6d_expand_conv") == "block6d"
    assert b0.block_of("top_conv") is None
    assert mnv2.block_of("block_16_project_BN") == "block_16"
    assert mnv2.block_of("expanded_conv_project") == "expanded_conv"


def test_unfrozen_backbone_really_trains():
    """The Keras-3-vs-tf_keras trap leaves backbone weights untracked (PITFALLS.md)."""
    spec = make_spec("backbone=b0", "backbone.weights=none", "image_size=32")
    built = model.build(spec, num_classes=3)
    freeze.apply(built.backbone, Policy.unfrozen)
    backbone_ids = {id(v) for v in built.backbone.trainable_variables}
    assert len(backbone_ids) > 200
    assert backbone_ids <= {id(v) for v in built.model.trainable_variables}
    out = built.model(np.zeros((2, 32, 32, 3), np.float32))
    assert out.shape == (2, 3)


def test_imagenet_weights_offline_name_the_keras_cache(tmp_path):
    spec = make_spec("backbone=b0", "backbone.weights=imagenet", "image_size=64")
    with pytest.raises(model.WeightsUnavailable) as info:
        model.keras_backbone(spec, (64, 64, 3))
    message = str(info.value)
    assert "efficientnetb0_notop.h5" in message
    assert str(tmp_path / "keras_home" / "models") in message
    assert "backbone.weights=none" in message


@pytest.mark.parametrize(("override", "expected"), [(None, 0.99), ("0.9", 0.9)])
def test_bn_momentum_override(override, expected):
    extra = [f"backbone.bn_momentum={override}"] if override else []
    spec = make_spec("backbone=b0", "backbone.weights=none", "image_size=32", *extra)
    built = model.build(spec, num_classes=2)
    momenta = {layer.momentum for layer in freeze.batchnorm_layers(built.backbone)}
    assert momenta == {expected}
