"""Test-only fault injection for worker processes (on PYTHONPATH via tests.conftest.inject).

``BENCH_TEST_OOM_ABOVE=N``: training raises TensorFlow's own ResourceExhaustedError, as a
GPU does, when the attempt's global batch is larger than N. Installed as an import hook
so that ``bench.pipeline.train`` is patched when the worker imports it, and nowhere else.
"""

import importlib.abc
import importlib.machinery
import os
import sys

_LIMIT = os.environ.get("BENCH_TEST_OOM_ABOVE")
_TARGET = "bench.pipeline.train"


def _patch(module) -> None:
    import tensorflow as tf

    real = module.run

    def run(built, data, spec, *args, **kwargs):
        if spec.batch_size > int(_LIMIT):
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
        return real(built, data, spec, *args, **kwargs)

    module.run = run


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != _TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            _patch(module)

        spec.loader.exec_module = exec_module
        return spec


if _LIMIT:
    sys.meta_path.insert(0, _Finder())
