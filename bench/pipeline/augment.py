"""Augmentation drawn from a seed per batch: the keras-io recipe's flip, rotation,
translation and contrast, as stateless ops.

Keras' preprocessing layers draw from a random generator whose state advances with every
batch, so the draws of epoch *e* depend on every batch drawn before it, in this process: a
run resumed at epoch *k* would draw anew. Here each batch's draws are a function of its
seed alone (``seed_of``: run seed, epoch, batch), so epoch *e* augments alike whether the
run got there in one go or was resumed. The ops match the layers' (a flip per image, one
contrast factor per batch, rotations and translations per image, reflected at the edges).
"""

from __future__ import annotations

import math

import tensorflow as tf

from bench.core.schema import AugmentConfig, Flip

_STREAMS = 5  # independent draws per batch: two flips, rotation, translation, contrast


def seed_of(run_seed: int, epoch: int, batch: tf.Tensor) -> tf.Tensor:
    """The stateless seed (shape [2], int64) of one batch of one epoch."""
    return tf.stack([tf.constant(run_seed, tf.int64), epoch * 1_000_003 + tf.cast(batch, tf.int64)])


def apply(images: tf.Tensor, aug: AugmentConfig, seed: tf.Tensor) -> tf.Tensor:
    """``images`` (a batch, 0-255 floats) augmented as ``aug`` says, drawn from ``seed``."""
    seeds = tf.random.experimental.stateless_split(seed, _STREAMS)
    flip = Flip(aug.flip)
    if flip in (Flip.horizontal, Flip.horizontal_and_vertical):
        images = tf.image.stateless_random_flip_left_right(images, seeds[0])
    if flip in (Flip.vertical, Flip.horizontal_and_vertical):
        images = tf.image.stateless_random_flip_up_down(images, seeds[1])
    if aug.rotation:
        images = _transform(images, _rotations(images, aug.rotation, seeds[2]))
    if aug.translation:
        images = _transform(images, _translations(images, aug.translation, seeds[3]))
    if aug.contrast:
        low, high = 1.0 - aug.contrast, 1.0 + aug.contrast
        images = tf.image.stateless_random_contrast(images, low, high, seeds[4])
        images = tf.clip_by_value(images, 0.0, 255.0)
    return images


def _size(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    shape = tf.shape(images)
    return shape[0], tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)


def _rotations(images: tf.Tensor, factor: float, seed: tf.Tensor) -> tf.Tensor:
    """Per image, a turn of up to ``factor`` of a full circle about the centre (Keras'
    RandomRotation matrix)."""
    count, height, width = _size(images)
    limit = factor * 2.0 * math.pi
    angle = tf.random.stateless_uniform([count], seed, -limit, limit)
    cos, sin = tf.cos(angle), tf.sin(angle)
    x_offset = ((width - 1) - (cos * (width - 1) - sin * (height - 1))) / 2.0
    y_offset = ((height - 1) - (sin * (width - 1) + cos * (height - 1))) / 2.0
    zero = tf.zeros_like(angle)
    return tf.stack([cos, -sin, x_offset, sin, cos, y_offset, zero, zero], axis=1)


def _translations(images: tf.Tensor, factor: float, seed: tf.Tensor) -> tf.Tensor:
    """Per image, a shift of up to ``factor`` of the height and of the width."""
    count, height, width = _size(images)
    shift = tf.random.stateless_uniform([count, 2], seed, -factor, factor)
    dy, dx = shift[:, 0] * height, shift[:, 1] * width
    one, zero = tf.ones_like(dx), tf.zeros_like(dx)
    return tf.stack([one, zero, -dx, zero, one, -dy, zero, zero], axis=1)


def _transform(images: tf.Tensor, transforms: tf.Tensor) -> tf.Tensor:
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )
