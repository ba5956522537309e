"""Typed schema behind every config group, registered in Hydra's ConfigStore.

``conf/config.yaml`` lists ``bench_schema`` first in its defaults, so every group option
is merged onto these dataclasses: an unknown key, a wrong type or a value outside an
enum fails when the config is composed, not an hour into training. The config files
themselves travel inside the package as ``bench.conf`` (``CONFIG_PATH``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from enum import Enum

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

CONFIG_MODULE = "bench.conf"  # the repository's conf/, mapped into the package (pyproject)
CONFIG_PATH = f"pkg://{CONFIG_MODULE}"


class Source(str, Enum):
    keras = "keras"
    hub = "hub"


class Loader(str, Enum):
    tfds = "tfds"
    folder = "folder"


class Policy(str, Enum):
    frozen = "frozen"  # feature extractor, BatchNorm in inference mode
    finetune = "finetune"  # everything trainable except BatchNorm
    unfrozen = "unfrozen"  # everything trainable, BatchNorm included (training from scratch)
    top_blocks = "top_blocks"  # the last `blocks` blocks (whole) and what follows, not BatchNorm


class OptimizerName(str, Enum):
    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"
    rmsprop = "rmsprop"


class Schedule(str, Enum):
    constant = "constant"
    cosine = "cosine"
    exponential = "exponential"
    inverse_time = "inverse_time"  # Keras' legacy `decay`: lr / (1 + time_decay * step)
    plateau = "plateau"  # ReduceLROnPlateau on val_loss


class Precision(str, Enum):
    auto = "auto"  # mixed_bfloat16 on TPU, mixed_float16 on GPUs >= 7.0, else float32
    float32 = "float32"
    mixed_float16 = "mixed_float16"
    mixed_bfloat16 = "mixed_bfloat16"


class StrategyName(str, Enum):
    auto = "auto"  # TPU if one answers, else all GPUs, else the CPU
    tpu = "tpu"
    multi_worker = "multi_worker"  # MultiWorkerMirroredStrategy from TF_CONFIG
    mirrored = "mirrored"
    one_device = "one_device"  # OneDeviceStrategy on the first GPU, else the CPU
    cpu = "cpu"  # the default strategy with GPUs hidden


class WandbMode(str, Enum):
    auto = "auto"  # online when W&B credentials are present, offline otherwise
    online = "online"
    offline = "offline"
    disabled = "disabled"


class ServingFormat(str, Enum):
    """The LiteRT exports of a kept model (bench.pipeline.litert)."""

    float32 = "float32"
    float16 = "float16"
    dynamic_int8 = "dynamic_int8"  # int8 weights, activations quantized on the fly
    int8 = "int8"  # full integer, calibrated on a seeded sample of the training split


@dataclass
class BackboneConfig:
    name: str = MISSING
    source: Source = Source.keras
    weights: str = "imagenet"  # imagenet | none | path to a weights file
    hub_handle: str | None = None  # null: the registry's handle for this backbone
    # EfficientNet's stochastic depth; null keeps the builder's 0.2. Other families have none.
    drop_connect_rate: float | None = None
    # BatchNorm moving-average momentum; null keeps the builder's (EfficientNet 0.99,
    # MobileNetV2 0.999). Training from scratch on little data wants ~0.9, or inference-mode
    # statistics lag the weights for hundreds of steps.
    bn_momentum: float | None = None


@dataclass
class DatasetConfig:
    """The three splits and their roles (bench.core.splits): train fits, validation
    selects, test reports. A null ``val_split`` or ``test_split`` is carved out of
    ``train_split`` (seeded, stratified, disjoint); ``test_fraction=0`` without a
    ``test_split`` asks for no test split at all."""

    name: str = MISSING
    loader: Loader = Loader.tfds
    train_split: str = "train"  # a folder's files are its one source
    val_split: str | None = None  # null: carved out of train_split (val_fraction)
    test_split: str | None = None  # null: carved out of train_split (test_fraction)
    val_fraction: float = 0.15  # of train_split, when val_split is null
    test_fraction: float = 0.15  # of train_split, when test_split is null; 0: no test split
    split_seed: int = 0  # the carving's seed: every run of a study sees the same split
    image_key: str = "image"
    label_key: str = "label"
    path: str | None = None  # loader=folder: a class-per-subfolder image directory
    download: bool = True  # tfds: download and prepare when not found in data_dir
    shuffle_buffer: int = 2048
    num_classes: int | None = None  # null: read from the dataset's metadata


@dataclass
class HeadConfig:
    name: str = MISSING
    conv_filters: int = 0  # >0: a Conv2D on the feature map before pooling (the guide's top)
    conv_kernel: int = 7
    batch_norm: bool = False  # after the conv if there is one, else after pooling
    dropout: float = 0.0
    hidden_units: list[int] = field(default_factory=list)
    activation: str = "relu"


@dataclass
class OptimizerConfig:
    name: OptimizerName = MISSING
    lr: float = 1e-3
    momentum: float = 0.0  # sgd, rmsprop
    nesterov: bool = False  # sgd
    weight_decay: float = 0.0  # adamw
    clipnorm: float | None = None
    schedule: Schedule = Schedule.constant
    warmup_epochs: int = 0  # cosine: linear warm-up before the decay
    decay_rate: float = 0.1  # exponential: lr multiplier reached at the last epoch
    time_decay: float = 0.0  # inverse_time: per-step decay
    plateau_factor: float = 0.2
    plateau_patience: int = 5
    min_lr: float = 0.0


@dataclass
class FreezeConfig:
    name: str = MISSING
    policy: Policy = Policy.frozen
    blocks: int = 0  # top_blocks: how many of the backbone's last blocks to unfreeze
    # >0: first train only the head (backbone frozen) for this many epochs, then apply
    # `policy` for `epochs` more, recompiled with the fine-tune optimizer.
    head_epochs: int = 0
    finetune_lr: float | None = None  # null: optimizer.lr / 10 (when finetune_optimizer is null)
    finetune_optimizer: OptimizerConfig | None = None  # null: `optimizer` at finetune_lr


class Flip(str, Enum):
    none = "none"
    horizontal = "horizontal"
    vertical = "vertical"
    horizontal_and_vertical = "horizontal_and_vertical"


@dataclass
class AugmentConfig:
    name: str = MISSING
    flip: Flip = Flip.none
    rotation: float = 0.0  # fraction of a full turn
    translation: float = 0.0  # fraction of height/width
    contrast: float = 0.0


@dataclass
class WandbConfig:
    mode: WandbMode = WandbMode.auto
    project: str = "bench"
    entity: str | None = None
    group: str | None = None  # null: the multirun's sweep directory name
    tags: list[str] = field(default_factory=list)


@dataclass
class ServingConfig:
    formats: list[ServingFormat] = field(default_factory=lambda: list(ServingFormat))
    calibration_images: int = 200  # the full-integer export's sample of the training split
    timed_calls: int = 200  # batch-1 calls timed per format and thread count
    warmup_calls: int = 20
    batch: int = 32  # the throughput's batch


@dataclass
class Config:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    freeze: FreezeConfig = field(default_factory=FreezeConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    batch_size: int = 32  # global batch, split across replicas
    epochs: int = 10
    image_size: int | None = None  # null: the backbone's native resolution (registry)
    seed: int = 42
    precision: Precision = Precision.auto
    jit_compile: str = "auto"  # auto (off for the registry's backbones) | true | false
    deterministic: str = "auto"  # auto (on for CPUs) | true | false: TF op determinism
    steps_per_execution: int = 1  # train steps per call into the compiled graph
    lr_scaling: str = "none"  # none | linear: optimizer.lr x the replicas in sync
    input_cache: str = "auto"  # auto (memory when it fits, else disk) | memory | disk | none
    feature_cache: str = "auto"  # auto (frozen phase, no augmentation, pooled head) | true | false
    feature_cache_dir: str | None = None  # null: <results_dir>/features
    strategy: StrategyName = StrategyName.auto
    results_dir: str = "results/runs"
    data_dir: str | None = None  # null: TFDS_DATA_DIR or ~/tensorflow_datasets
    isolate: bool = True  # run each job in a fresh process (own memory, time, Keras state)
    force: bool = False  # train a point again even when its record is completed
    oom_retry: bool = False  # out of memory: retry in a fresh worker at half the batch (>= 8)
    keep_model: bool = True  # keep the trained model: <results_dir>/models/<run_id>/
    serve: bool = False  # export, quantize and time the kept model when the run completes
    serving: ServingConfig = field(default_factory=ServingConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)


def register() -> None:
    """Registers the schema as ``bench_schema`` (idempotent)."""
    # conf/hydra/launcher/{joblib,submitit_slurm}.yaml carry bench's defaults under the
    # plugins' own option names, so Hydra still checks them against the plugins' schemas
    # and warns that this matching is deprecated; the files work without it too.
    warnings.filterwarnings("ignore", message=".*validated against ConfigStore schema")
    ConfigStore.instance().store(name="bench_schema", node=Config)


def compose(overrides: list[str]) -> DictConfig:
    """The project's config composed with ``overrides``, outside a Hydra app.

    Raises:
        hydra.errors.ConfigCompositionException: for an unknown key, option or bad value.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    register()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))
