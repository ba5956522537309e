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

import tensorflow as tf

from bench.core import splits
from bench.core.errors import DataUnavailable
from bench.pipeline import carving

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
AUTOTUNE = tf.data.AUTOTUNE


@dataclass
class Folder:
    """The usable files of a folder dataset, split into roles, and the ones skipped."""

    roles: dict[str, tf.data.Dataset]  # train, val and (unless asked for none) test
    counts: dict[str, int]
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


def scan(path: str, plan: splits.SplitPlan) -> Folder:
    """Scans a folder dataset and carves its readable files into the plan's roles, by
    file: seeded, stratified by class, disjoint (bench.pipeline.carving).

    Raises:
        DataUnavailable: when the readable files are too few for every role.
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
    try:
        carved = carving.carve([label for _, label in kept], plan.shares, plan.train.seed or 0)
    except ValueError as error:
        raise DataUnavailable(
            "dataset.path", path, "a folder with enough readable images for train, val and test",
            "add images, or lower dataset.val_fraction / dataset.test_fraction",
            why=f"{error} ({len(skipped)} unreadable files skipped)",
        ) from error  # fmt: skip
    parts = {role: [kept[i] for i in index] for role, index in carved.items()}
    shares = ",".join(f"{r}={s:g}" for r, s in plan.shares.items())
    return Folder(
        roles={role: _pairs(part) for role, part in parts.items()},
        counts={role: len(part) for role, part in parts.items()},
        class_names=class_names,
        skipped=skipped,
        identity=f"folder:{root}:{shares}:seed={plan.train.seed}:files={_listing(kept)}",
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
