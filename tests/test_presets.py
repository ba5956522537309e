"""Each preset trains with its source's recipe, read back from the model as each phase
compiles it; each optimizer and schedule option builds what its name says.

The expected values are the sources' own numbers (the presets' header comments cite them),
written here as literals, not read from the presets.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from bench.core.schema import OptimizerConfig, OptimizerName, Schedule
from bench.pipeline import model, optim, train
from tests.helpers import make_spec, options

# preset: per phase (name, optimizer class, lr at the phase's first step, settings,
# plateau (factor, patience, min_lr) or None, inverse-time decay per step or None)
RECIPES = {
    "keras_io_cifar100": [  # keras-io: SGD(0.2, momentum 0.1, Nesterov), then SGD(0.005)
        ("head", "SGD", 0.2, {"momentum": 0.1, "nesterov": True}, (0.2, 5, 1e-4), None),
        ("finetune", "SGD", 0.005, {"momentum": 0.0, "nesterov": False}, (0.2, 5, 1e-5), None),
    ],
    "guide_cifar10": [  # the guide: Adam(2e-5), then Adam(1e-6, decay=1e-6/50)
        ("head", "Adam", 2e-5, {}, None, None),
        ("finetune", "Adam", 1e-6, {}, None, 1e-6 / 50),
    ],
    "wandb_report": [("train", "Adam", 1e-3, {}, None, None)],  # the report's Adam(1e-3)
}


def test_every_preset_has_a_pinned_recipe():
    assert set(RECIPES) == set(options("experiment")) - {"demo", "smoke"}


@pytest.mark.parametrize("preset", sorted(RECIPES))
def test_a_preset_compiles_each_phase_with_its_sources_optimizer(preset, hub_dir):
    """Each phase as the run prepares it (its freeze policy applied, the model compiled with
    the phase's optimizer), read back from the compiled model."""
    overrides = [f"experiment={preset}", "image_size=32", "epochs=1"]
    source = make_spec(f"experiment={preset}").cfg.backbone.source.value
    overrides += (
        [f"backbone.hub_handle={hub_dir}"] if source == "hub" else ["backbone.weights=none"]
    )
    if len(RECIPES[preset]) == 2:
        overrides.append("freeze.head_epochs=1")
    spec = make_spec(*overrides)
    built = model.build(spec, num_classes=4)
    phases = spec.plan.phases
    assert [p.name for p in phases] == [p[0] for p in RECIPES[preset]]
    for (name, kind, lr, settings, plateau, decay), phase in zip(
        RECIPES[preset], phases, strict=True
    ):
        training = train.Training(built, None, spec, tf.distribute.get_strategy(), phases)
        train.prepare_phase(training, built.model, phase, 10)
        optimizer = built.model.optimizer
        assert type(optimizer).__name__ == kind, name
        assert optim.current_lr(optimizer) == pytest.approx(lr, rel=1e-6)  # at its first step
        config = optimizer.get_config()
        for key, value in settings.items():
            assert config[key] == pytest.approx(value), (name, key)
        callbacks = optim.callbacks(phase.optimizer)
        if plateau:
            (callback,) = callbacks
            assert isinstance(callback, keras.callbacks.ReduceLROnPlateau)
            assert (callback.factor, callback.patience, callback.min_lr) == pytest.approx(plateau)
        else:
            assert callbacks == []
        if decay:  # Keras' legacy decay: lr / (1 + decay * step)
            schedule = config["learning_rate"]
            assert schedule["class_name"] == "InverseTimeDecay"
            assert schedule["config"]["decay_rate"] == pytest.approx(decay)
            assert schedule["config"]["decay_steps"] == 1


# option: (class, the settings its yaml fixes)
OPTIMIZERS = {
    "adam": ("Adam", {"learning_rate": 1e-3}),
    "adamw": ("AdamW", {"learning_rate": 1e-3, "weight_decay": 0.004}),
    "rmsprop": ("RMSprop", {"learning_rate": 1e-3, "momentum": 0.0}),
    "sgd": ("SGD", {"learning_rate": 0.01, "momentum": 0.9, "nesterov": True}),
}


def test_every_optimizer_option_is_pinned():
    assert set(OPTIMIZERS) == set(options("optimizer"))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_each_optimizer_option_builds_its_class_and_settings(name):
    kind, settings = OPTIMIZERS[name]
    built = optim.build(make_spec(f"optimizer={name}").cfg.optimizer, steps_per_epoch=10, epochs=2)
    assert type(built).__name__ == kind
    config = built.get_config()
    for key, value in settings.items():
        assert config[key] == pytest.approx(value), key


@pytest.mark.parametrize("name", ["adam", "rmsprop", "sgd"])
def test_an_optimizer_updates_weights_as_keras_current_optimizer_of_the_same_name(name):
    """bench builds Keras' legacy optimizers (fused update ops: B0's first step traces in
    half the time); their updates must be those of the current classes, the oracle here,
    with clipping and a schedule."""
    cfg = make_spec(f"optimizer={name}", "optimizer.clipnorm=0.5", "optimizer.momentum=0.5",
                    "optimizer.schedule=cosine").cfg.optimizer  # fmt: skip
    ours = optim.build(cfg, steps_per_epoch=5, epochs=2)
    # The oracle takes the config's settings and Keras' own defaults, not bench's object's.
    oracle = {
        "adam": lambda **common: keras.optimizers.Adam(**common),
        "rmsprop": lambda **common: keras.optimizers.RMSprop(momentum=0.5, **common),
        "sgd": lambda **common: keras.optimizers.SGD(momentum=0.5, nesterov=True, **common),
    }[name](learning_rate=optim.learning_rate(cfg, 10, 5), clipnorm=0.5)
    rng = np.random.default_rng(0)
    start = rng.normal(size=(3, 4)).astype(np.float32)
    gradients = [rng.normal(size=(3, 4)).astype(np.float32) for _ in range(6)]
    found = []
    for optimizer in (ours, oracle):
        weights = tf.Variable(start)
        for gradient in gradients:
            optimizer.apply_gradients([(tf.constant(gradient), weights)])
        found.append(weights.numpy())
    assert "legacy" in type(ours).__module__ and "legacy" not in type(oracle).__module__
    np.testing.assert_allclose(found[0], found[1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(found[0], start)  # it did move


def _schedule(schedule: Schedule, **kwargs):
    opt = OptimizerConfig(name=OptimizerName.adam, lr=0.1, schedule=schedule, **kwargs)
    return opt, optim.learning_rate(opt, total_steps=100, steps_per_epoch=10)


def test_each_schedule_option_decays_as_named():
    assert _schedule(Schedule.constant)[1] == 0.1
    _, cosine = _schedule(Schedule.cosine, warmup_epochs=2, min_lr=0.01)
    assert float(cosine(0)) == pytest.approx(0.0)
    assert float(cosine(20)) == pytest.approx(0.1)  # warm-up ends after 2 epochs of 10 steps
    assert float(cosine(100)) == pytest.approx(0.01)  # alpha = min_lr / lr
    _, exponential = _schedule(Schedule.exponential, decay_rate=0.1)
    assert float(exponential(100)) == pytest.approx(0.01)  # lr * decay_rate at the last step
    _, inverse = _schedule(Schedule.inverse_time, time_decay=0.5)
    assert float(inverse(10)) == pytest.approx(0.1 / (1 + 0.5 * 10))
    plateau_opt, plateau = _schedule(Schedule.plateau, plateau_factor=0.5, plateau_patience=3)
    assert plateau == 0.1
    (callback,) = optim.callbacks(plateau_opt)
    assert (callback.monitor, callback.factor, callback.patience) == ("val_loss", 0.5, 3)
    assert optim.callbacks(_schedule(Schedule.cosine)[0]) == []
