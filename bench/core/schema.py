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
    #: The registry's name for it (``b0`` ... ``b7``, ``mobilenet_v2``); set by its option file.
    name: str = MISSING
    #: Where the network comes from: ``keras`` (tf_keras.applications) or ``hub`` (a TF Hub feature
    #: vector).
    source: Source = Source.keras
    #: ``imagenet``, ``none`` (random initial weights) or the path of a weights file.
    weights: str = "imagenet"
    #: A TF Hub handle or local SavedModel folder; null: the registry's handle.
    hub_handle: str | None = None
    #: EfficientNet's stochastic depth; null keeps the builder's 0.2. Other families have none.
    drop_connect_rate: float | None = None
    #: BatchNorm moving-average momentum; null keeps the builder's (EfficientNet 0.99,
    #: MobileNetV2 0.999). Training from scratch on little data wants ~0.9, or inference-mode
    #: statistics lag the weights for hundreds of steps.
    bn_momentum: float | None = None


@dataclass
class DatasetConfig:
    """The three splits and their roles (bench.core.splits): train fits, validation
    selects, test reports. A null ``val_split`` or ``test_split`` is carved out of
    ``train_split`` (seeded, stratified, disjoint); ``test_fraction=0`` without a
    ``test_split`` asks for no test split at all."""

    #: The TFDS name, or ``folder``.
    name: str = MISSING
    #: ``tfds``, or ``folder`` for a class-per-subfolder image directory.
    loader: Loader = Loader.tfds
    #: The TFDS split that trains (a folder's files are its only source).
    train_split: str = "train"
    #: The TFDS split that selects; null: carved out of train_split (val_fraction).
    val_split: str | None = None
    #: The TFDS split that reports; null: carved out of train_split (test_fraction).
    test_split: str | None = None
    #: The share of train_split carved for validation, when val_split is null.
    val_fraction: float = 0.15
    #: The share carved for test, when test_split is null; 0 asks for no test split.
    test_fraction: float = 0.15
    #: The carving's seed: every run of a study sees the same split, whatever its seed.
    split_seed: int = 0
    #: The TFDS feature that holds the image.
    image_key: str = "image"
    #: The TFDS feature that holds the class.
    label_key: str = "label"
    #: loader=folder: the class-per-subfolder image directory.
    path: str | None = None
    #: tfds: download and prepare the data when data_dir does not hold it.
    download: bool = True
    #: How many examples each epoch's shuffle draws from.
    shuffle_buffer: int = 2048
    #: The class count; null: read from the dataset's metadata at run time.
    num_classes: int | None = None


@dataclass
class HeadConfig:
    #: The option's name (``linear``, ``mlp``, ``keras_io``, ``guide_conv``).
    name: str = MISSING
    #: >0: a Conv2D on the feature map before pooling (the guide's top)
    conv_filters: int = 0
    #: The kernel size of the head's conv layer (with ``conv_filters``).
    conv_kernel: int = 7
    #: BatchNorm after the conv layer if there is one, else after pooling.
    batch_norm: bool = False
    #: Dropout before the classifier, in [0, 1).
    dropout: float = 0.0
    #: Dense layers between the pooling and the classifier, by width.
    hidden_units: list[int] = field(default_factory=list)
    #: The hidden layers' activation.
    activation: str = "relu"


@dataclass
class OptimizerConfig:
    #: ``adam``, ``adamw``, ``sgd`` or ``rmsprop``.
    name: OptimizerName = MISSING
    #: The learning rate (the peak rate under a schedule).
    lr: float = 1e-3
    #: sgd and rmsprop: momentum.
    momentum: float = 0.0
    #: sgd: Nesterov momentum.
    nesterov: bool = False
    #: adamw: decoupled weight decay (any other optimizer: a config error when set).
    weight_decay: float = 0.0
    #: Clips each gradient to this norm; null: no clipping.
    clipnorm: float | None = None
    #: How the rate moves over training: constant, cosine, exponential, inverse_time, plateau.
    schedule: Schedule = Schedule.constant
    #: cosine: epochs of linear warm-up before the decay.
    warmup_epochs: int = 0
    #: exponential: the rate's multiplier reached at the last epoch.
    decay_rate: float = 0.1
    #: inverse_time: the per-step decay, lr / (1 + time_decay * step).
    time_decay: float = 0.0
    #: plateau: what the rate is multiplied by when validation loss stalls.
    plateau_factor: float = 0.2
    #: plateau: epochs without improvement before the rate is lowered.
    plateau_patience: int = 5
    #: The lowest rate the cosine and plateau schedules reach.
    min_lr: float = 0.0


@dataclass
class FreezeConfig:
    #: The option's name (``frozen``, ``finetune``, ``unfrozen``, ``top_blocks``, ``two_phase``).
    name: str = MISSING
    #: What trains: frozen, finetune, unfrozen or top_blocks.
    policy: Policy = Policy.frozen
    #: top_blocks: how many of the backbone's last blocks train.
    blocks: int = 0
    #: >0: first train only the head (backbone frozen) for this many epochs, then apply
    #: `policy` for `epochs` more, recompiled with the fine-tune optimizer.
    head_epochs: int = 0
    #: The fine-tune phase's rate; null: optimizer.lr / 10 (when finetune_optimizer is null).
    finetune_lr: float | None = None
    #: The fine-tune phase's optimizer; null: ``optimizer`` at finetune_lr.
    finetune_optimizer: OptimizerConfig | None = None


