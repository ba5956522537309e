"""``shapes``: a small image-classification dataset generated on this machine.

Each image is a dark noisy background with one light filled shape (circle, square,
triangle or cross) of random hue, size, position and rotation; the label is the shape.
Colour and position carry no information about the class, so only a pipeline that really
sees the shape scores above chance (0.25). Light-on-dark keeps it learnable from scratch
in a few epochs. Generation is seeded per split and needs no network, so the dataset
flows through ``tfds.load`` like any downloaded one.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

CLASSES = ("circle", "square", "triangle", "cross")
IMAGE_SIZE = 64
_SPLITS = {"train": (1600, 0), "validation": (400, 1), "test": (400, 2)}


def _polygon_mask(xx, yy, vertices):
    """Pixels inside a convex polygon given counter-clockwise vertices."""
    inside = np.ones_like(xx, dtype=bool)
    for (x0, y0), (x1, y1) in zip(vertices, np.roll(vertices, -1, axis=0), strict=True):
        inside &= (x1 - x0) * (yy - y0) - (y1 - y0) * (xx - x0) >= 0
    return inside


def _regular(cx, cy, radius, sides, angle):
    turns = angle + 2 * np.pi * np.arange(sides) / sides
    return np.stack([cx + radius * np.cos(turns), cy + radius * np.sin(turns)], axis=1)


def _rectangle(cx, cy, half_w, half_h, angle):
    corners = np.array([[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return corners @ rot.T + [cx, cy]


def shape_mask(label: int, rng: np.random.Generator, size: int = IMAGE_SIZE) -> np.ndarray:
    """A boolean mask with one shape of class ``label`` at a random place, size and angle."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    radius = rng.uniform(0.2, 0.4) * size
    cx, cy = rng.uniform(radius, size - radius, size=2)
    angle = rng.uniform(0, 2 * np.pi)
    name = CLASSES[label]
    if name == "circle":
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2
    if name == "square":
        return _polygon_mask(xx, yy, _regular(cx, cy, radius, 4, angle))
    if name == "triangle":
        return _polygon_mask(xx, yy, _regular(cx, cy, radius, 3, angle))
    arm = radius * 0.3
    return _polygon_mask(xx, yy, _rectangle(cx, cy, radius, arm, angle)) | _polygon_mask(
        xx, yy, _rectangle(cx, cy, arm, radius, angle)
    )


def render(label: int, rng: np.random.Generator, size: int = IMAGE_SIZE) -> np.ndarray:
    """An RGB uint8 image of one shape of class ``label`` on a noisy background."""
    background = rng.uniform(0, 100, size=3)
    foreground = rng.uniform(155, 255, size=3)
    image = np.where(shape_mask(label, rng, size)[..., None], foreground, background)
    image = image + rng.normal(0, 8, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for the generated ``shapes`` dataset."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Four shapes, 64x64, 1600/400/400 images."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 3)),
                    "label": tfds.features.ClassLabel(names=list(CLASSES)),
                }
            ),
            supervised_keys=("image", "label"),
            description=__doc__,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        return {name: self._generate_examples(n, seed) for name, (n, seed) in _SPLITS.items()}

    def _generate_examples(self, num_examples: int, seed: int):
        rng = np.random.default_rng(seed)
        for index in range(num_examples):
            label = index % len(CLASSES)
            yield index, {"image": render(label, rng), "label": label}
