"""RunSpec: the typed, validated, resolved description of one run.

Built from the composed Hydra config before anything expensive starts. Validation
catches what the schema cannot (cross-key rules, paths, the registry); resolution fills
in values left to defaults (an explicit override beats the backbone's default, which
beats the global default); ``run_id`` is a stable hash of everything that defines the run.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bench.core import backbones, cluster, env_vars, record
from bench.core import plan as run_plan
from bench.core import site as run_site
from bench.core.errors import ConfigError
from bench.core.schema import Config, DatasetConfig, Loader, Policy, Source, WandbMode
from bench.core.wandb_mode import has_credentials

# Keys that say where or how a run is executed, not what it is: they stay out of run_id.
# The speed knobs are here too: with or without them a run computes the same thing.
NOT_IDENTITY = (
    "results_dir", "data_dir", "isolate", "shared_worker", "force", "oom_retry", "wandb",
    "dataset.download", "jit_compile", "steps_per_execution", "input_cache", "feature_cache",
    "feature_cache_dir", "deterministic", "keep_model", "serve", "serving",
)  # fmt: skip
# Keys added after records existed, hashed only when they differ from the value that
# behaves as bench did before them: the points of an earlier sweep keep their run_id.
HASHED_WHEN_NOT = {"lr_scaling": "none"}
SWITCHES = ("auto", "true", "false")
INPUT_CACHES = ("auto", "memory", "disk", "none")
LR_SCALINGS = ("none", "linear")
_MIN_IMAGE_SIZE = 32  # the smallest input Keras EfficientNet and MobileNetV2 accept


@dataclass
class JobInfo:
    """Where a run sits in its launch (Hydra multirun, sweep agent, single run)."""

    num: int = 0
    total: int | None = None
    output_dir: str | None = None
    group: str | None = None
    experiment: str | None = None
    overrides: list[str] = field(default_factory=list)
    attempt: str | None = None  # unique per launch: tells this attempt's record from older ones
    batch_size: int | None = None  # trained at instead of cfg.batch_size (oom_retry lowered it)


@dataclass
class RunSpec:
    """A validated run: its typed config, its stable id and its launch context."""

    cfg: Config
    run_id: str
    job: JobInfo

    def config_dict(self) -> dict[str, Any]:
        """The resolved config as a plain dict (enums as strings), axes at the top."""
        container = OmegaConf.to_container(OmegaConf.structured(self.cfg), enum_to_str=True)
        container["experiment"] = self.job.experiment
        return container

    def job_dict(self) -> dict[str, Any]:
        """The launch context as a plain dict (the record's ``job`` block)."""
        return dataclasses.asdict(self.job)

    def to_json(self) -> str:
        """Serialises the spec for a worker process."""
        return json.dumps(
            {"config": self.config_dict(), "run_id": self.run_id, "job": self.job_dict()}
        )

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        """Rebuilds a spec written by :meth:`to_json`, re-checking it against the schema."""
        data = json.loads(text)
        return cls.of(data["config"], data["run_id"], JobInfo(**data["job"]))

    @classmethod
    def of(cls, config: dict[str, Any], run_id: str, job: JobInfo | None = None) -> RunSpec:
        """The spec behind a :meth:`config_dict` (a record's ``config``), re-checked against
        the schema: keys added since fill in with their defaults."""
        config = dict(config)
        experiment = config.pop("experiment", None)
        job = job or JobInfo(experiment=experiment)
        return cls(cfg=_typed(config), run_id=run_id, job=job)

    @property
    def batch_size(self) -> int:
        """The global batch this attempt trains at: ``cfg.batch_size`` unless lowered."""
        return self.job.batch_size or self.cfg.batch_size

    def at_batch_size(self, batch_size: int) -> RunSpec:
        """The same run (same ``run_id``) as a new attempt at a smaller global batch."""
        job = dataclasses.replace(self.job, batch_size=batch_size, attempt=uuid.uuid4().hex)
        return RunSpec(cfg=self.cfg, run_id=self.run_id, job=job)

    @property
    def plan(self) -> run_plan.RunPlan:
        """What the config settles for training (bench.core.plan), decided once."""
        return run_plan.of(self.cfg)

    @functools.cached_property
    def site(self) -> run_site.Site:
        """Where the run writes and logs from this process (bench.core.site), decided
        once per spec."""
        return run_site.of(self.cfg.results_dir, self.run_id, self.cfg.wandb.mode)

    @property
    def backbone(self) -> backbones.BackboneInfo:
        return backbones.get(self.cfg.backbone.name)

    @property
    def record_path(self) -> Path:
        return record.path_for(self.cfg.results_dir, self.run_id)


def _typed(config: DictConfig | dict) -> Config:
    merged = OmegaConf.merge(OmegaConf.structured(Config), config)
    return OmegaConf.to_object(merged)


def build(config: DictConfig | dict, job: JobInfo | None = None) -> RunSpec:
    """Validates and resolves a composed config into a RunSpec.

    Args:
        config: The composed config (the Hydra ``cfg`` without its ``hydra`` node).
        job: Launch context; defaults to a single run.

    Returns:
        The RunSpec, with ``image_size`` and paths resolved and ``run_id`` computed.

    Raises:
        ConfigError: naming the key, the bad value, what is allowed and the fix.
    """
    cfg = _typed(config)
    validate(cfg)
    env_vars.check()
    resolve(cfg)
    job = job or JobInfo()
    return RunSpec(cfg=cfg, run_id=run_id(cfg), job=job)


def validate(cfg: Config) -> None:
    """Checks the rules the schema cannot express. Raises ConfigError."""
    if cfg.backbone.name not in backbones.REGISTRY:
        raise ConfigError(
            "backbone.name", cfg.backbone.name, backbones.REGISTRY,
            "pick a registered backbone with backbone=<name>",
        )  # fmt: skip
    _check_weights(cfg.backbone.weights)
    _check_positive(cfg)
    if cfg.image_size is not None and cfg.image_size < _MIN_IMAGE_SIZE:
        raise ConfigError(
            "image_size", cfg.image_size, f">= {_MIN_IMAGE_SIZE}, or null (native resolution)",
            f"pass image_size={_MIN_IMAGE_SIZE} or more, or image_size=null",
            why="too small for EfficientNet and MobileNetV2",
        )  # fmt: skip
    momentum = cfg.backbone.bn_momentum
    if momentum is not None and not 0.0 <= momentum < 1.0:
        raise ConfigError(
            "backbone.bn_momentum", momentum, "[0, 1), or null (the builder's)",
            "pass e.g. backbone.bn_momentum=0.9",
        )  # fmt: skip
    if not 0.0 <= cfg.head.dropout < 1.0:
        raise ConfigError("head.dropout", cfg.head.dropout, "[0, 1)", "pass head.dropout=0.2")
    if cfg.dataset.loader == Loader.folder:
        _check_folder(cfg.dataset.path)
    _check_splits(cfg.dataset)
    _check_freeze(cfg)
    _check_speed(cfg)
    _check_serving(cfg)
    if cfg.backbone.source == Source.hub:
        _check_hub(cfg)
    chief = cluster.role().chief  # other workers of a multi-worker run log nothing
    if cfg.wandb.mode == WandbMode.online and chief and not has_credentials():
        raise ConfigError(
            "wandb.mode", "online", "auto, online (with credentials), offline, disabled",
            "run `wandb login` or set WANDB_API_KEY, or use wandb.mode=auto to log offline",
            why="no W&B credentials on this machine",
        )  # fmt: skip


def _check_weights(weights: str) -> None:
    if weights in ("imagenet", "none"):
        return
    if not Path(weights).expanduser().is_file():
        raise ConfigError(
            "backbone.weights", weights, "imagenet, none, or the path of a weights file (.h5)",
            "check the path, or pass backbone.weights=imagenet or backbone.weights=none",
            why="no such file",
        )  # fmt: skip


def _check_freeze(cfg: Config) -> None:
    freeze = cfg.freeze
    blocks = backbones.get(cfg.backbone.name).blocks
    top = freeze.policy == Policy.top_blocks and cfg.backbone.source == Source.keras
    if top and freeze.blocks > blocks:
        raise ConfigError(
            "freeze.blocks", freeze.blocks, f"1 to {blocks} for {cfg.backbone.name}",
            f"pass freeze.blocks={blocks} or fewer", why=f"{cfg.backbone.name} has {blocks} blocks",
        )  # fmt: skip
    if freeze.policy == Policy.top_blocks and freeze.blocks < 1:
        raise ConfigError(
            "freeze.blocks", freeze.blocks, ">= 1 with freeze.policy=top_blocks",
            "pass freeze.blocks=<how many of the last blocks to unfreeze>",
        )  # fmt: skip
    if freeze.head_epochs < 0:
        raise ConfigError(
            "freeze.head_epochs", freeze.head_epochs, ">= 0", "pass freeze.head_epochs=0 or more"
        )
    if freeze.head_epochs and freeze.policy == Policy.frozen:
        raise ConfigError(
            "freeze.policy", freeze.policy.value, "finetune, unfrozen, top_blocks",
            "pick one of those, or freeze.head_epochs=0 for a frozen run",
            why="freeze.head_epochs>0 trains the head first, then unfreezes per freeze.policy, "
            "and frozen unfreezes nothing",
        )  # fmt: skip


def _check_speed(cfg: Config) -> None:
    # Hydra reads true/false as booleans; the schema's str fields keep them as "True"/"False".
    for key in ("jit_compile", "feature_cache", "deterministic"):
        setattr(cfg, key, getattr(cfg, key).lower())
        if getattr(cfg, key) not in SWITCHES:
            raise ConfigError(key, getattr(cfg, key), SWITCHES, f"pass {key}=auto")
    if cfg.lr_scaling not in LR_SCALINGS:
        raise ConfigError("lr_scaling", cfg.lr_scaling, LR_SCALINGS, "pass lr_scaling=none")
    if cfg.input_cache not in INPUT_CACHES:
        raise ConfigError("input_cache", cfg.input_cache, INPUT_CACHES, "pass input_cache=auto")
    if cfg.steps_per_execution < 1:
        raise ConfigError(
            "steps_per_execution", cfg.steps_per_execution, "a positive integer",
            "pass steps_per_execution=1",
        )  # fmt: skip
    reason = run_plan.feature_cache_off(cfg)
    if cfg.feature_cache == "true" and reason is not None:
        raise ConfigError(
            "feature_cache", "true", "auto or false for this run",
            "pass feature_cache=auto (it turns itself off where it cannot apply)", why=reason,
        )  # fmt: skip


def _check_hub(cfg: Config) -> None:
    handle = cfg.backbone.hub_handle or backbones.get(cfg.backbone.name).hub_handle
    if cfg.backbone.weights != "imagenet":
        raise ConfigError(
            "backbone.weights", cfg.backbone.weights, "imagenet with backbone.source=hub",
            "keep backbone.weights=imagenet, or use backbone.source=keras",
            why="a hub handle brings its own weights",
        )  # fmt: skip
    if cfg.freeze.policy in (Policy.finetune, Policy.top_blocks):
        raise ConfigError(
            "freeze.policy", cfg.freeze.policy.value, "frozen, unfrozen with backbone.source=hub",
            "use freeze.policy=unfrozen or freeze=frozen",
            why="a TF Hub layer trains as a whole (BatchNorm included)",
        )  # fmt: skip
    if cfg.freeze.policy != Policy.frozen and backbones.hub_fine_tunable(handle) is False:
        tf2 = backbones.get(cfg.backbone.name).hub_handle_tf2
        raise ConfigError(
            "backbone.hub_handle", handle, "TF2 SavedModel handles when unfrozen",
            f"pass backbone.hub_handle={tf2}, or keep freeze=frozen",
            why=f"a TF1 hub.Module cannot be fine-tuned (freeze.policy={cfg.freeze.policy.value})",
        )  # fmt: skip


def _check_serving(cfg: Config) -> None:
    if cfg.serve and not cfg.keep_model:
        raise ConfigError(
            "serve", True, "true with keep_model=true, or false",
            "drop keep_model=false, or serve=false", why="serving measures the kept model",
        )  # fmt: skip


def _check_positive(cfg: Config) -> None:
    serving = cfg.serving
    for key, value in (("batch_size", cfg.batch_size), ("epochs", cfg.epochs),
                       ("serving.timed_calls", serving.timed_calls),
                       ("serving.calibration_images", serving.calibration_images),
                       ("serving.batch", serving.batch)):  # fmt: skip
        if value < 1:
            raise ConfigError(key, value, "a positive integer", f"pass {key}=1 or more")
    if cfg.optimizer.lr <= 0:
        raise ConfigError(
            "optimizer.lr", cfg.optimizer.lr, "> 0", "pass a positive rate, e.g. optimizer.lr=1e-3"
        )
    if cfg.optimizer.weight_decay and cfg.optimizer.name.value != "adamw":
        raise ConfigError(
            "optimizer.weight_decay", cfg.optimizer.weight_decay, "0 unless optimizer=adamw",
            "pass optimizer=adamw to decay weights, or drop optimizer.weight_decay",
            why=f"optimizer={cfg.optimizer.name.value} would ignore it",
        )  # fmt: skip


def _check_folder(path: str | None) -> None:
    if not path:
        raise ConfigError(
            "dataset.path", path, "a directory with one subfolder of images per class",
            "pass dataset.path=/path/to/images", why="dataset=folder needs it",
        )  # fmt: skip
    root = Path(path).expanduser()
    classes = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    if len(classes) < 2:
        raise ConfigError(
            "dataset.path", path, "a directory with two or more class subfolders",
            "point dataset.path at the folder that holds one subfolder per class",
            why=f"found {len(classes)} subfolders",
        )  # fmt: skip


def _check_splits(dataset: DatasetConfig) -> None:
    """Three roles, none sharing an example (bench.core.splits)."""
    if dataset.loader == Loader.folder:
        for key in ("val_split", "test_split"):
            if getattr(dataset, key) is not None:
                raise ConfigError(
                    f"dataset.{key}", getattr(dataset, key), "null for dataset=folder",
                    f"drop dataset.{key}; set dataset.val_fraction / dataset.test_fraction",
                    why="a folder's splits are carved out of its files",
                )  # fmt: skip
    carved = 0.0
    if dataset.val_split is None:
        _check_fraction("dataset.val_fraction", dataset.val_fraction, 0.15, low_open=True)
        carved += dataset.val_fraction
    if dataset.test_split is None:
        _check_fraction("dataset.test_fraction", dataset.test_fraction, 0.15, low_open=False)
        carved += dataset.test_fraction
    if carved >= 1.0:
        raise ConfigError(
            "dataset.val_fraction", dataset.val_fraction,
            f"val_fraction + test_fraction below 1 (now {carved:g})",
            "pass e.g. dataset.val_fraction=0.15 dataset.test_fraction=0.15",
            why="nothing would be left to train on",
        )  # fmt: skip
    named = [(k, getattr(dataset, k)) for k in ("train_split", "val_split", "test_split")]
    named = [(k, v) for k, v in named if v is not None]
    for i, (key, value) in enumerate(named):
        for other, same in named[i + 1 :]:
            if value == same and dataset.loader == Loader.tfds:
                raise ConfigError(
                    f"dataset.{other}", same, f"a split other than dataset.{key}'s",
                    f"pass dataset.{other}=null to carve it out of {dataset.train_split}",
                    why=f"the same examples would serve two roles ({key} and {other})",
                )  # fmt: skip


def _check_fraction(key: str, value: float, example: float, low_open: bool) -> None:
    if (value > 0.0 if low_open else value >= 0.0) and value < 1.0:
        return
    allowed = "(0, 1)" if low_open else "[0, 1) (0: no test split)"
    raise ConfigError(key, value, allowed, f"pass e.g. {key}={example}")


def resolve(cfg: Config) -> None:
    """Fills in defaults left open: native image size, absolute paths."""
    if cfg.image_size is None:
        cfg.image_size = backbones.get(cfg.backbone.name).resolution
    if cfg.backbone.source == Source.hub and not cfg.backbone.hub_handle:
        cfg.backbone.hub_handle = backbones.get(cfg.backbone.name).hub_handle
    if cfg.backbone.hub_handle and os.path.isdir(os.path.expanduser(cfg.backbone.hub_handle)):
        cfg.backbone.hub_handle = os.path.abspath(os.path.expanduser(cfg.backbone.hub_handle))
    # Workers may start elsewhere; the command's working directory decides relative paths.
    cfg.results_dir = os.path.abspath(os.path.expanduser(cfg.results_dir))
    # Resolved before a non-chief worker's results_dir moves: all read the chief's cache.
    cfg.feature_cache_dir = os.path.abspath(
        os.path.expanduser(cfg.feature_cache_dir or str(Path(cfg.results_dir) / "features"))
    )
    this = cluster.role()
    if not this.chief:  # a non-chief worker of a multi-worker run (bench.core.cluster)
        cfg.results_dir = cluster.private_results_dir(cfg.results_dir, this)
        cfg.wandb.mode = WandbMode.disabled
    if cfg.data_dir:
        cfg.data_dir = os.path.abspath(os.path.expanduser(cfg.data_dir))
    if cfg.dataset.path:
        cfg.dataset.path = os.path.abspath(os.path.expanduser(cfg.dataset.path))
    if cfg.backbone.weights not in ("imagenet", "none"):
        cfg.backbone.weights = os.path.abspath(os.path.expanduser(cfg.backbone.weights))


# What every record hashed as dataset.val_fraction before splits were carved (a folder's
# validation share); see _drop_unused_carving.
_EARLIER_VAL_FRACTION = 0.2


def _drop_unused_carving(dataset: dict) -> None:
    """Carving keys count only where a role is carved, so a dataset with all three splits
    named keeps the run_id it had before carving existed (its val_fraction hashed as the
    folder default of the time, which it never used)."""
    if dataset.get("test_split") is not None:
        dataset.pop("test_fraction", None)
    if dataset.get("val_split") is not None:
        dataset["val_fraction"] = _EARLIER_VAL_FRACTION
        if "test_fraction" not in dataset:
            dataset.pop("split_seed", None)


def run_id(cfg: Config) -> str:
    """A stable 12-hex-digit hash of what defines the run (seed included)."""
    identity = OmegaConf.to_container(OmegaConf.structured(cfg), enum_to_str=True)
    for dotted in NOT_IDENTITY:
        *parents, leaf = dotted.split(".")
        node = identity
        for parent in parents:
            node = node[parent]
        node.pop(leaf, None)
    for key, earlier in HASHED_WHEN_NOT.items():
        if identity.get(key) == earlier:
            identity.pop(key)
    _drop_unused_carving(identity["dataset"])
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]
