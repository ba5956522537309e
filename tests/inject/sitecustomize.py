"""Test-only fault injection for worker processes (on PYTHONPATH via tests.helpers.inject).

``BENCH_TEST_OOM_ABOVE=N``: training raises TensorFlow's own ResourceExhaustedError, as a
GPU does, when the attempt's global batch is larger than N. Installed as an import hook
so that ``bench.pipeline.train`` is patched when the worker imports it, and nowhere else.

``BENCH_TEST_CPU_REPLICAS=N``: the CPU is split into N logical devices and
``strategy=mirrored`` mirrors over them, as it does over N GPUs.

``BENCH_TEST_HOLD_AT_EPOCH=N``: the worker prints ``[bench-test] holding at epoch N`` when
epoch N (counted from 1) begins, and waits there, as in a long epoch, checking for a stop
as a training step does, until a signal ends it: a test then cuts the run at a known
point, however fast its epochs are.
"""

import importlib.abc
import importlib.machinery
import os
import sys

_LIMIT = os.environ.get("BENCH_TEST_OOM_ABOVE")
_REPLICAS = os.environ.get("BENCH_TEST_CPU_REPLICAS")
_HOLD = os.environ.get("BENCH_TEST_HOLD_AT_EPOCH")


def _patch_train(module) -> None:
    import tensorflow as tf

    real = module.Trainer.run

    def run(self):
        if self.training.spec.batch_size > int(_LIMIT):
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
        return real(self)

    module.Trainer.run = run


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


def _patch_measure(module) -> None:
    import time

    from bench.pipeline import stop

    real = module.EpochRecorder.on_epoch_begin

    def on_epoch_begin(self, epoch, logs=None):
        if epoch + 1 == int(_HOLD):
            print(f"[bench-test] holding at epoch {epoch + 1}", flush=True)
            deadline = time.monotonic() + 600  # a test that never signals still ends
            while time.monotonic() < deadline:
                time.sleep(0.05)  # a signal's handler raises here...
                stop.check()  # ...or, if that was lost, the next step does
        return real(self, epoch, logs)

    module.EpochRecorder.on_epoch_begin = on_epoch_begin


_PATCHES = {}
if _LIMIT:
    _PATCHES["bench.pipeline.train"] = _patch_train
if _REPLICAS:
    _PATCHES["bench.pipeline.strategy"] = _patch_strategy
if _HOLD:
    _PATCHES["bench.pipeline.measure"] = _patch_measure


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
