"""The worker room, where TensorFlow lives: one run, from spec to record.

``execute`` is the run step by step: ``place`` (``strategy``: TPU, multi-worker, mirrored,
one device or CPU; ``compute``: precision, XLA, seeds), ``data`` (``sources``: TFDS, folder
or the embedded ``datasets/shapes``, carved into roles, into tf.data in the backbone's
input range), ``features`` (the feature cache) and ``model`` (registry backbone +
``heads``), ``freeze`` (which weights train), ``optim`` (optimizers, schedules), ``train``
(phases), ``keep`` (the kept model), ``outcome`` (the record), ``measure`` (time,
throughput, memory, parameters) and ``tracker`` (the run's W&B run). Only
``python -m bench.worker`` (or ``isolate=false``) imports this room to run; the serve's
steps (``exports``) run in its child processes, and to publish a serve to W&B the
launcher imports ``tracker``, which loads no TensorFlow.
"""
