"""The model: a registry backbone, the configured head, the run's precision."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import tf_keras as keras

from bench.core.errors import ConfigError, WeightsUnavailable
from bench.core.schema import Source
from bench.core.spec import RunSpec
from bench.pipeline import freeze, heads


@dataclass(frozen=True)
class StoredBackbone:
    """The backbone that computed cached features, known from the cache entry alone: its
    parameters and its multiply-adds per image (None when the entry predates the count)."""

    params: int
    macs_per_image: int | None = None


@dataclass
class Built:
    """The full model and its parts, which share their weights with it.

    ``features`` maps an image to what the head reads (the backbone's output, pooled
    unless the head starts with a conv layer): the feature cache stores its outputs.
    ``head`` maps those features to class probabilities; training it trains the model's
    head. Freeze policies act on ``backbone``.

    A run whose every phase trains on features already in the cache never runs the
    backbone, so :func:`build_head` builds only the head: ``model`` is the head,
    ``backbone`` and ``features`` are None and ``stored`` describes the backbone that
    computed the features.
    """

    model: keras.Model
    backbone: keras.layers.Layer | None
    features: keras.Model | None
    head: keras.Model
    stored: StoredBackbone | None = None

    def parameter_counts(self) -> tuple[int, int]:
        """(total, trainable) parameter counts of the whole model as it trains now (a
        backbone known only from the cache is frozen: none of it trains)."""
        trainable = sum(int(np.prod(w.shape)) for w in self.model.trainable_weights)
        stored = self.stored.params if self.stored else 0
        return int(self.model.count_params()) + stored, trainable


class InferenceWhenFrozen(keras.layers.Layer):
    """Calls its backbone in inference mode whenever the backbone is frozen.

    Keras runs a frozen BatchNorm in inference mode, but the Dropout and stochastic-depth
    layers of a frozen Keras EfficientNet still get ``training=True`` from ``fit``
    (docs/architecture.md, "Frozen means inference"), so heads would train on noised
    features. The choice is made when Keras
    traces the train step, which it does again after every compile: a two-phase run's
    head phase sees the backbone in inference mode, its fine-tune phase in training mode.
    """

    def __init__(self, backbone: keras.layers.Layer, **kwargs):
        # No autocast: the backbone applies the precision policy (or float32, for TF Hub).
        super().__init__(name="backbone", autocast=False, **kwargs)
        self.backbone = backbone

    def call(self, inputs, training=None):
        return self.backbone(inputs, training=training if self.backbone.trainable else False)


def build(spec: RunSpec, num_classes: int, policy: str = "float32", on_tpu: bool = False) -> Built:
    """Builds backbone + head for ``spec``; call under ``strategy.scope()``.

    Args:
        spec: The run.
        num_classes: Classifier width.
        policy: The Keras precision policy (``pipeline.compute.precision``).
        on_tpu: Load hub SavedModels through the local host (TPU workers cannot read the
            local cache themselves).

    Raises:
        WeightsUnavailable: pretrained weights not cached and not downloadable.
        ConfigError: a weights file that does not fit the backbone.
    """
    cfg = spec.cfg
    keras.mixed_precision.set_global_policy(policy)
    shape = (cfg.image_size, cfg.image_size, 3)
    if cfg.backbone.source == Source.hub:
        backbone = hub_backbone(cfg.backbone.hub_handle, on_tpu)
    else:
        backbone = keras_backbone(spec, shape)
        if cfg.backbone.bn_momentum is not None:
            for layer in freeze.batchnorm_layers(backbone):
                layer.momentum = cfg.backbone.bn_momentum
    inputs = keras.Input(shape=shape, name="image")
    x = InferenceWhenFrozen(backbone)(inputs)
    if len(x.shape) == 4 and not cfg.head.conv_filters:
        x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    head = seeded_head(spec, x.shape[1:], num_classes)
    name = f"{cfg.backbone.name}_{cfg.head.name}"
    model = keras.Model(inputs, head(x), name=name)
    return Built(model, backbone, keras.Model(inputs, x, name="features"), head)


def build_head(
    spec: RunSpec,
    num_classes: int,
    feature_shape: tuple[int, ...],
    stored: StoredBackbone,
    policy: str = "float32",
) -> Built:
    """Only the head, on cached features of ``feature_shape``, for a run whose every phase
    keeps the backbone frozen (building a backbone that never runs costs seconds: B0 about
    2 s here, B7 more, plus loading its weights). Call under ``strategy.scope()``."""
    keras.mixed_precision.set_global_policy(policy)
    head = seeded_head(spec, tuple(feature_shape), num_classes)
    return Built(head, None, None, head, stored=stored)


def seeded_head(spec: RunSpec, feature_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """The head, its initial weights drawn right after seeding: the same whether or not a
    backbone was built before it in this process (a feature-cache hit builds none)."""
    keras.utils.set_random_seed(spec.cfg.seed)
    return heads.build(feature_shape, spec.cfg.head, num_classes)


def keras_backbone(spec: RunSpec, shape: tuple[int, int, int]) -> keras.Model:
    """The tf_keras application without its top, with the configured weights."""
    info, weights = spec.backbone, spec.cfg.backbone.weights
    extra = {}
    if info.stochastic_depth and spec.cfg.backbone.drop_connect_rate is not None:
        extra["drop_connect_rate"] = spec.cfg.backbone.drop_connect_rate
    try:
        return info.build_keras(
            include_top=False,
            weights=None if weights == "none" else weights,
            input_shape=shape,
            **extra,
        )
    except Exception as error:
        if weights == "imagenet" and "URL fetch failure" in str(error):
            cached = os.path.join(keras_cache_dir(), "models", info.keras_weights_file(shape[0]))
            raise WeightsUnavailable(
                "backbone.weights", "imagenet", "imagenet (cached or downloadable), none, a file",
                f"copy {info.keras_weights_file(shape[0])} to {cached} (set KERAS_HOME to use "
                "another cache), or pass backbone.weights=/path/to/weights.h5 or "
                "backbone.weights=none",
                why=f"{info.keras_builder} weights are not cached and could not be downloaded "
                f"({error})",
            ) from error  # fmt: skip
        if weights not in ("imagenet", "none"):
            raise ConfigError(
                "backbone.weights", weights, f"a weights file of {info.keras_builder} without top",
                "pass the file saved from this backbone, or backbone.weights=imagenet",
                why=f"does not fit {info.keras_builder} without top at {shape}: {error}",
            ) from error  # fmt: skip
        raise


def hub_backbone(handle: str, on_tpu: bool = False) -> keras.layers.Layer:
    """A TF Hub feature-vector layer (frozen; freeze policies may unfreeze it whole).

    It computes in float32 whatever the precision policy: mixed precision does not reach
    inside a loaded SavedModel.
    """
    import tensorflow as tf
    import tensorflow_hub as hub

    local_io = tf.saved_model.LoadOptions(experimental_io_device="/job:localhost")
    options = local_io if on_tpu else None
    try:
        return hub.KerasLayer(
            handle, trainable=False, dtype="float32", name="hub_backbone", load_options=options
        )
    except Exception as error:
        cache = os.environ.get("TFHUB_CACHE_DIR", "<tempdir>/tfhub_modules")
        raise WeightsUnavailable(
            "backbone.hub_handle", handle, "a loadable TF Hub handle or SavedModel directory",
            f"offline? download it where there is network into TFHUB_CACHE_DIR (now {cache}) "
            "and copy that folder here, or pass backbone.hub_handle=/path/to/saved_model_dir",
            why=f"could not load it ({type(error).__name__}: {str(error)[:300]})",
        ) from error  # fmt: skip


def keras_cache_dir() -> str:
    """Where Keras caches downloads: ``$KERAS_HOME`` or ``~/.keras``."""
    return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
