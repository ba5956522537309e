"""What the harness costs on top of Keras: four throughputs of one config, interleaved.

- ``harness``: an epoch as a run's last phase trains it: the run's input pipeline (cached
  after the first epoch), its model, optimizer and compile settings, and its callbacks
  (TerminateOnNaN, the epoch recorder, the per-epoch backup).
- ``keras``: the same model and batch on the same images held in memory as tensors
  (``from_tensor_slices`` -> cache -> shuffle -> batch -> prefetch), plain ``model.fit``.
- ``synthetic``: the same number of train steps on one batch that already sits on the
  device: the model's own ceiling.
- ``input``: the run's input pipeline alone, iterated for an epoch.

Each is measured once to warm up (tracing, compiling and filling the input cache; that
time is reported apart) and then ``rounds`` times in turn (a, b, c, d, a, b, c, d, ...),
so that a slow spell of the machine falls on all four; the figure is the median round.
The feature cache is not involved: ``harness`` always runs the backbone.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from bench.core import environment
from bench.core.console import say
from bench.core.spec import RunSpec
from bench.pipeline import data, measure, model, optim, place, train

VARIANTS = ("harness", "keras", "synthetic", "input")


@dataclass
class SpeedResult:
    """The measurement, as written to ``results/speed/*.json``."""

    run_id: str
    config: dict
    env: dict
    images_per_epoch: int
    steps_per_epoch: int
    rounds: int
    images_per_s: dict[str, float]
    ratios: dict[str, float]
    warmup_s: dict[str, float]  # the first pass over a steady one: tracing, compiling, fill
    round_s: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def measure_speed(spec: RunSpec, rounds: int = 3) -> SpeedResult:
    """Measures the four throughputs of ``spec`` in this process (see the module doc)."""
    where = place.settle(spec)  # as a run computes: strategy, precision, seeds, determinism
    strat, resolved = where.strategy, where.compute
    loaded = data.load(spec, cache_dir=None)
    with strat.scope():
        built = model.build(spec, loaded.num_classes, resolved.precision)
    examples = loaded.train_examples or _count(loaded.train)
    steps = optim.steps_per_epoch(examples, spec.batch_size)
    phases = spec.plan.phases_at(strat.num_replicas_in_sync)
    training = train.Training(built, loaded, spec, strat, phases, jit_compile=resolved.jit_compile)
    phase = phases[-1]
    train.prepare_phase(training, built.model, phase, steps)
    passes = _passes(built.model, loaded, phase.name, spec.batch_size, steps)
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for index in range(rounds + 1):
        label = "warm-up" if index == 0 else f"round {index}/{rounds}"
        for name in VARIANTS:
            times[name].append(_timed(passes[name]))
        rates = ", ".join(f"{n} {examples / times[n][-1]:.1f}" for n in VARIANTS)
        say(f"speed {label} (images/s): {rates}")
    env = {**where.facts.record(), **resolved.record()}
    return _result(spec, env, (examples, steps), rounds, times)


def _passes(
    net: keras.Model, loaded: data.Data, phase: str, batch_size: int, steps: int
) -> dict[str, Callable[[], None]]:
    images, labels = _in_memory(loaded.plain["train"])
    in_memory = (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .cache()
        .shuffle(len(labels), seed=0, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    with tf.device(_device()):
        batch = (tf.identity(images[:batch_size]), tf.identity(labels[:batch_size]))
    synthetic = tf.data.Dataset.from_tensors(batch).repeat(steps)
    backup_dir = tempfile.mkdtemp(prefix="bench-speed-")

    def harness() -> None:
        callbacks = [
            keras.callbacks.TerminateOnNaN(),
            measure.EpochRecorder(phase),
            keras.callbacks.BackupAndRestore(backup_dir),
        ]
        net.fit(loaded.train, epochs=1, callbacks=callbacks, verbose=0)
        # BackupAndRestore deletes the attribute at the end of fit, and the next fit
        # without it then fails reading it (tf_keras 2.21).
        net._training_state = None

    def drain() -> None:
        for _ in loaded.train:
            pass

    return {
        "harness": harness,
        "keras": lambda: net.fit(in_memory, epochs=1, verbose=0),
        "synthetic": lambda: net.fit(synthetic, epochs=1, verbose=0),
        "input": drain,
    }


def _in_memory(ds: tf.data.Dataset) -> tuple[tf.Tensor, tf.Tensor]:
    """Every (scaled) training image and label as two tensors."""
    xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in ds), strict=True)
    return tf.constant(np.concatenate(xs)), tf.constant(np.concatenate(ys))


def _device() -> str:
    gpus = tf.config.list_logical_devices("GPU")
    return gpus[0].name if gpus else "/cpu:0"


def _count(ds: tf.data.Dataset) -> int:
    return sum(int(tf.shape(y)[0]) for _, y in ds)


def _timed(step: Callable[[], None]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def _result(spec, env: dict, epoch: tuple[int, int], rounds, times) -> SpeedResult:
    """The JSON's fields; ``epoch`` is (images, steps) of one training epoch."""
    examples, steps = epoch
    steady = {name: statistics.median(t[1:]) for name, t in times.items()}
    rate = {name: examples / seconds for name, seconds in steady.items()}
    return SpeedResult(
        run_id=spec.run_id,
        config=spec.config_dict(),
        env={**environment.versions(), **env},
        images_per_epoch=examples,
        steps_per_epoch=steps,
        rounds=rounds,
        images_per_s=rate,
        ratios={
            "harness_over_keras": rate["harness"] / rate["keras"],
            "harness_over_synthetic": rate["harness"] / rate["synthetic"],
            "input_over_harness": rate["input"] / rate["harness"],
        },
        # The first pass's extra time over a steady one; a pass that costs nothing extra
        # can still come out faster by the machine's noise, which is not a negative cost.
        warmup_s={name: max(0.0, t[0] - steady[name]) for name, t in times.items()},
        round_s={name: t[1:] for name, t in times.items()},
    )


def write(result: SpeedResult, spec: RunSpec, out: Path) -> Path:
    """Prints the images/s and the ratios, and writes them as JSON into ``out``."""
    for name, rate in result.images_per_s.items():
        print(f"{name:>10}: {rate:10.1f} images/s   (warm-up {result.warmup_s[name]:.1f} s)")
    for name, ratio in result.ratios.items():
        print(f"{name:>22}: {ratio:.3f}")
    out.mkdir(parents=True, exist_ok=True)
    cfg = spec.cfg
    path = out / f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.backbone.name}-{cfg.image_size}px.json"
    path.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    say(f"wrote {path}")
    return path
