"""Strategy selection on this (CPU-only) machine, and the error for absent hardware."""

from __future__ import annotations

import subprocess
import sys

import pytest
import tensorflow as tf
from hydra.errors import ConfigCompositionException

from bench.core.errors import ConfigError
from bench.core.schema import StrategyName
from bench.pipeline import strategy
from tests.helpers import compose


def test_auto_on_cpu_is_one_device():
    chosen = strategy.select("auto")
    assert chosen is tf.distribute.get_strategy()
    facts = strategy.describe(chosen).record()
    assert facts == {
        "strategy": "DefaultStrategy", "replicas": 1, "devices": [], "device_kinds": ["CPU"],
    }  # fmt: skip


def test_asking_for_a_tpu_without_one_names_the_allowed_values():
    with pytest.raises(
        ConfigError, match=r"strategy=tpu: .*Allowed: auto, tpu, multi_worker"
    ) as info:
        strategy.select("tpu")
    assert (info.value.key, info.value.value) == ("strategy", "tpu")
    assert "strategy=auto" in info.value.fix


def test_unknown_strategy_fails_at_composition_with_the_allowed_values():
    with pytest.raises(ConfigCompositionException) as info:
        compose("strategy=gpu_please")
    assert "expected one of [auto, tpu, multi_worker, mirrored, one_device, cpu]" in str(
        info.value.__cause__
    )


def test_one_device_on_request():
    chosen = strategy.select("one_device")
    assert isinstance(chosen, tf.distribute.OneDeviceStrategy)
    assert strategy.describe(chosen).replicas == 1


def test_a_batch_the_replicas_cannot_share_names_the_batch_sizes_that_would():
    """Two logical CPUs give MirroredStrategy two real replicas (in a fresh process: logical
    devices must be configured before TensorFlow initialises them)."""
    code = (
        "import tensorflow as tf\n"
        "cpu = tf.config.list_physical_devices('CPU')[0]\n"
        "two = [tf.config.LogicalDeviceConfiguration()] * 2\n"
        "tf.config.set_logical_device_configuration(cpu, two)\n"
        "from bench.pipeline import strategy\n"
        "mirrored = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])\n"
        "strategy.check_batch(32, mirrored)\n"
        "strategy.check_batch(33, mirrored)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "ConfigError" in proc.stderr and "batch_size=33" in proc.stderr
    assert "a multiple of 2" in proc.stderr and "batch_size=32 or batch_size=34" in proc.stderr


@pytest.mark.parametrize(
    "tpu, gpus, multi_worker, expected",
    [
        (True, 0, False, StrategyName.tpu),
        (True, 4, True, StrategyName.tpu),  # a TPU answers first
        (False, 4, True, StrategyName.multi_worker),  # TF_CONFIG with several workers
        (False, 4, False, StrategyName.mirrored),
        (False, 1, False, StrategyName.one_device),
        (False, 0, False, StrategyName.cpu),
    ],
)
def test_auto_picks_by_what_the_machine_has(tpu, gpus, multi_worker, expected):
    assert strategy.choose(StrategyName.auto, tpu, gpus, multi_worker) == expected


def test_an_explicit_strategy_is_taken_as_asked():
    assert strategy.choose(StrategyName.mirrored, False, 0, False) == StrategyName.mirrored
    assert strategy.choose(StrategyName.cpu, False, 4, False) == StrategyName.cpu
    with pytest.raises(ConfigError, match="no TPU answered"):
        strategy.choose(StrategyName.tpu, False, 8, False)
