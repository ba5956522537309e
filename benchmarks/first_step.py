"""How long a backbone's first training step takes (tracing it) against the steps after it,
with Keras' current optimizer and with its legacy (fused) form.

    python benchmarks/first_step.py [--backbone b0] [--size 32] [--epochs 5]

Builds the backbone from ``tf_keras.applications`` with random weights and a softmax top,
trains it on random images in batches of 32 (1,280 an epoch, 400 validated), and prints the
first two steps and every epoch (its validation included), for ``current`` then
``legacy`` Adam, each in a fresh process (tracing is cached per process).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

BUILDERS = {"b0": "EfficientNetB0", "b3": "EfficientNetB3", "mobilenet_v2": "MobileNetV2"}


def one(kind: str, backbone: str, size: int, epochs: int) -> None:
    """Trains once with the ``kind`` Adam and prints the times."""
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras

    adam = keras.optimizers.legacy.Adam if kind == "legacy" else keras.optimizers.Adam
    base = getattr(keras.applications, BUILDERS[backbone])(
        include_top=False, weights=None, input_shape=(size, size, 3), pooling="avg"
    )
    inputs = keras.Input((size, size, 3))
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(base(inputs)))
    model.compile(adam(0.003), "sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (1280, size, size, 3)).astype("float32")
    y = rng.integers(0, 4, 1280)
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    val = tf.data.Dataset.from_tensor_slices((x[:400], y[:400])).batch(32)
    clock = keras.callbacks.LambdaCallback(**_clock(kind))
    model.fit(train, validation_data=val, epochs=epochs, verbose=0, callbacks=[clock])


def _clock(kind: str) -> dict:
    """Callbacks that print the first two steps and each epoch."""
    started, epoch = {}, [0]

    def end(what: str, label: str) -> None:
        print(f"{kind:>8} {label}: {time.perf_counter() - started[what]:.2f} s", flush=True)

    def batch_end(batch, logs):
        if batch < 2 and epoch[0] == 0:
            end("step", f"epoch 1 step {batch + 1}")

    def epoch_begin(number, logs):
        epoch[0], started["epoch"] = number, time.perf_counter()

    return {
        "on_train_batch_begin": lambda batch, logs: started.update(step=time.perf_counter()),
        "on_train_batch_end": batch_end,
        "on_epoch_begin": epoch_begin,
        "on_epoch_end": lambda number, logs: end("epoch", f"epoch {number + 1}"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", choices=sorted(BUILDERS), default="b0")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--kind", choices=("current", "legacy"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kind:
        import bench  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

        one(args.kind, args.backbone, args.size, args.epochs)
        return
    for kind in ("current", "legacy"):  # a fresh process each: tracing is cached per process
        subprocess.run([sys.executable, __file__, *sys.argv[1:], "--kind", kind], check=True)


if __name__ == "__main__":
    main()
