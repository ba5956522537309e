"""A class-per-subfolder image directory as (image, label) pairs, with its bad files found first.

Files are taken the way Keras' ``image_dataset_from_directory`` takes them (one subfolder
per class, sorted; ``.jpg .jpeg .png .bmp .gif``), but every file is decoded once before
training: a truncated or non-image file is skipped and reported instead of crashing the
run in the middle of an epoch. The validation share is held out after a seeded shuffle.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from bench.core.errors import DataUnavailable

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
AUTOTUNE = tf.data.AUTOTUNE


@dataclass
class Folder:
    """The usable files of a folder dataset, split, and the ones that were skipped."""

    train: tf.data.Dataset
    val: tf.data.Dataset
    class_names: list[str]
    skipped: list[str] = field(default_factory=list)
    identity: str = ""  # the files used (names, sizes, times) and how they were split


def _decode(path: tf.Tensor) -> tf.Tensor:
    return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)


def readable(paths: list[str]) -> set[str]:
    """The paths that decode as images (read in parallel; failures dropped by tf.data)."""
    found = tf.data.Dataset.from_tensor_slices(paths).map(
        lambda p: (p, tf.shape(_decode(p))[0]), num_parallel_calls=AUTOTUNE
    )
    found = found.apply(tf.data.experimental.ignore_errors())
    return {p.decode() for p, _ in found.as_numpy_iterator()}


def load(path: str, val_fraction: float, seed: int) -> Folder:
    """Scans, splits and maps a folder dataset to (uint8 image, int label) pairs.

    Raises:
        DataUnavailable: when a split would be empty.
    """
    root = Path(path)
    class_names = sorted(p.name for p in root.iterdir() if p.is_dir())
    files = [
        (str(f), label)
        for label, name in enumerate(class_names)
        for f in sorted((root / name).rglob("*"))
        if f.suffix.lower() in EXTENSIONS
    ]
    good = readable([f for f, _ in files]) if files else set()
    kept = [(f, label) for f, label in files if f in good]
    skipped = [str(Path(f).relative_to(root)) for f, _ in files if f not in good]
    order = np.random.default_rng(seed).permutation(len(kept))
    kept = [kept[i] for i in order]
    held = int(round(len(kept) * val_fraction))
    splits = {"train": kept[held:], "validation": kept[:held]}
    for name, part in splits.items():
        if not part:
            raise DataUnavailable(
                "dataset.path", path, "a folder whose splits each get readable images",
                "add images, or change dataset.val_fraction",
                why=f"the {name} split is empty ({len(kept)} readable images, "
                f"{len(skipped)} unreadable skipped)",
            )  # fmt: skip
    return Folder(
        train=_pairs(splits["train"]),
        val=_pairs(splits["validation"]),
        class_names=class_names,
        skipped=skipped,
        identity=f"folder:{root}:val={val_fraction}:seed={seed}:files={_listing(kept)}",
    )


def _listing(files: list[tuple[str, int]]) -> str:
    """A hash of the files' names, labels, sizes and modification times."""
    sha = hashlib.sha256()
    for name, label in sorted(files):
        stat = os.stat(name)
        sha.update(f"{name}\0{label}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return sha.hexdigest()[:16]


def _pairs(files: list[tuple[str, int]]) -> tf.data.Dataset:
    paths, labels = zip(*files, strict=True)
    ds = tf.data.Dataset.from_tensor_slices((list(paths), list(labels)))
    return ds.map(lambda p, y: (_decode(p), y), num_parallel_calls=AUTOTUNE)
