"""Keeps a completed run's trained model: a SavedModel that loads without bench or Keras.

Its ``serving_default`` signature takes what bench's data pipeline hands the model before
scaling: RGB images resized to the run's ``image_size``, float32 in 0..255 (:data:`INPUT`).
The scaling to the backbone's input range (the registry's) is inside, so a user feeds
decoded, resized images and gets class probabilities back.
"""

from __future__ import annotations

import logging
import os
import shutil
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from bench.core import record as records
from bench.core.errors import Interrupted
from bench.core.pending import HEAD_WEIGHTS, SAVED_MODEL, kept_head, kept_model
from bench.core.record import ModelInfo, Record
from bench.core.spec import RunSpec
from bench.pipeline import compute, pixels
from bench.pipeline import model as models
from bench.pipeline.model import StoredBackbone
from bench.pipeline.place import Place

INPUT = (
    "image: float32 [batch, {size}, {size}, 3], RGB 0..255, resized to {size} px "
    "(bilinear); returns probabilities: float32 [batch, {classes}]"
)
SIGNATURE = "serving_default"

log = logging.getLogger("bench")


@dataclass
class Kept:
    """What keeping the model produced.

    Attributes:
        info: What the record says of the kept model (empty when nothing was kept).
        head_weights: A head kept alone, its weights by position as Keras lists them; they
            are written to ``info.head_weights`` with the record
            (:func:`bench.pipeline.outcome.finish`).
    """

    info: ModelInfo = field(default_factory=ModelInfo)
    head_weights: dict[str, np.ndarray] | None = None


class RawImageModel(tf.Module):
    """The trained model behind one signature that takes 0..255 images."""

    def __init__(self, model: keras.Model, size: int, input_range: tuple[float, float]):
        super().__init__(name="bench_model")
        # The SavedModel keeps the model's own variables, and nothing else the model
        # tracks: its optimizer's slots would double or triple the file (Adam: m and v).
        self.weights = list(model.variables)
        self._predict = lambda x: model(x, training=False)  # a closure: not tracked
        self._low, self._high = input_range  # floats: nothing for the SavedModel to track
        spec = tf.TensorSpec([None, size, size, 3], tf.float32, name="image")
        self.serve = tf.function(self.call, input_signature=[spec])

    def call(self, image):
        """Class probabilities of a batch of 0..255 images."""
        x = pixels.to_input_range(image, (self._low, self._high))  # as in training
        return {"probabilities": tf.cast(self._predict(x), tf.float32)}


def keep_model(
    spec: RunSpec, built: models.Built, where: Place, features_from: StoredBackbone | None = None
) -> Kept:
    """The kept model (``keep_model``); a model that cannot be saved leaves the trained run
    completed, without one (the record's ``model`` stays empty, the log says why).

    A head that trained on cached features in every phase is kept alone, whether its run
    filled the entry or hit it: its backbone is the entry's, unchanged, so the SavedModel
    can wait until a serve asks for it (:func:`assemble`).

    Args:
        spec: The run.
        built: Its trained model.
        where: Its strategy and compute settings.
        features_from: The backbone that computed the cached features the head trained
            on, as the entry describes it; None when it trained on images.

    Returns:
        The kept model (empty when nothing was kept).
    """
    if not spec.cfg.keep_model:
        return Kept()
    head_only = features_from is not None and spec.plan.head_only(where.compute.workers)
    try:
        return save_on_chief(spec, built, where, features_from if head_only else None)
    except (tf.errors.ResourceExhaustedError, Interrupted):  # the run's own outcomes
        raise
    except Exception:  # noqa: BLE001  (a save that fails is the model's loss, not the run's)
        log.error("the model of %s was not kept:\n%s", spec.run_id, traceback.format_exc())
        return Kept()


def save_on_chief(
    spec: RunSpec, built: models.Built, where: Place, stored: StoredBackbone | None
) -> Kept:
    """The run's kept model: one per run, the chief's. Every worker of a multi-worker run
    saves, each into its own ``results_dir``, because reading the replicas' variables is a
    collective op all workers must join; the other workers then delete their copies.

    Args:
        spec: The run.
        built: Its trained model.
        where: Its strategy and the precision policy it trained in.
        stored: The backbone behind the cached features a head trained on throughout
            (only the head is kept); None keeps the whole model.
    """
    classes = spec.cfg.dataset.num_classes
    with where.strategy.scope():
        if stored is None:
            kept = Kept(keep_whole(spec, built, classes, where.compute.precision))
        else:
            kept = keep_head(spec, built, classes, stored)
    if spec.site.role.chief:
        return kept
    shutil.rmtree(Path(kept.info.path or kept.info.head_weights).parent, ignore_errors=True)
    return Kept()


def keep_whole(spec: RunSpec, built: models.Built, num_classes: int, policy: str) -> ModelInfo:
    """Writes the run's final model as a SavedModel and says where and what it is.

    The kept model computes in float32 (the LiteRT exports start from it, and CPUs serve
    in it): a mixed-precision run's weights are copied into the same model built in
    float32.
    """
    full = built
    if policy != "float32":
        full = models.build(spec, num_classes, "float32")
        full.model.set_weights(built.model.get_weights())
    return write_saved_model(spec, full, spec.site.model_dir)


