"""A TF Hub handle the tests write themselves: a local TF2 SavedModel feature extractor."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
import tf_keras as keras


def write_feature_vector(path: Path, features: int = 16) -> Path:
    """Saves a small image feature-vector model (any size, inputs in [0, 1]) to ``path``."""
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Conv2D(features, 3, activation="relu", name="conv2")(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    tf.saved_model.save(keras.Model(inputs, outputs), str(path))
    return path


def write_tf1_module(path: Path) -> Path:
    """A directory in the TF1 hub.Module layout (its marker file is what tells the format)."""
    write_feature_vector(path)
    (path / "tfhub_module.pb").write_bytes(b"")
    return path
