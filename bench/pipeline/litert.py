"""LiteRT (TFLite) exports of a kept SavedModel, made by TensorFlow's converter and run by
the ``ai-edge-litert`` interpreter (``tf.lite.Interpreter`` is deprecated in TF 2.21).

Formats:
    ``float32``: the graph as it is.
    ``float16``: weights stored as float16 (computed in float32 on CPUs).
    ``dynamic_int8``: weights int8, activations quantized on the fly.
    ``int8``: full integer, calibrated on a seeded sample of the training split; uint8
        images in (0..255 is their natural range) and uint8 probabilities out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from bench.core.errors import Interrupted

FORMATS = ("float32", "float16", "dynamic_int8", "int8")


class Unsupported(Exception):
    """The converter refused the model in a format; the message is its reason."""


def convert(
    saved_model: str | Path, fmt: str, calibration: Callable[[], Iterator] | None = None
) -> bytes:
    """The ``fmt`` export of ``saved_model`` as a flatbuffer.

    Args:
        saved_model: The kept SavedModel folder.
        fmt: One of :data:`FORMATS`.
        calibration: For ``int8``: yields ``[image]`` batches of one (float32, 0..255).

    Raises:
        Unsupported: with the converter's reason (an op LiteRT lacks, a TF1 module...).
    """
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if fmt != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if fmt == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif fmt == "int8":
        converter.representative_dataset = calibration
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    try:
        return converter.convert()
    except Interrupted:  # a stop signal during a long conversion is a stop, not a verdict
        raise
    except Exception as error:  # noqa: BLE001  (the converter raises many types)
        raise Unsupported(f"{type(error).__name__}: {first_lines(str(error))}") from error


def first_lines(text: str, lines: int = 3, limit: int = 600) -> str:
    """The start of a long converter message: enough to say why, short enough to read."""
    return " ".join(line.strip() for line in text.strip().splitlines()[:lines])[:limit]


class Runner:
    """One export loaded in the LiteRT interpreter at a thread count: quantizes inputs and
    dequantizes outputs where the export is integer, and resizes to the batch it is given."""

    def __init__(self, path: str | Path, threads: int):
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self._batch = None

    def load(self, images: np.ndarray) -> None:
        """Puts a batch of float32 0..255 images into the input (resizing when its batch
        size changes)."""
        if images.shape[0] != self._batch:
            shape = [images.shape[0], *self._input["shape"][1:]]
            self.interpreter.resize_tensor_input(self._input["index"], shape)
            self.interpreter.allocate_tensors()
            self._batch = images.shape[0]
        self.interpreter.set_tensor(self._input["index"], self._quantized(images))

    def invoke(self) -> None:
        """Runs the loaded input (what the latency figures time)."""
        self.interpreter.invoke()

    def output(self) -> np.ndarray:
        """The last call's probabilities, as float32."""
        found = self.interpreter.get_tensor(self._output["index"])
        scale, zero = self._output["quantization"]
        if self._output["dtype"] == np.float32 or not scale:
            return found.astype(np.float32)
        return (found.astype(np.float32) - zero) * scale

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.load(images)
        self.invoke()
        return self.output()

    def _quantized(self, images: np.ndarray) -> np.ndarray:
        kind = self._input["dtype"]
        scale, zero = self._input["quantization"]
        if kind == np.float32 or not scale:
            return images.astype(kind)
        info = np.iinfo(kind)
        return np.clip(np.round(images / scale + zero), info.min, info.max).astype(kind)
