"""The race as a Hydra sweeper (``hydra/sweeper=race``): the command line's sweep into
candidates, every candidate's config checked before anything runs, rounds launched through
whatever launcher the config names, race.json beside the sweep and the records.

The sweeper class itself lives in ``hydra_plugins.bench_race_sweeper`` (Hydra instantiates
plugins from that package only) and hands its ``sweep`` to :func:`sweep`.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from hydra import compose
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from bench.core.console import say
from bench.core.errors import EXIT_CONFIG_ERROR, ConfigError, UserError
from bench.core.racing import AS_CONFIGURED, Entrant
from bench.core.spec import RunSpec, build
from bench.launch.race import Race

RACES_DIR = "races"  # under results_dir: one JSON per race, for the report
AS_GIVEN = "(the config as given)"  # the candidate of a race that sweeps nothing


def candidates(
    arguments: list[str], compare: tuple[str, ...] = ("backbone",)
) -> tuple[list[str], list[Entrant]]:
    """The overrides every job shares, and one entrant per combination of swept values:
    its candidate is the values of the ``compare`` keys, its configuration the rest.
    When no ``compare`` key is swept, every swept key names the candidates (a race of
    learning rates, say), and there is nothing to tune.

    Raises:
        ConfigError: when ``seed`` is set: the race chooses the seeds.
    """
    common, choices = [], []
    for override in OverridesParser.create().parse_overrides(arguments):
        key = override.get_key_element()
        if key.lstrip("+~") == "seed":
            _refuse_seed(override)
        if override.is_sweep_override():
            choices.append((key, [f"{key}={v}" for v in override.sweep_string_iterator()]))
        else:
            common.append(f"{key}={override.get_value_element_as_str()}")
    keys = [key for key, _ in choices]
    roles = [k in compare for k in keys] if any(k in compare for k in keys) else [True] * len(keys)
    found = []
    for combo in itertools.product(*(values for _, values in choices)):
        chosen = list(zip(combo, roles, strict=True))
        candidate = " ".join(value for value, role in chosen if role)
        config = " ".join(value for value, role in chosen if not role)
        found.append(Entrant(" ".join(combo), list(combo), candidate or AS_GIVEN,
                             config or AS_CONFIGURED))  # fmt: skip
    return common, found or [Entrant(AS_GIVEN, [], AS_GIVEN)]


def _refuse_seed(override) -> None:
    value = (
        ",".join(override.sweep_string_iterator())
        if override.is_sweep_override()
        else override.get_value_element_as_str()
    )
    raise ConfigError(
        "seed", value, "not set in a race",
        "drop seed=...: a race runs seeds 1, 2, ... up to hydra.sweeper.max_seeds",
        why="the race chooses the seeds",
    )  # fmt: skip


def _stop(problems: list[str], total: int) -> None:
    say(f"{len(problems)} of {total} race candidates have config errors; nothing ran:", error=True)
    for line in problems:
        say(f"  {line}", error=True)
    raise SystemExit(EXIT_CONFIG_ERROR)


def sweep(sweeper: Any, arguments: list[str]) -> list:
    """Runs the race for the sweeper's config and launcher; returns the launcher's results.

    Exits with code 2, before anything is trained or written, for a bad sweeper key, a
    ``seed`` on the command line, or a candidate whose config does not compose or validate.
    """
    config: DictConfig = sweeper.config
    settings = sweeper.settings
    params = [f"{k}={v}" for k, v in (sweeper.params or {}).items()]
    try:
        settings.check()
        common, entrants = candidates(params + list(arguments), settings.compare)
    except UserError as error:
        _stop([str(error)], 1)
    specs: dict[tuple[str, int], RunSpec] = {}

    def spec_for(entrant: Entrant, seed: int) -> RunSpec:
        key = (entrant.label, seed)
        if key not in specs:
            overrides = [*common, *entrant.overrides, f"seed={seed}"]
            specs[key] = build(compose(config.hydra.job.config_name, overrides=overrides))
        return specs[key]

    problems = []
    for entrant in entrants:
        try:
            spec_for(entrant, 1)
        except (UserError, HydraException) as error:
            problems.append(f"{entrant.label}: {error}")
    if problems:
        _stop(problems, len(entrants))
    sweep_dir = Path(config.hydra.sweep.dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, sweep_dir / "multirun.yaml")
    returns, launched = [], [0]

    def launch(points: list[tuple[Entrant, int]]) -> None:
        batch = [[*common, *e.overrides, f"seed={seed}"] for e, seed in points]
        returns.append(sweeper.launcher.launch(batch, initial_job_idx=launched[0]))
        launched[0] += len(batch)

    results_dir = Path(spec_for(entrants[0], 1).cfg.results_dir)
    outputs = [sweep_dir / "race.json", results_dir / RACES_DIR / f"{sweep_dir.name}.json"]
    Race(settings, common, entrants, spec_for, launch, outputs).run()
    return returns
