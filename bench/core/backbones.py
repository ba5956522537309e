"""The backbone registry: the single source of truth for every backbone.

Each entry maps a name to its family, native resolution, Keras builder, the input range
that builder expects, its TF Hub feature-vector handle (and whether that handle can be
fine-tuned) and the layer-name pattern that marks its blocks. Nothing else in the code
hard-codes a resolution or an input range: ask the registry.

The module imports no TensorFlow, so configs can be validated before TF is loaded.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

# What each source feeds its backbone (docs/architecture.md): Keras EfficientNet rescales inside the
# model, Keras MobileNetV2 wants preprocess_input's [-1, 1], TF Hub image models take [0, 1].
RANGE_0_255 = (0.0, 255.0)
RANGE_MINUS1_1 = (-1.0, 1.0)
RANGE_0_1 = (0.0, 1.0)
HUB_INPUT_RANGE = RANGE_0_1

_EFFICIENTNET_BLOCKS = r"^(block\d+[a-z])_"
_MOBILENET_V2_BLOCKS = r"^(expanded_conv|block_\d+)_"
# Sizes for which Keras publishes MobileNetV2 (alpha 1.0) ImageNet weights; any other size
# loads the 224 weights (Keras' own rule).
_MOBILENET_V2_WEIGHT_SIZES = (96, 128, 160, 192, 224)


@dataclass(frozen=True)
class BackboneInfo:
    """One registry entry.

    Attributes:
        name: Config name (``backbone=<name>``).
        family: ``efficientnet`` or ``mobilenet_v2``.
        resolution: Native input resolution in pixels.
        keras_builder: Attribute of ``tf_keras.applications`` that builds it.
        keras_input_range: Pixel range the Keras builder expects.
        hub_handle: Default TF Hub feature-vector handle (the W&B report's).
        hub_fine_tunable: Whether ``hub_handle`` can be fine-tuned (TF1 hub.Modules cannot).
        hub_handle_tf2: A fine-tunable TF2 SavedModel handle for the same network.
        block_pattern: Regex whose group 1 names the block a layer belongs to.
        blocks: How many blocks ``block_pattern`` finds in the Keras model.
    """

    name: str
    family: str
    resolution: int
    keras_builder: str
    keras_input_range: tuple[float, float]
    hub_handle: str
    hub_fine_tunable: bool
    hub_handle_tf2: str
    block_pattern: str
    blocks: int

    @property
    def stochastic_depth(self) -> bool:
        """Whether the Keras builder takes ``drop_connect_rate`` (EfficientNet's)."""
        return self.family == "efficientnet"

    def input_range(self, source: str) -> tuple[float, float]:
        """The pixel range this backbone expects from ``source`` (``keras`` or ``hub``)."""
        return HUB_INPUT_RANGE if source == "hub" else self.keras_input_range

    def keras_weights_file(self, image_size: int) -> str:
        """File name of the ImageNet no-top weights Keras caches under ``$KERAS_HOME/models``."""
        if self.family == "efficientnet":
            return f"{self.keras_builder.lower()}_notop.h5"
        rows = image_size if image_size in _MOBILENET_V2_WEIGHT_SIZES else 224
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"

    def block_of(self, layer_name: str) -> str | None:
        """The block a layer belongs to, or None for stem/top layers."""
        match = re.match(self.block_pattern, layer_name)
        return match.group(1) if match else None

    def build_keras(self, **kwargs):
        """Calls the tf_keras application builder with ``kwargs``."""
        import tf_keras

        return getattr(tf_keras.applications, self.keras_builder)(**kwargs)


# EfficientNet's seven stages repeat their block (1, 2, 2, 3, 3, 4, 1) times, scaled by
# the variant's depth coefficient and rounded up (Tan & Le 2019; Keras' round_repeats).
_STAGE_REPEATS = (1, 2, 2, 3, 3, 4, 1)
_DEPTH = (1.0, 1.1, 1.2, 1.4, 1.8, 2.2, 2.6, 3.1)


def _efficientnet(index: int, resolution: int) -> BackboneInfo:
    return BackboneInfo(
        name=f"b{index}",
        family="efficientnet",
        resolution=resolution,
        keras_builder=f"EfficientNetB{index}",
        keras_input_range=RANGE_0_255,
        hub_handle=f"https://tfhub.dev/google/efficientnet/b{index}/feature-vector/1",
        hub_fine_tunable=False,
        hub_handle_tf2=f"https://tfhub.dev/tensorflow/efficientnet/b{index}/feature-vector/1",
        block_pattern=_EFFICIENTNET_BLOCKS,
        blocks=sum(math.ceil(_DEPTH[index] * repeats) for repeats in _STAGE_REPEATS),
    )


_MOBILENET_V2_HUB = "https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/4"

REGISTRY: dict[str, BackboneInfo] = {
    entry.name: entry
    for entry in [
        *(
            _efficientnet(i, size)
            for i, size in enumerate((224, 240, 260, 300, 380, 456, 528, 600))
        ),
        BackboneInfo(
            name="mobilenet_v2",
            family="mobilenet_v2",
            resolution=224,
            keras_builder="MobileNetV2",
            keras_input_range=RANGE_MINUS1_1,
            hub_handle=_MOBILENET_V2_HUB,
            hub_fine_tunable=True,
            hub_handle_tf2=_MOBILENET_V2_HUB,
            block_pattern=_MOBILENET_V2_BLOCKS,
            blocks=17,  # expanded_conv and block_1 .. block_16
        ),
    ]
}


def hub_fine_tunable(handle: str) -> bool | None:
    """Whether a TF Hub handle can be fine-tuned: False for TF1 hub.Modules.

    Known handles answer from the registry; a local directory answers from its format (a
    TF1 module has ``tfhub_module.pb``); any other handle is unknown (None) until loaded.
    """
    for entry in REGISTRY.values():
        if handle == entry.hub_handle:
            return entry.hub_fine_tunable
        if handle == entry.hub_handle_tf2:
            return True
    if os.path.isdir(handle):
        return not os.path.exists(os.path.join(handle, "tfhub_module.pb"))
    return None


def get(name: str) -> BackboneInfo:
    """Looks up a backbone by config name.

    Raises:
        KeyError: with the allowed names, if ``name`` is not registered.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"backbone.name={name!r} is not in the registry; allowed: {', '.join(REGISTRY)}"
        ) from None
