"""Choosing the tf.distribute strategy: TPU, several GPUs, one GPU or the CPU.

Must run first in a worker process: GPU memory growth has to be set before the GPU is
initialised, and multi-worker collectives must be configured at program start.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

import tensorflow as tf

from bench.core import cluster
from bench.core.errors import ConfigError
from bench.core.schema import StrategyName


def select(name: StrategyName | str) -> tf.distribute.Strategy:
    """Creates the strategy named by the ``strategy`` config key (see :func:`choose`).

    Raises:
        ConfigError: if the named hardware is not there.
    """
    name = StrategyName(name)
    if name == StrategyName.cpu:
        tf.config.set_visible_devices([], "GPU")
    gpus = tf.config.list_physical_devices("GPU") if name != StrategyName.cpu else []
    for gpu in gpus:
        # Without growth TF reserves the whole GPU and peak-memory figures mean nothing.
        tf.config.experimental.set_memory_growth(gpu, True)
    resolver = _tpu_resolver() if name in (StrategyName.auto, StrategyName.tpu) else None
    chosen = choose(name, resolver is not None, len(gpus), cluster.role().workers > 1)
    if chosen == StrategyName.tpu:
        return _tpu_strategy(resolver)
    if chosen == StrategyName.multi_worker:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if chosen == StrategyName.mirrored:
        return tf.distribute.MirroredStrategy()
    if chosen == StrategyName.one_device:
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    # CPU: the default strategy. OneDeviceStrategy("/cpu:0") doubles the epoch time on a
    # 2-core machine (its per-step input prefetch competes for the cores; measured here).
    return tf.distribute.get_strategy()


def choose(name: StrategyName, tpu: bool, gpus: int, multi_worker: bool) -> StrategyName:
    """What ``strategy=name`` means on a machine with these resources.

    ``auto`` picks a TPU if one answers, else MultiWorkerMirrored when ``TF_CONFIG``
    describes several workers, else Mirrored over several GPUs, one GPU, or the CPU.

    Raises:
        ConfigError: ``tpu`` without a TPU.
    """
    auto = name == StrategyName.auto
    if tpu and name in (StrategyName.auto, StrategyName.tpu):
        return StrategyName.tpu
    if name == StrategyName.tpu:
        raise ConfigError(
            "strategy", "tpu", [s.value for s in StrategyName],
            "use strategy=auto to take what this machine has",
            why="no TPU answered (no TPU_NAME, no /dev/accel*)",
        )  # fmt: skip
    if name == StrategyName.multi_worker or (auto and multi_worker):
        return StrategyName.multi_worker
    if name == StrategyName.mirrored or (auto and gpus > 1):
        return StrategyName.mirrored
    if name == StrategyName.one_device or (auto and gpus):
        return StrategyName.one_device
    return StrategyName.cpu


def check_batch(batch_size: int, strategy: tf.distribute.Strategy) -> None:
    """Checks that the global batch splits evenly across the strategy's replicas.

    Raises:
        ConfigError: naming the replica count and the nearest batch sizes that divide.
    """
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas == 0:
        return
    lower = max(batch_size // replicas, 1) * replicas
    raise ConfigError(
        "batch_size", batch_size, f"a multiple of {replicas} (the replicas in sync)",
        f"pass batch_size={lower} or batch_size={lower + replicas}",
        why=f"{type(strategy).__name__} splits each global batch across {replicas} replicas",
    )  # fmt: skip


def _tpu_resolver():
    try:
        return tf.distribute.cluster_resolver.TPUClusterResolver()  # TPU_NAME, Colab, GKE
    except ValueError:
        pass
    if glob.glob("/dev/accel*") or os.environ.get("TPU_ACCELERATOR_TYPE"):
        return tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local")  # TPU VM
    return None


def _tpu_strategy(resolver) -> tf.distribute.Strategy:
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def devices(strategy: tf.distribute.Strategy) -> list[str]:
    """Names of the accelerators the strategy uses (``GPU:0``, ``TPU:3``); empty on CPU."""
    kinds = ("GPU", "TPU")
    if not tf.distribute.has_strategy() and strategy is tf.distribute.get_strategy():
        return []  # the default strategy is only chosen for the CPU
    found = [str(d).split("device:")[-1] for d in strategy.extended.worker_devices]
    return [d for d in found if d.split(":")[0] in kinds]


# Classes whose tf.distribute name differs from the one a user asks for.
_PUBLIC_NAMES = {
    "_DefaultDistributionStrategy": "DefaultStrategy",
    "CollectiveAllReduceStrategy": "MultiWorkerMirroredStrategy",
}


@dataclass(frozen=True)
class Facts:
    """What the strategy says of where the run computes (the record's ``env`` fields of
    the same names)."""

    strategy: str  # the public class name, e.g. MirroredStrategy
    replicas: int
    devices: tuple[str, ...]  # accelerators in sync (``GPU:0``...); empty on a CPU
    device_kinds: tuple[str, ...]  # e.g. ("NVIDIA A100-SXM4-40GB",), or ("CPU",)

    def record(self) -> dict:
        """The record's ``env`` fields."""
        return {"strategy": self.strategy, "replicas": self.replicas,
                "devices": list(self.devices), "device_kinds": list(self.device_kinds)}  # fmt: skip


def describe(strategy: tf.distribute.Strategy) -> Facts:
    """The strategy's facts, for the record's ``env`` and the compute the devices afford."""
    kinds = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        kinds.append(details.get("device_name", "GPU"))
    if not kinds and devices(strategy):
        kinds = [os.environ.get("TPU_ACCELERATOR_TYPE", "TPU")]
    name = type(strategy).__name__
    return Facts(
        strategy=_PUBLIC_NAMES.get(name, name),
        replicas=strategy.num_replicas_in_sync,
        devices=tuple(devices(strategy)),
        device_kinds=tuple(sorted(set(kinds)) or ["CPU"]),
    )