class Flip(str, Enum):
    none = "none"
    horizontal = "horizontal"
    vertical = "vertical"
    horizontal_and_vertical = "horizontal_and_vertical"


@dataclass
class AugmentConfig:
    #: The option's name (``none``, ``flip``, ``keras_io``).
    name: str = MISSING
    #: Random flips: none, horizontal, vertical, horizontal_and_vertical.
    flip: Flip = Flip.none
    #: Random rotation, as a fraction of a full turn.
    rotation: float = 0.0
    #: Random translation, as a fraction of height and width.
    translation: float = 0.0
    #: Random contrast, as a factor's range around 1.
    contrast: float = 0.0


@dataclass
class WandbConfig:
    #: auto (online with credentials, offline without), online, offline or disabled.
    mode: WandbMode = WandbMode.auto
    #: The W&B project runs go to.
    project: str = "bench"
    #: The W&B entity (user or team); null: the default one.
    entity: str | None = None
    #: The W&B group; null: the multirun's sweep folder's name.
    group: str | None = None
    #: Tags every run of the launch gets (presets add their name).
    tags: list[str] = field(default_factory=list)


@dataclass
class ServingConfig:
    #: The LiteRT exports bench.serve writes and measures.
    formats: list[ServingFormat] = field(default_factory=lambda: list(ServingFormat))
    #: The full-integer export's calibration sample of the training split.
    calibration_images: int = 200
    #: Batch-1 calls timed per format and thread count.
    timed_calls: int = 200
    #: Untimed batch-1 calls before the timed ones.
    warmup_calls: int = 20
    #: The throughput's batch.
    batch: int = 32


@dataclass
class Config:
    #: The backbone axis: ``backbone=<option>`` (conf/backbone).
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    #: The dataset axis and its three splits: ``dataset=<option>`` (conf/dataset).
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    #: The head axis: ``head=<option>`` (conf/head).
    head: HeadConfig = field(default_factory=HeadConfig)
    #: The freeze-policy axis: ``freeze=<option>`` (conf/freeze).
    freeze: FreezeConfig = field(default_factory=FreezeConfig)
    #: The optimizer axis: ``optimizer=<option>`` (conf/optimizer).
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    #: The augmentation axis: ``augment=<option>`` (conf/augment).
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    #: The global batch, split across replicas.
    batch_size: int = 32
    #: Epochs of training (of the fine-tune phase when freeze.head_epochs > 0).
    epochs: int = 10
    #: The input size in pixels; null: the backbone's native resolution (the registry's).
    image_size: int | None = None
    #: The run's seed: its initial weights, order and augmentation draws; part of run_id.
    seed: int = 42
    #: auto (mixed_bfloat16 on TPU, mixed_float16 on GPUs of compute capability 7.0
    #: or more, else float32), or one of them.
    precision: Precision = Precision.auto
    #: XLA for the train step: auto (off for the registry's backbones), true or false.
    jit_compile: str = "auto"
    #: TensorFlow's op determinism: auto (on for CPUs), true or false.
    deterministic: str = "auto"
    #: Train steps per call into the compiled graph.
    steps_per_execution: int = 1
    #: none, or linear: optimizer.lr times the replicas in sync.
    lr_scaling: str = "none"
    #: Where decoded, resized images are kept after epoch 1: auto (memory when they
    #: fit, else disk), memory, disk or none.
    input_cache: str = "auto"
    #: A frozen backbone's features computed once: auto (a frozen phase, no
    #: augmentation, a pooled head), true or false.
    feature_cache: str = "auto"
    #: Where feature-cache entries go; null: <results_dir>/features.
    feature_cache_dir: str | None = None
    #: The tf.distribute strategy: auto, tpu, multi_worker, mirrored, one_device or cpu.
    strategy: StrategyName = StrategyName.auto
    #: Where records, models, locks and checkpoints go.
    results_dir: str = "results/runs"
    #: TFDS' data_dir; null: TFDS_DATA_DIR or ~/tensorflow_datasets.
    data_dir: str | None = None
    #: Runs each job in a worker process, not in the launcher's: a fresh one (its own
    #: memory, time and Keras state), or the one shared_worker allows.
    isolate: bool = True
    #: With isolate=true, a multirun's jobs that train only a head on cached features (and
    #: serve nothing) share one worker process, one after another; false: each a fresh one.
    shared_worker: bool = True
    #: Trains a point again even when its record is completed.
    force: bool = False
    #: Out of memory: retries in a fresh worker at half the batch, down to 8.
    oom_retry: bool = False
    #: Keeps the trained model as a SavedModel: <results_dir>/models/<run_id>/.
    keep_model: bool = True
    #: Exports, quantizes and times the kept model when the run completes.
    serve: bool = False
    #: What bench.serve and serve=true measure.
    serving: ServingConfig = field(default_factory=ServingConfig)
    #: Weights & Biases: mode, project, entity, group, tags.
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
