"""Optimizers and learning-rate schedules from the ``optimizer`` group."""

from __future__ import annotations

import math

import tf_keras as keras

from bench.core.schema import OptimizerConfig, OptimizerName, Schedule


def build(opt: OptimizerConfig, steps_per_epoch: int, epochs: int):
    """A Keras optimizer with the configured learning rate or schedule.

    Args:
        opt: The optimizer config.
        steps_per_epoch: Training steps per epoch (schedules decay per step).
        epochs: Epochs this optimizer will run for.
    """
    lr = learning_rate(opt, steps_per_epoch * epochs, steps_per_epoch)
    common = {"learning_rate": lr, "clipnorm": opt.clipnorm}
    name = OptimizerName(opt.name)
    # Keras' legacy optimizers apply each variable's update as one fused op (ApplyAdam,
    # ApplyMomentum, ...), the same update rule as the new ones. The new ones trace it as
    # many small ops per variable: tracing EfficientNet-B0's first training step took 10.2
    # s with the new Adam and 5.1 s with the legacy one (benchmarks/first_step.py,
    # docs/benchmarks.md). AdamW has no legacy form.
    legacy = keras.optimizers.legacy
    if name == OptimizerName.sgd:
        return legacy.SGD(momentum=opt.momentum, nesterov=opt.nesterov, **common)
    if name == OptimizerName.rmsprop:
        return legacy.RMSprop(momentum=opt.momentum, **common)
    if name == OptimizerName.adamw:
        return keras.optimizers.AdamW(weight_decay=opt.weight_decay, **common)
    return legacy.Adam(**common)


def learning_rate(opt: OptimizerConfig, total_steps: int, steps_per_epoch: int):
    """A float, or a Keras LearningRateSchedule stepping per batch."""
    schedule = Schedule(opt.schedule)
    if schedule == Schedule.cosine:
        warmup = min(opt.warmup_epochs * steps_per_epoch, total_steps - 1)
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else opt.lr,
            decay_steps=max(total_steps - warmup, 1),
            alpha=opt.min_lr / opt.lr,
            warmup_target=opt.lr if warmup else None,
            warmup_steps=warmup,
        )
    if schedule == Schedule.inverse_time:
        return keras.optimizers.schedules.InverseTimeDecay(
            opt.lr, decay_steps=1, decay_rate=opt.time_decay
        )
    if schedule == Schedule.exponential:
        return keras.optimizers.schedules.ExponentialDecay(
            opt.lr, decay_steps=max(total_steps, 1), decay_rate=opt.decay_rate
        )
    return opt.lr


def callbacks(opt: OptimizerConfig) -> list[keras.callbacks.Callback]:
    """Callbacks the schedule needs (ReduceLROnPlateau for ``plateau``)."""
    if Schedule(opt.schedule) != Schedule.plateau:
        return []
    return [
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss",
            factor=opt.plateau_factor,
            patience=opt.plateau_patience,
            min_lr=opt.min_lr,
            verbose=1,
        )
    ]


def current_lr(optimizer) -> float:
    """The learning rate the optimizer applies at its current step."""
    lr = optimizer.learning_rate
    if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
        lr = lr(optimizer.iterations)
    return float(keras.backend.get_value(lr))


def steps_per_epoch(examples: int | None, batch_size: int, drop_remainder: bool = False) -> int:
    """Batches per epoch (the last partial one dropped when ``drop_remainder``); 1 when the
    dataset size is unknown (schedules then decay per epoch)."""
    if not examples:
        return 1
    return max((examples // batch_size) if drop_remainder else math.ceil(examples / batch_size), 1)
