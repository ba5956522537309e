"""Keeps a completed run's trained model: a SavedModel that loads without bench or Keras.

Its ``serving_default`` signature takes what bench's data pipeline hands the model before
scaling: RGB images resized to the run's ``image_size``, float32 in 0..255 (:data:`INPUT`).
The scaling to the backbone's input range (the registry's) is inside, so a user feeds
decoded, resized images and gets class probabilities back.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import tensorflow as tf
import tf_keras as keras
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from bench.core import cluster
from bench.core.pending import model_dir
from bench.core.record import ModelInfo
from bench.core.spec import RunSpec
from bench.pipeline import model as models
from bench.pipeline import pixels

INPUT = (
    "image: float32 [batch, {size}, {size}, 3], RGB 0..255, resized to {size} px "
    "(bilinear); returns probabilities: float32 [batch, {classes}]"
)
SIGNATURE = "serving_default"


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


def save_on_chief(
    spec: RunSpec, built: models.Built, num_classes: int, policy: str, strat
) -> ModelInfo:
    """The run's kept model: one per run, the chief's. Every worker of a multi-worker run
    saves, each into its own ``results_dir``, because reading the replicas' variables is a
    collective op all workers must join; the other workers then delete their copies."""
    with strat.scope():
        info = save(spec, built, num_classes, policy)
    if cluster.role().chief:
        return info
    shutil.rmtree(Path(info.path).parent, ignore_errors=True)
    return ModelInfo()


def save(spec: RunSpec, built: models.Built, num_classes: int, policy: str) -> ModelInfo:
    """Writes the run's final model as a SavedModel and says where and what it is.

    The kept model computes in float32 (the LiteRT exports start from it, and CPUs serve
    in it): a mixed-precision run's weights are copied into the same model built in
    float32. A run that trained only its head on cached features has no backbone in
    memory: the full model is built (with the same backbone weights the features came
    from) and the trained head's weights copied into it.
    """
    full = built
    if built.backbone is None:
        full = models.build(spec, num_classes, "float32")
        full.head.set_weights(built.head.get_weights())
    elif policy != "float32":
        full = models.build(spec, num_classes, "float32")
        full.model.set_weights(built.model.get_weights())
    size = spec.cfg.image_size
    exported = RawImageModel(
        full.model, size, spec.backbone.input_range(spec.cfg.backbone.source.value)
    )
    target = model_dir(spec.cfg.results_dir, spec.run_id)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    tf.saved_model.save(exported, str(partial), signatures={SIGNATURE: exported.serve})
    shutil.rmtree(target, ignore_errors=True)
    for stale in target.parent.glob("*.tflite"):  # a retrained point's exports are not its own
        stale.unlink()
    os.replace(partial, target)  # a run cut while saving leaves no half model in its place
    return ModelInfo(
        path=str(target),
        input=INPUT.format(size=size, classes=num_classes),
        size_bytes=folder_size(target),
        params=int(full.model.count_params()),
        macs_per_image=multiply_adds(exported.call, size),
    )


def folder_size(path: str | os.PathLike) -> int:
    """Bytes of every file under ``path``."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


# Ops whose multiply-adds the published figures count (Sandler et al. 2018, Tan and Le
# 2019): convolutions and fully connected layers, not activations or normalisation.
COUNTED_OPS = ["Conv2D", "DepthwiseConv2dNative", "MatMul", "BatchMatMulV2"]


def multiply_adds(call, size: int) -> int | None:
    """Multiply-adds of one ``size`` px image through ``call`` (images to outputs), from
    TensorFlow's profiler on its graph traced and frozen at batch 1 (static shapes, which
    the profiler needs; it counts a multiply-add as two float ops).

    Returns None when the graph cannot be frozen or profiled: a missing count never fails
    the run.
    """
    image = tf.TensorSpec([1, size, size, 3], tf.float32)
    try:
        frozen = convert_variables_to_constants_v2(tf.function(call).get_concrete_function(image))
        builder = tf.compat.v1.profiler.ProfileOptionBuilder
        options = builder(builder.float_operation()).with_empty_output().build()
        options["account_type_regexes"] = COUNTED_OPS
        profile = tf.compat.v1.profiler.profile(graph=frozen.graph, options=options)
    except Exception:  # noqa: BLE001  (a graph the freezer or profiler cannot take: no count)
        return None
    return int(profile.total_float_ops // 2)
