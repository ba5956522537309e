"""The launcher room: the Hydra side of ``python -m bench.run``. It never imports TensorFlow.

``job`` (one Hydra job: validate the config into a RunSpec, map user errors to exit code 2,
hand the spec to a worker), ``isolate`` (a ``python -m bench.worker`` process per job, or
one shared by a multirun's runs on cached features), ``progress`` (the per-job line, the
multirun callback and its summary table) and ``sweep`` (checking and creating W&B
sweeps). TensorFlow is loaded only in the worker process.
"""
