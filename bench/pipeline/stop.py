"""Stopping a run on SIGTERM or SIGINT, at once and for sure.

The signal handler raises :class:`~bench.core.errors.Interrupted` in whatever the main
thread is running, which ends blocking Python work (loading data, building a model) at
once. That exception can be swallowed, though: W&B's console capture calls its callbacks
inside every write to stdout and catches ``Exception`` around them, so a signal that lands
while Keras prints its progress was lost and the run trained on until the launcher's grace
period ran out and it was killed (seen under load: the W&B debug log shows the
``Interrupted`` as "error in stdout callback"). The request therefore also stays set:
:class:`StopOnRequest` checks it at every batch of ``fit``, ``evaluate`` and ``predict``,
and :func:`check` between the steps of a run, each raising it again in bench's own code.
"""

from __future__ import annotations

import signal

import tf_keras as keras

from bench.core.errors import Interrupted

_requested: list[str] = []  # the name of the first stop signal, once one arrived


def install() -> None:
    """Makes SIGTERM and SIGINT stop the run (see the module docstring)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _on_signal)


def _on_signal(signum, frame) -> None:
    if _requested:  # already stopping: a later signal must not cut the record's writing
        return
    _requested.append(signal.Signals(signum).name)
    raise interrupted()


def requested() -> bool:
    """Whether a stop signal arrived."""
    return bool(_requested)


def interrupted() -> Interrupted:
    """The error a stopped run records."""
    name = _requested[0] if _requested else "a signal"
    return Interrupted(f"stopped by {name}; the checkpoint is kept, relaunch to resume")


def check() -> None:
    """Raises :class:`Interrupted` when a stop was requested."""
    if _requested:
        raise interrupted()


class StopOnRequest(keras.callbacks.Callback):
    """Ends ``fit``, ``evaluate`` or ``predict`` at the next batch once a stop was requested."""

    def on_train_batch_end(self, batch, logs=None):
        check()

    def on_test_batch_end(self, batch, logs=None):
        check()

    def on_predict_batch_end(self, batch, logs=None):
        check()

    def on_epoch_begin(self, epoch, logs=None):
        check()
