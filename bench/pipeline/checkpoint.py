"""A run's checkpoint folder, so that a relaunch continues where a crash, kill or pre-emption
stopped it.

``<results_dir>/checkpoints/<run_id>/`` holds, while the run is unfinished:

- ``<phase>/``: Keras' ``BackupAndRestore`` backup of the phase in progress (model,
  optimizer, epoch), written at the end of every epoch but the phase's last and removed
  by Keras when the phase's ``fit`` ends normally;
- ``<phase>.model.weights.h5`` (or ``<phase>.head.weights.h5`` when the phase kept the
  backbone frozen): the model after a finished phase, so a two-phase run killed in its
  fine-tune phase does not train its head again;
- ``history.jsonl``: every finished epoch's history row and training seconds, because the
  worker's memory dies with it; a re-run epoch is logged again and the later row wins;
- ``<phase>.callbacks.json``: after each epoch, the state of the schedule's callbacks
  (ReduceLROnPlateau's counters and best value) and of the model's random generators
  (dropout's masks), restored with the backup of that epoch;
- ``resumes``: how many times the run was started again.

The folder is deleted when the run completes. What Keras' backup does not restore is
restored here or needs no restoring: a phase resumed at epoch *k* starts its input at
epoch *k* (``resume_epoch``; each epoch's order and augmentation are a function of the
seed and the epoch, bench.pipeline.data), and its callbacks carry on counting.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import tensorflow as tf
import tf_keras as keras

from bench.core.atomic import write as atomic_write
from bench.core.record import HistoryRow
from bench.core.site import Site
from bench.pipeline.model import Built

# What a finished phase left: the whole model, only the head, or the whole model under the
# phase's bare name (as bench wrote it before it kept the head apart).
PHASE_FILES = ("model", "head", "")
# The counters that make a callback's next decision, by its class (Keras resets them in
# on_train_begin, so they are put back after it).
CALLBACK_STATE = {
    "ReduceLROnPlateau": ("wait", "cooldown_counter", "best"),
    "EarlyStopping": ("wait", "best", "best_epoch", "stopped_epoch"),
}
_SAVED_EPOCH = "ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE"  # in Keras' backup (tf_keras)


class RunCheckpoint:
    """The checkpoint folder of one run (one point of a sweep).

    In a multi-worker run the folder is the chief's: every worker reads it, only the chief
    writes it (Keras' backups follow the same rule, each other worker writing its own
    temporary copy). ``scratch`` is this process's own folder, for files no other worker
    may touch (the on-disk input cache); in a one-process run both are the same.
    """

    def __init__(self, site: Site):
        self.dir = site.checkpoint_dir
        self.scratch = site.scratch_dir
        self.writes = site.role.chief
        self._history = self.dir / "history.jsonl"

    def start(self) -> int:
        """Counts this start; returns how many times the run was resumed before it."""
        resumes_file = self.dir / "resumes"
        resumes = int(resumes_file.read_text()) + 1 if self._history.exists() else 0
        if self.writes:
            self.dir.mkdir(parents=True, exist_ok=True)
            resumes_file.write_text(str(resumes))
        return resumes

    def backup(self, phase: str, epochs: int) -> keras.callbacks.BackupAndRestore:
        """Keras' per-epoch backup for ``phase`` (never shared between runs or phases).

        Args:
            phase: The phase's name.
            epochs: The epoch its ``fit`` ends after, counted from 1 over the run.

        Returns:
            The callback, which saves after every epoch but that last one.
        """
        return _Backup(epochs, backup_dir=str(self.dir / phase))

    def resume_epoch(self, phase: str, first: int) -> int:
        """The epoch ``phase``'s fit starts at: one past its backup's last, else ``first``."""
        found = tf.train.latest_checkpoint(str(self.dir / phase / "chief"))
        if not found:
            return first
        saved = int(tf.train.load_checkpoint(found).get_tensor(_SAVED_EPOCH))
        return saved + 1 if saved >= 0 else first

    def callback_state(
        self, phase: str, callbacks: list[keras.callbacks.Callback], resume_at: int
    ) -> keras.callbacks.Callback:
        """A callback that saves ``callbacks``' counters after every epoch and, when the
        phase resumes at epoch ``resume_at`` (:meth:`resume_epoch`), puts back those saved
        after the epoch before it. It must come after them in fit's list (their
        on_train_begin resets them) and before the backup."""
        return _CallbackState(self, self.dir / f"{phase}.callbacks.json", callbacks, resume_at)

    def save_row(self, row: HistoryRow, train_s: float) -> None:
        """Appends one finished epoch."""
        if not self.writes:
            return
        with self._history.open("a") as handle:
            handle.write(json.dumps({**dataclasses.asdict(row), "train_s": train_s}) + "\n")

    def rows(self, phase: str) -> list[tuple[HistoryRow, float]]:
        """The finished epochs of ``phase``, once each (the latest), in order."""
        if not self._history.exists():
            return []
        latest: dict[int, dict] = {}
        for line in self._history.read_text().splitlines():
            if line.strip():
                data = json.loads(line)
                if data["phase"] == phase:
                    latest[data["epoch"]] = data
        return [
            (HistoryRow(**{k: v for k, v in d.items() if k != "train_s"}), d["train_s"])
            for _, d in sorted(latest.items())
        ]

    def phase_done(self, phase: str) -> bool:
        return any(self._phase_file(phase, part).exists() for part in PHASE_FILES)

    def save_phase(self, phase: str, built: Built, backbone_trained: bool) -> None:
        """Keeps what ``phase`` changed: the whole model, or only the head when the backbone
        stayed frozen (a relaunch builds that backbone again as it was).

        Every worker of a multi-worker run saves (reading BatchNorm's synchronised
        statistics is a collective step all must take, as in Keras' own checkpoints); the
        others write theirs into their scratch folder and delete it.
        """
        part, model = ("model", built.model) if backbone_trained else ("head", built.head)
        target = self._phase_file(phase, part)
        if not self.writes:
            self.scratch.mkdir(parents=True, exist_ok=True)
            target = self.scratch / f"{phase}.{part}.discarded.weights.h5"
        model.save_weights(str(target))
        if not self.writes:
            target.unlink()

    def load_phase(self, phase: str, built: Built) -> None:
        """Puts the model back as it was after ``phase``."""
        for part in PHASE_FILES:
            path = self._phase_file(phase, part)
            if path.exists():
                (built.head if part == "head" else built.model).load_weights(str(path))
                return

    def _phase_file(self, phase: str, part: str) -> Path:
        return self.dir / (f"{phase}.{part}.weights.h5" if part else f"{phase}.weights.h5")

    def clear(self) -> None:
        """Removes the folder (the run completed)."""
        if self.writes:
            shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self.scratch, ignore_errors=True)


class _Backup(keras.callbacks.BackupAndRestore):
    """Keras' backup, saved after every epoch but the phase's last: ``fit`` deletes that
    one as soon as it ends, and :meth:`RunCheckpoint.save_phase` keeps the finished phase
    instead (a B0 backup takes about 0.4 s here). A run cut between the two resumes at
    the last epoch and trains it again.

    Args:
        epochs: The epoch the phase's ``fit`` ends after, counted from 1.
        **kwargs: Keras' ``BackupAndRestore`` arguments.
    """

    def __init__(self, epochs: int, **kwargs):
        super().__init__(**kwargs)
        self.last = epochs - 1  # as Keras counts epochs, from 0

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.last:
            super().on_epoch_end(epoch, logs)


class _CallbackState(keras.callbacks.Callback):
    def __init__(self, owner: RunCheckpoint, path: Path, callbacks, resume_at):
        super().__init__()
        self.owner, self.path, self.kept, self.resume_at = owner, path, callbacks, resume_at

    def _saved(self) -> dict:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def on_train_begin(self, logs=None):
        # Found once per fit: walking a B0's layers took about 0.1 s, at every epoch's end.
        self.generators = generators(self.model)
        state = self._saved().get(str(self.resume_at - 1))
        if not state:
            return
        for index, callback in enumerate(self.kept):
            for name, value in state.get(str(index), {}).items():
                setattr(callback, name, value)
        for generator, value in zip(self.generators, state["generators"], strict=True):
            generator.state.assign(value)

    def on_epoch_end(self, epoch, logs=None):
        if not self.owner.writes:
            return
        saved = self._saved()
        saved[str(epoch)] = {
            str(index): {
                name: getattr(callback, name)
                for name in CALLBACK_STATE.get(type(callback).__name__, ())
            }
            for index, callback in enumerate(self.kept)
        }
        saved[str(epoch)]["generators"] = [g.state.numpy().tolist() for g in self.generators]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, lambda handle: json.dump(saved, handle, default=float))


def generators(model: keras.Model) -> list[tf.random.Generator]:
    """The random generators of ``model``'s layers (dropout, stochastic depth), in a stable
    order. Keras' backup leaves them out: a layer without weights is not in the checkpoint."""
    found = []
    for layer in [model, *model.submodules]:
        generator = getattr(getattr(layer, "_random_generator", None), "_generator", None)
        if isinstance(generator, tf.random.Generator):
            found.append(generator)
    return found