def keep_head(spec: RunSpec, built: models.Built, num_classes: int, stored: StoredBackbone) -> Kept:
    """Keeps a head trained on cached features: its weights (kilobytes, written with the
    record), and the whole model's size and multiply-adds, the backbone's as its cache
    entry states them. Building the backbone, saving the SavedModel and profiling its
    graph would cost a run that trains in seconds several seconds more, so they wait
    until a serve asks (:func:`assemble`).

    Args:
        spec: The run.
        built: Its model; only its head is read.
        num_classes: Classifier width.
        stored: The backbone behind the features, as its cache entry describes it.
    """
    target = spec.site.model_dir.parent / HEAD_WEIGHTS
    # By position, as Keras lists them: the head built again beside a backbone has the same
    # layers under other names.
    arrays = {f"w{i:03d}": w for i, w in enumerate(built.head.get_weights())}
    size = spec.cfg.image_size
    head_macs = multiply_adds(lambda x: built.head(x, training=False), built.head.input_shape[1:])
    known = stored.macs_per_image is not None and head_macs is not None
    head_params = int(built.head.count_params())
    info = ModelInfo(
        head_weights=str(target),
        input=INPUT.format(size=size, classes=num_classes),
        params=stored.params + head_params,
        macs_per_image=stored.macs_per_image + head_macs if known else None,
    )
    return Kept(info, arrays)


def assemble(record_path: Path) -> Record:
    """The record at ``record_path``, with the SavedModel of a run that kept only its head
    assembled now: the backbone built with the weights its features came from, the head's
    weights loaded into it, saved beside the head, and the record rewritten to point to it.
    A record that has its SavedModel, or keeps nothing, is returned as it is."""
    rec = records.read(record_path)
    head = kept_head(rec, record_path)
    if kept_model(rec, record_path) is not None or head is None:
        return rec
    spec = RunSpec.of(rec.config, rec.run_id)
    if spec.cfg.backbone.weights == "none":
        # Random weights are drawn as the run drew them, right after seeding the way
        # place.settle does (Keras' generator mode changes what Dropout layers draw), in a
        # process that may have seeded nothing, or something else.
        compute.seeded(spec.cfg.seed, deterministic=False)
    full = models.build(spec, rec.config["dataset"]["num_classes"], "float32")
    with np.load(head) as stored:
        full.head.set_weights([stored[name] for name in sorted(stored.files)])
    info = write_saved_model(spec, full, head.parent / SAVED_MODEL)
    rec.model.path, rec.model.size_bytes = info.path, info.size_bytes
    records.write(rec, Path(record_path).parent)
    return rec


def write_saved_model(spec: RunSpec, full: models.Built, target: Path) -> ModelInfo:
    """Saves ``full`` at ``target`` behind its one signature; what the record says of it."""
    size = spec.cfg.image_size
    exported = RawImageModel(
        full.model, size, spec.backbone.input_range(spec.cfg.backbone.source.value)
    )
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    tf.saved_model.save(exported, str(partial), signatures={SIGNATURE: exported.serve})
    shutil.rmtree(target, ignore_errors=True)
    for stale in target.parent.glob("*.tflite"):  # a retrained point's exports are not its own
        stale.unlink()
    os.replace(partial, target)  # a run cut while saving leaves no half model in its place
    return ModelInfo(
        path=str(target),
        input=INPUT.format(size=size, classes=full.model.output_shape[-1]),
        size_bytes=folder_size(target),
        params=int(full.model.count_params()),
        macs_per_image=multiply_adds(exported.call, (size, size, 3)),
    )


def folder_size(path: str | os.PathLike) -> int:
    """Bytes of every file under ``path``."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


# Ops whose multiply-adds the published figures count (Sandler et al. 2018, Tan and Le
# 2019): convolutions and fully connected layers, not activations or normalisation.
COUNTED_OPS = ["Conv2D", "DepthwiseConv2dNative", "MatMul", "BatchMatMulV2"]


def multiply_adds(call, shape: tuple[int, ...]) -> int | None:
    """Multiply-adds of one input of ``shape`` (an image: ``(size, size, 3)``) through
    ``call``, from TensorFlow's profiler on its graph traced and frozen at batch 1 (static
    shapes, which the profiler needs; it counts a multiply-add as two float ops).

    Returns None when the graph cannot be frozen or profiled: a missing count never fails
    the run.
    """
    image = tf.TensorSpec([1, *shape], tf.float32)
    try:
        frozen = convert_variables_to_constants_v2(tf.function(call).get_concrete_function(image))
        builder = tf.compat.v1.profiler.ProfileOptionBuilder
        options = builder(builder.float_operation()).with_empty_output().build()
        options["account_type_regexes"] = COUNTED_OPS
        profile = tf.compat.v1.profiler.profile(graph=frozen.graph, options=options)
    except Exception:  # noqa: BLE001  (a graph the freezer or profiler cannot take: no count)
        return None
    return int(profile.total_float_ops // 2)
