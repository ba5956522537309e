"""The errors a user can cause, in one place.

Each carries the key that is wrong, the bad value, what is allowed and the fix, and its
message says all four. The launcher maps every :class:`UserError` raised while a job is
being validated to exit code 2, before anything is trained or written; the same errors
raised later inside a worker (a weights file that does not fit, data that cannot be
found) still end that run with a ``failed`` record naming them.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Exit code of ``python -m bench.run`` when the config is wrong (Hydra uses 1 for any failure).
EXIT_CONFIG_ERROR = 2


class UserError(Exception):
    """Something the user can fix: a key, its bad value, what is allowed, the fix.

    Args:
        key: The config key (dotted) or option group at fault.
        value: The value it had.
        allowed: What it may be (values, a range, a description).
        fix: What to do about it.
        why: Optional detail saying what went wrong with that value.
    """

    def __init__(
        self,
        key: str,
        value: object,
        allowed: str | Iterable[object],
        fix: str,
        why: str | None = None,
    ):
        self.key = key
        self.value = value
        self.allowed = allowed if isinstance(allowed, str) else ", ".join(map(str, allowed))
        self.fix = fix
        self.why = why
        super().__init__(self._message())

    def _message(self) -> str:
        what = f"{self.key}={self.value}"  # as the user would type the override
        why = f": {self.why}" if self.why else " is not allowed"
        return f"{what}{why}. Allowed: {self.allowed}. Fix: {self.fix}"

    def __reduce__(self):  # keeps the fields when the error crosses a process boundary
        return (type(self), (self.key, self.value, self.allowed, self.fix, self.why))


class ConfigError(UserError, ValueError):
    """A config value or combination that cannot run."""


class DataUnavailable(UserError, RuntimeError):
    """The dataset cannot be read here (not prepared, no network, bad path)."""


class WeightsUnavailable(UserError, RuntimeError):
    """Pretrained weights (Keras ImageNet files, a TF Hub handle) cannot be loaded here."""


class Diverged(RuntimeError):
    """The loss became NaN or infinite; training stopped (Keras' TerminateOnNaN)."""


class OutOfMemory(RuntimeError):
    """The run needed more device or host memory than there was."""


class Interrupted(RuntimeError):
    """The run got SIGTERM or SIGINT (pre-emption, scancel, a sweep agent stopping it)."""


class WorkerDied(RuntimeError):
    """The worker process ended without writing its record (killed, out of memory)."""
