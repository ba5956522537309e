"""Freeze policies: which backbone weights train, and whether BatchNorm adapts.

In TF2 Keras a BatchNormalization layer with ``trainable = False`` also runs in inference
mode (moving statistics frozen), which is what fine-tuning a pretrained network needs.
A TF Hub backbone is one layer: it can only be frozen or trained as a whole.
"""

from __future__ import annotations

from collections.abc import Callable

import tf_keras as keras

from bench.core.errors import ConfigError
from bench.core.schema import Policy


def apply(
    backbone: keras.layers.Layer,
    policy: Policy,
    blocks: int = 0,
    block_of: Callable[[str], str | None] | None = None,
) -> None:
    """Sets ``trainable`` on the backbone's layers for ``policy``.

    Args:
        backbone: The backbone model (or hub layer) inside the full model.
        policy: ``frozen``: nothing trains, BatchNorm in inference mode; ``finetune``:
            everything but BatchNorm trains; ``unfrozen``: everything trains;
            ``top_blocks``: the last ``blocks`` blocks, each whole, and the layers after
            them train, BatchNorm excepted (the keras-io advice for EfficientNet).
        blocks: For ``top_blocks``, how many blocks to unfreeze.
        block_of: For ``top_blocks``, maps a layer name to its block (the registry's).

    Call before ``compile``: Keras reads ``trainable`` when it compiles.
    """
    policy = Policy(policy)
    backbone.trainable = policy != Policy.frozen
    if policy == Policy.top_blocks:
        start = first_layer_of_top_blocks(backbone, blocks, block_of)
        for index, layer in enumerate(backbone.layers):
            layer.trainable = index >= start
    if policy in (Policy.finetune, Policy.top_blocks):
        for layer in batchnorm_layers(backbone):
            layer.trainable = False


def first_layer_of_top_blocks(
    backbone: keras.Model, blocks: int, block_of: Callable[[str], str | None] | None
) -> int:
    """Index in ``backbone.layers`` where the last ``blocks`` blocks begin."""
    if block_of is None or not hasattr(backbone, "layers"):
        raise ConfigError(
            "freeze.policy", "top_blocks", "frozen, unfrozen with a TF Hub backbone",
            "use backbone.source=keras for top_blocks", why="needs a Keras backbone",
        )  # fmt: skip
    order = []
    for layer in backbone.layers:
        block = block_of(layer.name)
        if block and block not in order:
            order.append(block)
    if not 1 <= blocks <= len(order):
        raise ConfigError(
            "freeze.blocks", blocks, f"1 to {len(order)}",
            f"pass freeze.blocks={len(order)} or fewer",
            why=f"this backbone has {len(order)} blocks",
        )  # fmt: skip
    first = order[-blocks]
    return next(i for i, layer in enumerate(backbone.layers) if block_of(layer.name) == first)


def batchnorm_layers(backbone: keras.layers.Layer) -> list[keras.layers.Layer]:
    """Every BatchNormalization layer inside ``backbone``."""
    modules = (backbone, *backbone.submodules)
    return [m for m in modules if isinstance(m, keras.layers.BatchNormalization)]
