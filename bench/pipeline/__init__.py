"""The worker room, where TensorFlow lives: one run, from spec to record.

``execute`` is the run step by step: ``strategy`` (TPU, multi-worker, mirrored, one device
or CPU), ``data`` (TFDS, folder or the embedded ``datasets/shapes`` into tf.data, in the
backbone's input range), ``model`` (registry backbone + ``heads``), ``freeze`` (which
weights train), ``optim`` (optimizers, schedules), ``train`` (phases), ``measure`` (time,
throughput, memory, parameters) and ``tracker`` (the run's W&B run). Only
``python -m bench.worker`` (or ``isolate=false``) imports this room.
"""
