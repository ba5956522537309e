"""Where a run computes: its strategy, the devices it sees, the plan's compute request
resolved for them, and the seeds set for that computation.

The first step of a run (bench.pipeline.execute): a strategy the machine lacks, or a batch
its replicas cannot share, is the user's to fix (UserError, exit 2), raised here before
anything is written.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import tensorflow as tf

from bench.core.spec import RunSpec
from bench.pipeline import compute, measure, strategy

_placed = itertools.count(1)  # the runs this process has placed


@dataclass(frozen=True)
class Place:
    """Where the run computes: its strategy, the strategy's facts, and the plan's compute
    request resolved for those devices."""

    strategy: tf.distribute.Strategy
    facts: strategy.Facts
    devices: compute.Devices
    compute: compute.Compute
    job_in_process: int = 1  # 1 in a fresh worker (the record's env.job_in_process)


def settle(spec: RunSpec) -> Place:
    """The strategy and the compute it affords, seeded for the run; device memory counts
    from here.

    Raises:
        UserError: when the strategy cannot be had or the batch does not divide among its
            replicas.
    """
    strat = strategy.select(spec.cfg.strategy)
    strategy.check_batch(spec.batch_size, strat)
    facts = strategy.describe(strat)
    devices = compute.detect(facts)
    resolved = compute.resolve(spec.plan.compute, devices, spec.site.role.workers)
    compute.seeded(spec.cfg.seed, resolved.deterministic)
    measure.reset_device_memory(facts.devices)
    return Place(strat, facts, devices, resolved, next(_placed))
