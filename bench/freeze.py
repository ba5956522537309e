"""Freeze policies: which backbone weights train, and whether BatchNorm adapts.

In TF2 Keras a BatchNormalization layer with ``trainable = False`` also runs in inference
mode (moving statistics frozen), which is what fine-tuning a pretrained network needs.
"""

from __future__ import annotations

import tf_keras as keras

from bench.config import Policy


def apply(backbone: keras.layers.Layer, policy: Policy) -> None:
    """Sets ``trainable`` on the backbone's layers for ``policy``.

    Args:
        backbone: The backbone model (or hub layer) inside the full model.
        policy: ``frozen``: nothing trains, BatchNorm in inference mode; ``finetune``:
            everything but BatchNorm trains; ``unfrozen``: everything trains.

    Call before ``compile``: Keras reads ``trainable`` when it compiles.
    """
    policy = Policy(policy)
    backbone.trainable = policy != Policy.frozen
    if policy == Policy.finetune:
        for layer in batchnorm_layers(backbone):
            layer.trainable = False


def batchnorm_layers(backbone: keras.layers.Layer) -> list[keras.layers.Layer]:
    """Every BatchNormalization layer inside ``backbone``."""
    modules = (backbone, *backbone.submodules)
    return [m for m in modules if isinstance(m, keras.layers.BatchNormalization)]
