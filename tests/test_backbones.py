"""The registry's lookups, and the traps of the stack (every backbone's build, size, blocks
and input range: test_contract.py)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.core import backbones
from bench.core.schema import Policy
from bench.pipeline import freeze, model
from tests.helpers import make_spec


def test_unknown_backbone_lists_the_allowed_names():
    with pytest.raises(KeyError, match="allowed: b0, b1"):
        backbones.get("b9")


def test_blocks_follow_keras_layer_names():
    b0, mnv2 = backbones.get("b0"), backbones.get("mobilenet_v2")
    assert b0.block_of("block6d_expand_conv") == "block6d"
    assert b0.block_of("top_conv") is None
    assert mnv2.block_of("block_16_project_BN") == "block_16"
    assert mnv2.block_of("expanded_conv_project") == "expanded_conv"


def test_unfrozen_backbone_really_trains():
    """The Keras-3-vs-tf_keras trap leaves backbone weights untracked (tensorflow/hub#903)."""
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
