"""Test-only fault injection for worker processes (on PYTHONPATH via tests.conftest.inject).

``BENCH_TEST_OOM_ABOVE=N``: training raises TensorFlow's own ResourceExhaustedError, as a
GPU does, when the attempt's global batch is larger than N. Installed as an import hook
so that ``bench.pipeline.train`` is patched when the worker imports it, and nowhere else.

``BENCH_TEST_CPU_REPLICAS=N``: the CPU is split into N logical devices and
``strategy=mirrored`` mirrors over them, as it does over N GPUs.
"""

import importlib.abc
import importlib.machinery
import os
import sys

_LIMIT = os.environ.get("BENCH_TEST_OOM_ABOVE")
_REPLICAS = os.environ.get("BENCH_TEST_CPU_REPLICAS")


def _patch_train(module) -> None:
    import tensorflow as tf

    real = module.run

    def run(built, data, spec, *args, **kwargs):
        if spec.batch_size > int(_LIMIT):
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
        return real(built, data, spec, *args, **kwargs)

    module.run = run


def _patch_strategy(module) -> None:
    import tensorflow as tf

    (cpu,) = tf.config.list_physical_devices("CPU")
    count = int(_REPLICAS)
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    )
    real = tf.distribute.MirroredStrategy
    devices = [f"/cpu:{index}" for index in range(count)]
    tf.distribute.MirroredStrategy = lambda: real(devices=devices)


_PATCHES = {}
if _LIMIT:
    _PATCHES["bench.pipeline.train"] = _patch_train
if _REPLICAS:
    _PATCHES["bench.pipeline.strategy"] = _patch_strategy


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        patch = _PATCHES.get(name)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            patch(module)

        spec.loader.exec_module = exec_module
        return spec


if _PATCHES:
    sys.meta_path.insert(0, _Finder())
