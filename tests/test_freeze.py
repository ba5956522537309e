"""Freeze policies: the exact set of trainable variables for each policy."""

from __future__ import annotations

import pytest
import tf_keras as keras

from bench.core.schema import Policy
from bench.pipeline import freeze, model
from tests.helpers import make_spec


@pytest.fixture(scope="module")
def built():
    spec = make_spec("backbone=b0", "backbone.weights=none", "image_size=32", "head=keras_io")
    return model.build(spec, num_classes=5)


def _names(variables) -> set[str]:
    return {v.name for v in variables}


def _head_variables(built) -> set[str]:
    backbone = _names(built.backbone.weights)
    return {v.name for v in built.model.trainable_variables if v.name not in backbone} | {
        v.name for v in built.model.weights if v.name.startswith(("head_", "predictions"))
    }


def _layer_variables(backbone, keep) -> set[str]:
    return {
        v.name
        for layer in backbone.layers
        if keep(layer)
        for v in layer.weights
        if not any(stat in v.name for stat in ("moving_mean", "moving_variance"))
        and not layer.name.startswith("normalization")
    }


def _trainable_after(built, policy) -> set[str]:
    freeze.apply(built.backbone, policy)
    return _names(built.model.trainable_variables)


def test_frozen_trains_only_the_head(built):
    head = {n for n in _head_variables(built) if "moving" not in n}
    assert _trainable_after(built, Policy.frozen) == head
    assert head == {
        "head_bn/gamma:0", "head_bn/beta:0", "predictions/kernel:0", "predictions/bias:0",
    }  # fmt: skip


def test_finetune_trains_everything_but_batchnorm(built):
    head = {n for n in _head_variables(built) if "moving" not in n}
    not_bn = _layer_variables(
        built.backbone, lambda layer: not isinstance(layer, keras.layers.BatchNormalization)
    )
    trainable = _trainable_after(built, Policy.finetune)
    assert trainable == not_bn | head
    assert not any(name.startswith(("stem_bn", "top_bn")) for name in trainable)
    assert not any("_bn/" in name for name in trainable - head)


def test_unfrozen_trains_batchnorm_too(built):
    head = {n for n in _head_variables(built) if "moving" not in n}
    everything = _layer_variables(built.backbone, lambda layer: True)
    assert _trainable_after(built, Policy.unfrozen) == everything | head
    assert "stem_bn/gamma:0" in everything


def test_policies_switch_back_and_forth(built):
    first = _trainable_after(built, Policy.finetune)
    _trainable_after(built, Policy.frozen)
    assert _trainable_after(built, Policy.finetune) == first
