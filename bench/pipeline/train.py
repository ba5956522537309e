"""Training: ``model.fit`` per phase, then the test split; everything measured."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import tensorflow as tf
import tf_keras as keras

from bench.core.record import HistoryRow, PhaseMetrics
from bench.core.schema import OptimizerConfig, Policy
from bench.core.spec import RunSpec
from bench.pipeline import freeze, measure, optim, stop
from bench.pipeline.checkpoint import RunCheckpoint
from bench.pipeline.data import Data
from bench.pipeline.features import FeatureData
from bench.pipeline.model import Built


@dataclass
class Phase:
    """A stretch of epochs trained under one freeze policy and one optimizer."""

    name: str
    epochs: int
    policy: Policy
    optimizer: OptimizerConfig


@dataclass
class TrainResult:
    """What training measured; ``history`` holds one row per epoch."""

    history: list[HistoryRow] = field(default_factory=list)
    phases: dict[str, PhaseMetrics] = field(default_factory=dict)
    train_time_s: float = 0.0
    test_accuracy: float | None = None
    params_total: int = 0
    params_trainable: int = 0


def phases(spec: RunSpec, replicas: int = 1) -> list[Phase]:
    """The run's training phases: one, or a head-only phase and then the fine-tune phase.

    Under ``lr_scaling=linear`` every rate of each phase's schedule (its rate and
    ``min_lr``, which the plateau and cosine schedules end at) is ``replicas`` times the
    configured one.
    """
    cfg = spec.cfg
    if not cfg.freeze.head_epochs:
        found = [Phase("train", cfg.epochs, cfg.freeze.policy, cfg.optimizer)]
    else:
        found = [
            Phase("head", cfg.freeze.head_epochs, Policy.frozen, cfg.optimizer),
            Phase("finetune", cfg.epochs, cfg.freeze.policy, finetune_optimizer(spec)),
        ]
    if cfg.lr_scaling != "linear":
        return found
    return [dataclasses.replace(p, optimizer=scaled(p.optimizer, replicas)) for p in found]


def scaled(opt: OptimizerConfig, factor: int) -> OptimizerConfig:
    """``opt`` with its rates multiplied by ``factor`` (the linear scaling rule)."""
    return dataclasses.replace(opt, lr=opt.lr * factor, min_lr=opt.min_lr * factor)


def backbone_trains(spec: RunSpec) -> bool:
    """Whether some phase trains the backbone (else a feature-cache hit needs no backbone)."""
    return any(phase.policy != Policy.frozen for phase in phases(spec))


def finetune_optimizer(spec: RunSpec) -> OptimizerConfig:
    """The second phase's optimizer: its own config, or the first's at ``finetune_lr``."""
    cfg = spec.cfg
    if cfg.freeze.finetune_optimizer is not None:
        return cfg.freeze.finetune_optimizer
    return dataclasses.replace(cfg.optimizer, lr=cfg.freeze.finetune_lr or cfg.optimizer.lr / 10)


def run(
    built: Built,
    data: Data,
    spec: RunSpec,
    strategy: tf.distribute.Strategy,
    on_epoch: Callable[[HistoryRow], None] | None = None,
    result: TrainResult | None = None,
    checkpoint: RunCheckpoint | None = None,
    features: FeatureData | None = None,
    jit_compile: bool = False,
) -> TrainResult:
    """Trains every phase and evaluates the test split.

    Args:
        built: The model and its parts.
        data: The image pipelines.
        spec: The run.
        strategy: The strategy the model was built under; compiling happens in its scope.
        on_epoch: Called with each history row as it is produced (W&B logging).
        result: Filled in place, so a caller keeps the epochs done if training fails.
        checkpoint: Where each epoch is backed up; a run that has one resumes from it
            (finished phases are loaded, the phase in progress continues after its last
            finished epoch).
        features: Cached backbone features: a phase with a frozen backbone trains the head
            on them (the same weights as the model's head) instead of running the backbone.
        jit_compile: Compile the train step with XLA.
    """
    result = result if result is not None else TrainResult()
    steps = epoch_steps(data, spec.batch_size)
    done = 0
    for phase in phases(spec, strategy.num_replicas_in_sync):
        on_features = features is not None and phase.policy == Policy.frozen
        fitted = built.head if on_features else built.model
        source = features if on_features else data
        prepare_phase(built, fitted, phase, spec, steps, strategy, jit_compile)
        result.params_total, result.params_trainable = built.parameter_counts()
        recorder = measure.EpochRecorder(
            phase.name, on_epoch, on_saved=checkpoint.save_row if checkpoint else None
        )
        earlier = recorder.restore(checkpoint.rows(phase.name) if checkpoint else [])
        if checkpoint and checkpoint.phase_done(phase.name):
            checkpoint.load_phase(phase.name, built)
            result.history.extend(recorder.rows)
            result.phases[phase.name] = recorder.phase_metrics(data.train_examples, earlier)
            result.train_time_s += earlier
            done += phase.epochs
            continue
        schedule_callbacks = optim.callbacks(phase.optimizer)
        first = checkpoint.resume_epoch(phase.name, done) if checkpoint else done
        kept = [checkpoint.callback_state(phase.name, schedule_callbacks, first),
                checkpoint.backup(phase.name)] if checkpoint else []  # fmt: skip
        start = time.perf_counter()
        try:
            fitted.fit(
                # The input from the epoch Keras resumes at: epoch e's order and draws are
                # the same whether or not the run was cut before it (bench.pipeline.data).
                source.epochs(first, done + phase.epochs),
                steps_per_epoch=steps,
                validation_data=source.val,
                initial_epoch=done,
                epochs=done + phase.epochs,
                # A NaN or infinite loss stops at once; recorder.diverged() then names it.
                # The recorder saves each epoch's row, and the schedule acts on the epoch
                # (ReduceLROnPlateau lowers the rate), before the backup saves the epoch.
                callbacks=[
                    keras.callbacks.TerminateOnNaN(),
                    recorder,
                    *schedule_callbacks,
                    *kept,
                    stop.StopOnRequest(),
                ],
                verbose=1 if sys.stdout.isatty() else 2,
            )
        finally:
            wall = time.perf_counter() - start + earlier
            result.train_time_s += wall
            result.history.extend(recorder.rows)
            result.phases[phase.name] = recorder.phase_metrics(data.train_examples, wall)
        if recorder.diverged():
            raise recorder.diverged()
        if checkpoint:
            checkpoint.save_phase(phase.name, built, backbone_trained=phase.policy != Policy.frozen)
        done += phase.epochs
    result.test_accuracy = evaluate_test(built, data, features, phases(spec)[-1])
    return result


def epoch_steps(data: Data, batch_size: int) -> int:
    """Batches in one training epoch: fit takes exactly that many from the epoch-indexed
    input (counted once when the split's size is unknown)."""
    if data.train_examples:
        return optim.steps_per_epoch(data.train_examples, batch_size, data.drop_remainder)
    return int(data.train.reduce(0, lambda count, _: count + 1))


def prepare_phase(
    built: Built,
    fitted: keras.Model,
    phase: Phase,
    spec: RunSpec,
    steps: int,
    strategy: tf.distribute.Strategy,
    jit_compile: bool,
) -> None:
    """Applies the phase's freeze policy to the backbone and compiles ``fitted`` (the model,
    or its head on cached features) with the phase's optimizer, in the strategy's scope."""
    with strategy.scope():
        if built.backbone is not None:  # None: only the head was built (cached features)
            freeze.apply(
                built.backbone, phase.policy, spec.cfg.freeze.blocks, spec.backbone.block_of
            )
        fitted.compile(
            optimizer=optim.build(phase.optimizer, steps, phase.epochs),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=jit_compile,
            steps_per_execution=spec.cfg.steps_per_execution,
        )


def evaluate_test(
    built: Built, data: Data, features: FeatureData | None, last: Phase
) -> float | None:
    """The final model's accuracy on the test split (from cached features when the last
    phase trained on them: the same numbers, without running the backbone again)."""
    if data.test is None:
        return None
    if features is not None and last.policy == Policy.frozen:
        model, test = built.head, features.test
    else:
        model, test = built.model, data.test
    scores = model.evaluate(test, return_dict=True, verbose=0, callbacks=[stop.StopOnRequest()])
    return float(scores["accuracy"])
