"""Classification heads: one builder, configured by the ``head`` group's keys."""

from __future__ import annotations

import tf_keras as keras

from bench.core.schema import HeadConfig


def build(feature_shape: tuple, head: HeadConfig, num_classes: int) -> keras.Model:
    """The head described by ``head``, as a model from backbone features to probabilities.

    Order: [Conv2D -> BatchNorm] -> global average pool (feature maps only) -> [BatchNorm
    when there is no conv] -> [Dropout] -> hidden Dense layers -> softmax classifier. The
    classifier computes in float32 so mixed precision keeps a stable softmax.

    Args:
        feature_shape: The backbone's output shape without the batch axis (a feature map
            or a pooled vector).
        head: The head config.
        num_classes: Classifier width, from the dataset's metadata.
    """
    features = keras.Input(shape=feature_shape, name="features")
    x = features
    if head.conv_filters:
        # The guide's Conv2D(7, 7) sees a 7x7 map at native size; smaller maps need padding.
        padding = "valid" if min(x.shape[1:3]) >= head.conv_kernel else "same"
        x = keras.layers.Conv2D(
            head.conv_filters, head.conv_kernel, padding=padding, name="head_conv"
        )(x)
    if head.conv_filters and head.batch_norm:
        x = keras.layers.BatchNormalization(name="head_bn")(x)
    if len(x.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    if head.batch_norm and not head.conv_filters:
        x = keras.layers.BatchNormalization(name="head_bn")(x)
    if head.dropout:
        x = keras.layers.Dropout(head.dropout, name="head_dropout")(x)
    for index, units in enumerate(head.hidden_units):
        x = keras.layers.Dense(units, activation=head.activation, name=f"head_dense_{index}")(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="predictions"
    )(x)
    return keras.Model(features, outputs, name="head")
