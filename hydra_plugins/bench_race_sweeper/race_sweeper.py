"""``hydra/sweeper=race``: spend seeds only where they decide something (bench.launch.race).

Hydra imports every module of ``hydra_plugins`` when it starts, so this one stays small and
loads bench's race only when a race runs. Hydra executes these modules before it puts them
in ``sys.modules``, which a dataclass with postponed (string) annotations cannot survive:
no ``from __future__ import annotations`` here, and typing's names for the schema.
"""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class RaceSweeperConf:
    """The race's keys (README, "Deciding")."""

    _target_: str = "hydra_plugins.bench_race_sweeper.race_sweeper.RaceSweeper"
    # auto: test_accuracy when every run has it, else best_val_accuracy
    metric: str = "auto"
    min_seeds: int = 3  # every candidate's first round
    max_seeds: int = 10  # no candidate gets more
    step: int = 1  # seeds added to the survivors each round
    budget_hours: Optional[float] = None  # stop once this much training time is spent
    level: float = 0.95  # of the Holm-adjusted comparisons that drop candidates
    # blocks: paired by seed, seed noise pooled over the candidates racing; pairs: each
    # pair's own paired t (the report's test)
    test: str = "blocks"
    params: Optional[Dict[str, str]] = None  # sweeps from a config file, as the basic one's


ConfigStore.instance().store(
    group="hydra/sweeper", name="race", node=RaceSweeperConf, provider="bench"
)


class RaceSweeper(Sweeper):
    """Runs candidates in rounds and drops those shown worse than the leader."""

    def __init__(
        self,
        metric: str,
        min_seeds: int,
        max_seeds: int,
        step: int,
        budget_hours: Optional[float],
        level: float,
        test: str = "blocks",
        params: Optional[Dict[str, str]] = None,
    ) -> None:
        self.metric, self.min_seeds, self.max_seeds, self.step = metric, min_seeds, max_seeds, step
        self.budget_hours, self.level, self.params = budget_hours, level, params
        self.test = test
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
