"""``hydra/sweeper=race``: spend seeds only where they decide something (bench.launch.race).

Hydra imports every module of ``hydra_plugins`` when it starts, so this one stays small and
loads bench's race only when a race runs. Hydra executes these modules before it puts them
in ``sys.modules``, which a dataclass with postponed (string) annotations cannot survive:
no ``from __future__ import annotations`` here, and typing's names for the schema.

The race's keys are :class:`bench.core.race_settings.Settings`' fields: the schema below is
built from them, so they are written down once.
"""

import dataclasses
import types
import typing
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from bench.core.race_settings import Settings

TARGET = "hydra_plugins.bench_race_sweeper.race_sweeper.RaceSweeper"


def _schema_type(kind: Any) -> Any:
    """OmegaConf's spelling of a Settings annotation (Optional[...], List[...])."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        (inner,) = [k for k in typing.get_args(kind) if k is not type(None)]
        return Optional[inner]
    if typing.get_origin(kind) is tuple:
        return List[typing.get_args(kind)[0]]
    return kind


def _field(spec: dataclasses.Field) -> tuple:
    kind = _schema_type(spec.type)
    if isinstance(spec.default, tuple):
        default = dataclasses.field(default_factory=lambda d=spec.default: list(d))
    else:
        default = dataclasses.field(default=spec.default)
    return (spec.name, kind, default)


RaceSweeperConf = dataclasses.make_dataclass(
    "RaceSweeperConf",
    [("_target_", str, dataclasses.field(default=TARGET))]
    + [_field(f) for f in dataclasses.fields(Settings)]
    # sweeps from a config file, as the basic sweeper's
    + [("params", Optional[Dict[str, str]], dataclasses.field(default=None))],
)

ConfigStore.instance().store(
    group="hydra/sweeper", name="race", node=RaceSweeperConf, provider="bench"
)


class RaceSweeper(Sweeper):
    """Runs candidates in rounds and drops those shown worse than the leader."""

    def __init__(self, params: Optional[Dict[str, str]] = None, **keys: Any) -> None:
        self.settings = Settings.of(keys)
        self.params = params
        self.config: Optional[DictConfig] = None
        self.launcher: Any = None
        self.hydra_context: Optional[HydraContext] = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: List[str]) -> Any:
        from bench.launch.race_sweep import sweep  # only when a race runs

        return sweep(self, arguments)


def register() -> None:
    """Registers the sweeper with Hydra by hand: Hydra finds plugins by listing the
    ``hydra_plugins`` package's folders, which an editable install (PEP 660) hides behind
    an import hook, so ``pip install -e .`` alone would leave ``hydra/sweeper=race``
    unknown. Registering twice is harmless."""
    Plugins.instance().register(RaceSweeper)
