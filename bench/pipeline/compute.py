"""How the run computes: precision policy and XLA compilation, resolved for the device.

``precision=auto`` takes the fastest policy that is safe on the device (mixed_bfloat16 on
a TPU, mixed_float16 on GPUs of compute capability 7.0 or newer, whose tensor cores run
float16, float32 otherwise). ``jit_compile=auto`` keeps XLA off for the registry's
backbones: XLA makes depthwise convolutions, which EfficientNet and MobileNetV2 are built
from, far slower on some GPUs (tensorflow#59772). The classifier always computes in
float32 (see :mod:`bench.pipeline.heads`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import tensorflow as tf
import tf_keras as keras

from bench.core.plan import ComputeRequest
from bench.core.schema import Precision
from bench.pipeline.strategy import Facts

FAST_FLOAT16_CAPABILITY = (7, 0)  # Volta: the first tensor cores


@dataclass(frozen=True)
class Devices:
    """What precision and compilation depend on: the accelerator kind and, for GPUs,
    their compute capabilities."""

    kind: str  # "TPU" | "GPU" | "CPU"
    gpu_capabilities: tuple[tuple[int, int], ...] = ()


def precision(requested: Precision | str, devices: Devices) -> str:
    """The Keras mixed-precision policy name for ``requested`` on ``devices``."""
    requested = Precision(requested)
    if requested != Precision.auto:
        return requested.value
    if devices.kind == "TPU":
        return Precision.mixed_bfloat16.value
    capabilities = devices.gpu_capabilities
    if devices.kind == "GPU" and capabilities and min(capabilities) >= FAST_FLOAT16_CAPABILITY:
        return Precision.mixed_float16.value
    return Precision.float32.value


def jit_compile(requested: str, devices: Devices) -> bool:
    """Whether Keras compiles the train step with XLA (``auto``: off, see the module doc)."""
    if requested == "auto":
        return False
    return requested == "true"


@dataclass(frozen=True)
class Compute:
    """How this run computes on these devices: the plan's request resolved (the record's
    ``env`` fields of the same names; ``env.input_cache`` is the data step's)."""

    precision: str
    jit_compile: bool
    steps_per_execution: int
    deterministic: bool
    not_deterministic: tuple[str, ...] = ()
    workers: int = 1

    def record(self) -> dict:
        """The record's ``env`` fields."""
        return {**dataclasses.asdict(self), "not_deterministic": list(self.not_deterministic)}


def resolve(request: ComputeRequest, devices: Devices, workers: int = 1) -> Compute:
    """The plan's compute request (bench.core.plan) resolved for ``devices``."""
    on = deterministic(request.deterministic, devices)
    return Compute(
        precision=precision(request.precision, devices),
        jit_compile=jit_compile(request.jit_compile, devices),
        steps_per_execution=request.steps_per_execution,
        deterministic=on,
        not_deterministic=tuple(not_deterministic(on, devices, workers)),
        workers=workers,
    )


def deterministic(requested: str, devices: Devices) -> bool:
    """Whether TensorFlow's ops run deterministically (``auto``: on CPUs only).

    On a CPU they cost up to about 5% of the training speed as measured here
    (docs/benchmarks.md); on GPUs some ops (cuDNN's autotuned convolutions, scatter and
    segment sums with atomics) are slower or raise, and TPUs compile their own programs, so
    ``auto`` leaves them off.
    """
    if requested == "auto":
        return devices.kind == "CPU"
    return requested == "true"


def not_deterministic(on: bool, devices: Devices, workers: int) -> list[str]:
    """What a seed does not pin down in a run computed as ``on`` says (the record's
    ``env.not_deterministic``)."""
    found = [] if on else [f"{devices.kind} kernels (deterministic=false)"]
    if workers > 1:
        found.append("the order of the all-reduce sums across workers")
    return found


def detect(strategy_facts: Facts) -> Devices:
    """The :class:`Devices` of this process, from the strategy's facts."""
    devices = strategy_facts.devices
    if any(d.startswith("TPU") for d in devices):
        return Devices("TPU")
    if any(d.startswith("GPU") for d in devices):
        capabilities = []
        for gpu in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(gpu)
            capabilities.append(tuple(details.get("compute_capability", (0, 0))))
        return Devices("GPU", tuple(capabilities))
    return Devices("CPU")


def seeded(seed: int, deterministic: bool) -> None:
    """Seeds Python, NumPy and TensorFlow; with ``deterministic``, TensorFlow's ops too.

    Each epoch's order and augmentation are drawn from the seed statelessly
    (bench.pipeline.data), the initial weights right after seeding (model.seeded_head).
    Dropout and stochastic depth draw from ``tf.random.Generator`` objects instead of
    Keras' legacy stateful ops; the checkpoint saves their state with each epoch
    (bench.pipeline.checkpoint: Keras' backup leaves it out), so a resumed run draws the
    masks the uncut run would have drawn. W&B, started after this, draws from none of
    these generators.
    """
    keras.utils.set_random_seed(seed)
    keras.backend.experimental.enable_tf_random_generator()
    if deterministic:
        tf.config.experimental.enable_op_determinism()
