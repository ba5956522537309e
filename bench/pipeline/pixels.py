"""The one pixel scaling: 0-255 images into a backbone's input range.

Training, evaluation, the feature cache and the kept model's serving signature all call it,
so a served model sees exactly the inputs its run trained on.
"""

from __future__ import annotations

import tensorflow as tf


def to_input_range(images: tf.Tensor, input_range: tuple[float, float]) -> tf.Tensor:
    """0-255 images (clipped) mapped affinely onto ``input_range``, e.g. (-1, 1)."""
    low, high = input_range
    return tf.clip_by_value(images, 0.0, 255.0) * ((high - low) / 255.0) + low
