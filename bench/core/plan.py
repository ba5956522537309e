"""The run decided once: what a validated config means for training, before any device.

Validation, the worker and the record read one :class:`RunPlan`, built from the config by
:func:`of` (``RunSpec.plan``): its phases, whether augmentation changes the images, whether
the feature cache applies (and why not), whether a cache hit lets the worker build only the
head, and the compute settings asked for. What only the devices can tell (the precision a
GPU affords, the replicas in sync) the worker adds on top (bench.pipeline.compute). No
TensorFlow here: the launcher reads the plan too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bench.core.schema import Config, OptimizerConfig, Policy


@dataclass(frozen=True)
class Phase:
    """A stretch of epochs trained under one freeze policy and one optimizer."""

    name: str  # train, or head then finetune
    epochs: int
    policy: Policy
    optimizer: OptimizerConfig

    @property
    def frozen(self) -> bool:
        """Whether the backbone stays frozen in this phase (cached features can stand in)."""
        return self.policy == Policy.frozen


@dataclass(frozen=True)
class ComputeRequest:
    """How the run asks to compute; ``auto`` values are resolved for the device."""

    precision: str
    jit_compile: str
    deterministic: str
    steps_per_execution: int
    input_cache: str
    lr_scaling: str


@dataclass(frozen=True)
class RunPlan:
    """Every decision the config alone settles."""

    phases: tuple[Phase, ...]
    augments: bool  # augmentation changes the training images every epoch
    feature_cache_off: str | None  # why the run cannot train on cached features; None: it can
    compute: ComputeRequest

    @property
    def backbone_trains(self) -> bool:
        """Whether some phase trains the backbone."""
        return any(not phase.frozen for phase in self.phases)

    @property
    def feature_cache(self) -> bool:
        return self.feature_cache_off is None

    def head_only(self, workers: int) -> bool:
        """Whether a feature-cache hit lets the worker build only the head: every phase
        keeps the backbone frozen, and the run is one process (the workers of a multi-worker
        run must build the same variables, and each finds the entry or not on its own)."""
        return self.feature_cache and not self.backbone_trains and workers == 1

    def phases_at(self, replicas: int) -> tuple[Phase, ...]:
        """The phases as trained on ``replicas`` in sync: under ``lr_scaling=linear`` every
        rate of each phase's schedule (its rate and ``min_lr``) is ``replicas`` times the
        configured one."""
        if self.compute.lr_scaling != "linear":
            return self.phases
        return tuple(
            dataclasses.replace(p, optimizer=_scaled(p.optimizer, replicas)) for p in self.phases
        )


def of(cfg: Config) -> RunPlan:
    """The plan of a validated config."""
    request = ComputeRequest(
        cfg.precision.value if hasattr(cfg.precision, "value") else str(cfg.precision),
        cfg.jit_compile, cfg.deterministic, cfg.steps_per_execution, cfg.input_cache,
        cfg.lr_scaling,
    )  # fmt: skip
    return RunPlan(phases(cfg), augments(cfg), feature_cache_off(cfg), request)


def phases(cfg: Config) -> tuple[Phase, ...]:
    """One phase, or a head-only phase and then the fine-tune phase."""
    if not cfg.freeze.head_epochs:
        return (Phase("train", cfg.epochs, cfg.freeze.policy, cfg.optimizer),)
    return (
        Phase("head", cfg.freeze.head_epochs, Policy.frozen, cfg.optimizer),
        Phase("finetune", cfg.epochs, cfg.freeze.policy, finetune_optimizer(cfg)),
    )


def finetune_optimizer(cfg: Config) -> OptimizerConfig:
    """The second phase's optimizer: its own config, or the first's at ``finetune_lr``."""
    if cfg.freeze.finetune_optimizer is not None:
        return cfg.freeze.finetune_optimizer
    return dataclasses.replace(cfg.optimizer, lr=cfg.freeze.finetune_lr or cfg.optimizer.lr / 10)


def augments(cfg: Config) -> bool:
    """Whether the augment config changes the training images."""
    aug = cfg.augment
    flip = aug.flip.value if hasattr(aug.flip, "value") else str(aug.flip)
    return flip != "none" or bool(aug.rotation or aug.translation or aug.contrast)


def feature_cache_off(cfg: Config) -> str | None:
    """Why the run cannot train on cached features, or None when it does.

    It can when some phase keeps the backbone frozen (a frozen run, or the head phase of a
    two-phase run) and no augmentation changes the images; ``auto`` also needs a head
    without a conv layer, whose input is the pooled vector (a feature map is 49 times
    larger at 7x7).
    """
    if cfg.feature_cache == "false":
        return "feature_cache=false"
    if cfg.freeze.policy != Policy.frozen and not cfg.freeze.head_epochs:
        return f"the backbone trains (freeze.policy={cfg.freeze.policy.value})"
    if augments(cfg):
        return f"augmentation changes the images every epoch (augment={cfg.augment.name})"
    if cfg.feature_cache == "auto" and cfg.head.conv_filters:
        return "the head's conv layer needs feature maps (feature_cache=true stores them)"
    return None


def _scaled(opt: OptimizerConfig, factor: int) -> OptimizerConfig:
    """``opt`` with its rates multiplied by ``factor`` (the linear scaling rule)."""
    return dataclasses.replace(opt, lr=opt.lr * factor, min_lr=opt.min_lr * factor)
