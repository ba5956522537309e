"""What bench's serving figures are worth: multiply-adds against the published counts, and
bench's batch-1 latency against a bare ``interpreter.invoke()`` loop.

``python benchmarks/serving.py macs`` builds MobileNetV2 (alpha 1.0) and EfficientNet-B0
at 224 px with ``weights=None`` and a 1000-class top, counts their multiply-adds per image
as bench does (:func:`bench.pipeline.keep.multiply_adds`) and prints them beside the
papers' figures (Sandler et al. 2018: 300 M; Tan and Le 2019: 0.39 B).

``python benchmarks/serving.py latency [--size 224] [--rounds 5]`` keeps MobileNetV2 at
``--size`` px from random weights as bench keeps a model, exports it as float32 and int8
LiteRT, and times each file at 1 thread and at all cores in one process, ``--rounds``
times interleaved (which goes first alternates): bench's measurement
(``bench.pipeline.exports``) against a bare loop of ``interpreter.invoke()`` calls on its
own interpreter. It prints every round's p50 and the
ratio of the medians as JSON.

The third goal, ``bench.serve`` over a sweep's records, is the command itself:
``time python -m bench.serve --runs results/runs``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import bench  # noqa: F401  (sets TF_USE_LEGACY_KERAS first)

PUBLISHED = {"mobilenet_v2": 300e6, "b0": 390e6}


def macs() -> dict:
    """Multiply-adds per 224 px image of the two reference models, against the papers."""
    import tf_keras as keras

    from bench.pipeline.keep import multiply_adds

    builders = {
        "mobilenet_v2": keras.applications.MobileNetV2,
        "b0": keras.applications.EfficientNetB0,
    }
    found = {}
    for name, builder in builders.items():
        model = builder(weights=None, include_top=True, classes=1000, input_shape=(224, 224, 3))
        counted = multiply_adds(lambda image, m=model: m(image, training=False), (224, 224, 3))
        found[name] = {
            "macs": counted,
            "published": PUBLISHED[name],
            "off_by_percent": round(100 * (counted / PUBLISHED[name] - 1), 2),
        }
    return found


def _exports(root: Path, size: int) -> dict[str, Path]:
    """MobileNetV2 at ``size`` px kept as bench keeps a model, and its float32 and int8 files."""
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras

    from bench.pipeline import keep, litert

    model = keras.applications.MobileNetV2(weights=None, input_shape=(size, size, 3), classes=10)
    module = keep.RawImageModel(model, size, (-1.0, 1.0))
    saved = root / "saved_model"
    tf.saved_model.save(module, str(saved), signatures={keep.SIGNATURE: module.serve})
    rng = np.random.default_rng(0)

    def calibration():
        for _ in range(32):
            yield [rng.uniform(0, 255, (1, size, size, 3)).astype(np.float32)]

    files = {}
    for fmt in ("float32", "int8"):
        files[fmt] = root / f"{fmt}.tflite"
        files[fmt].write_bytes(litert.convert(saved, fmt, calibration))
    return files


def _bare(path: Path, threads: int, image, calls: int, warmup: int) -> float:
    """p50 in ms of a plain loop: set the input once, then time ``invoke()`` call by call."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    given = interpreter.get_input_details()[0]
    interpreter.set_tensor(given["index"], image.astype(given["dtype"]))
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return float(np.percentile(np.array(times) * 1000, 50))


def _interleaved(path: Path, threads: int, image, settings, rounds: int):
    """``rounds`` p50s of bench's measurement and of the bare loop, the order alternating
    round by round (ABBA), so that neither always runs on a warmer machine."""
    from bench.pipeline import exports

    ours, bare = [], []
    for round_ in range(rounds):
        for which in ("ours", "bare") if round_ % 2 == 0 else ("bare", "ours"):
            if which == "ours":
                ours.append(exports.invoke_latency(path, threads, image, settings).p50_ms)
            else:
                bare.append(
                    _bare(path, threads, image, settings.timed_calls, settings.warmup_calls)
                )
    return ours, bare


def latency(size: int, rounds: int) -> dict:
    """bench's p50 against the bare loop's, per export and thread count, interleaved."""
    import numpy as np

    from bench.core import environment
    from bench.core.schema import ServingConfig

    settings = ServingConfig()
    image = np.random.default_rng(1).uniform(0, 255, (1, size, size, 3)).astype(np.float32)
    found = {}
    with tempfile.TemporaryDirectory() as folder:
        files = _exports(Path(folder), size)
        for fmt, path in files.items():
            for threads in sorted({1, environment.usable_cores()}):
                ours, bare = _interleaved(path, threads, image, settings, rounds)
                ratio = statistics.median(ours) / statistics.median(bare)
                found[f"{fmt}@{threads}"] = {
                    "bench_p50_ms": [round(v, 3) for v in ours],
                    "bare_p50_ms": [round(v, 3) for v in bare],
                    "ratio_of_medians": round(ratio, 3),
                }
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["macs", "latency"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    found = macs() if args.what == "macs" else latency(args.size, args.rounds)
    print(json.dumps(found, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
