"""Training: ``model.fit`` per phase, then the test split; everything measured."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import tensorflow as tf
import tf_keras as keras

from bench.core.plan import Phase
from bench.core.record import HistoryRow, PhaseMetrics
from bench.core.spec import RunSpec
from bench.pipeline import freeze, measure, optim, stop
from bench.pipeline.checkpoint import RunCheckpoint
from bench.pipeline.data import Data
from bench.pipeline.features import FeatureData
from bench.pipeline.model import Built


@dataclass
class TrainResult:
    """What training measured; ``history`` holds one row per epoch."""

    history: list[HistoryRow] = field(default_factory=list)
    phases: dict[str, PhaseMetrics] = field(default_factory=dict)
    train_time_s: float = 0.0
    test_accuracy: float | None = None
    params_total: int = 0
    params_trainable: int = 0


@dataclass
class Training:
    """Everything training needs, decided before it starts.

    ``phases`` come from the run's plan at the replicas in sync (bench.core.plan); a phase
    that keeps the backbone frozen trains the head on ``features`` when the cache gave them
    (the same weights as the model's head) instead of running the backbone. ``checkpoint``
    backs each epoch up; a run that has one resumes from it. ``on_epoch`` gets each history
    row as it is produced (W&B).
    """

    built: Built
    data: Data | None  # None: only compiling (bench.pipeline.speed, tests)
    spec: RunSpec
    strategy: tf.distribute.Strategy
    phases: tuple[Phase, ...]
    features: FeatureData | None = None
    checkpoint: RunCheckpoint | None = None
    on_epoch: Callable[[HistoryRow], None] | None = None
    jit_compile: bool = False


class Trainer:
    """Trains every phase, then evaluates the test split. ``run()`` returns the result;
    if it raises, ``result`` still holds the epochs that finished (the failed record's)."""

    def __init__(self, training: Training):
        self.training = training
        self.result = TrainResult()

    def run(self) -> TrainResult:
        t, done = self.training, 0
        steps = epoch_steps(t.data, t.spec.batch_size)
        for phase in t.phases:
            self._phase(phase, steps, done)
            done += phase.epochs
        last = t.phases[-1]
        self.result.test_accuracy = evaluate_test(t.built, t.data, t.features, last)
        return self.result

    def _phase(self, phase: Phase, steps: int, done: int) -> None:
        """One phase: restored whole when the checkpoint finished it, else fitted from the
        epoch the checkpoint reached."""
        t, result = self.training, self.result
        on_features = t.features is not None and phase.frozen
        fitted = t.built.head if on_features else t.built.model
        prepare_phase(t, fitted, phase, steps)
        result.params_total, result.params_trainable = t.built.parameter_counts()
        recorder = measure.EpochRecorder(
            phase.name, t.on_epoch, on_saved=t.checkpoint.save_row if t.checkpoint else None
        )
        earlier = recorder.restore(t.checkpoint.rows(phase.name) if t.checkpoint else [])
        if t.checkpoint and t.checkpoint.phase_done(phase.name):
            t.checkpoint.load_phase(phase.name, t.built)
            result.history.extend(recorder.rows)
            result.phases[phase.name] = recorder.phase_metrics(t.data.train_examples, earlier)
            result.train_time_s += earlier
            return
        source = t.features if on_features else t.data
        self._fit(fitted, source, phase, (steps, done, earlier), recorder)
        if t.checkpoint:
            t.checkpoint.save_phase(phase.name, t.built, backbone_trained=not phase.frozen)

    def _fit(self, fitted, source, phase: Phase, where: tuple[int, int, float], recorder) -> None:
        """``fit`` over the phase's epochs; ``where`` is (steps per epoch, epochs done
        before the phase, seconds a resumed phase had already trained)."""
        t, result = self.training, self.result
        steps, done, earlier = where
        schedule = optim.callbacks(phase.optimizer)
        first = t.checkpoint.resume_epoch(phase.name, done) if t.checkpoint else done
        end = done + phase.epochs
        kept = [t.checkpoint.callback_state(phase.name, schedule, first),
                t.checkpoint.backup(phase.name, end)] if t.checkpoint else []  # fmt: skip
        start = time.perf_counter()
        try:
            fitted.fit(
                # The input from the epoch Keras resumes at: epoch e's order and draws are
                # the same whether or not the run was cut before it (bench.pipeline.data).
                source.epochs(first, end),
                steps_per_epoch=steps,
                validation_data=source.val,
                initial_epoch=done,
                epochs=end,
                # A NaN or infinite loss stops at once; recorder.diverged() then names it.
                # The recorder saves each epoch's row, and the schedule acts on the epoch
                # (ReduceLROnPlateau lowers the rate), before the backup saves the epoch.
                callbacks=[keras.callbacks.TerminateOnNaN(), recorder, *schedule, *kept,
                           stop.StopOnRequest()],
                verbose=1 if sys.stdout.isatty() else 2,
            )  # fmt: skip
        finally:
            wall = time.perf_counter() - start + earlier
            result.train_time_s += wall
            result.history.extend(recorder.rows)
            result.phases[phase.name] = recorder.phase_metrics(t.data.train_examples, wall)
        if recorder.diverged():
            raise recorder.diverged()


def run(training: Training) -> TrainResult:
    """Trains every phase and evaluates the test split (see :class:`Trainer`)."""
    return Trainer(training).run()


def epoch_steps(data: Data, batch_size: int) -> int:
    """Batches in one training epoch: fit takes exactly that many from the epoch-indexed
    input (counted once when the split's size is unknown)."""
    if data.train_examples:
        return optim.steps_per_epoch(data.train_examples, batch_size, data.drop_remainder)
    return int(data.train.reduce(0, lambda count, _: count + 1))


def prepare_phase(training: Training, fitted: keras.Model, phase: Phase, steps: int) -> None:
    """Applies the phase's freeze policy to the backbone and compiles ``fitted`` (the model,
    or its head on cached features) with the phase's optimizer, in the strategy's scope."""
    built, spec = training.built, training.spec
    with training.strategy.scope():
        if built.backbone is not None:  # None: only the head was built (cached features)
            freeze.apply(
                built.backbone, phase.policy, spec.cfg.freeze.blocks, spec.backbone.block_of
            )
        fitted.compile(
            optimizer=optim.build(phase.optimizer, steps, phase.epochs),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=training.jit_compile,
            steps_per_execution=spec.cfg.steps_per_execution,
        )
        create_variables(fitted)


def create_variables(fitted: keras.Model) -> None:
    """Creates the compiled model's optimizer slots and metric totals now, not in ``fit``.

    A ``tf.function`` whose first call creates variables is traced a second time (so
    that later calls cannot create any), and Keras creates these inside the first training
    step: that second trace of B0's train step was about 2 s of a demo run's first epoch
    (docs/performance.md). Created here, with the same zero initial values, the step is
    traced once. Labels are class indices (one per image), as the data step gives them.
    """
    optimizer = fitted.optimizer
    if isinstance(optimizer, keras.optimizers.legacy.Optimizer):
        optimizer._create_all_weights(fitted.trainable_variables)  # Keras' own idiom (hdf5)
    else:
        optimizer.build(fitted.trainable_variables)
    predicted = tf.zeros((1, fitted.output_shape[-1]))
    fitted.compiled_loss.build(predicted)
    fitted.compiled_metrics.build(predicted, tf.zeros((1,), tf.int64))


def evaluate_test(
    built: Built, data: Data, features: FeatureData | None, last: Phase
) -> float | None:
    """The final model's accuracy on the test split (from cached features when the last
    phase trained on them: the same numbers, without running the backbone again)."""
    if data.test is None:
        return None
    if features is not None and last.frozen:
        model, test = built.head, features.test
    else:
        model, test = built.model, data.test
    scores = model.evaluate(test, return_dict=True, verbose=0, callbacks=[stop.StopOnRequest()])
    return float(scores["accuracy"])
