"""Sampling a mapped model with one shard per chip: chip c is JAX device c, so part p runs on
device `placement[p]` (local emulated devices, or the global devices of Ray-launched processes,
`ray_chips.py`)."""

from __future__ import annotations

import time

import equinox as eqx
import jax
import numpy as np

import distthrml as dt

from ..devices import device_mesh
from ..workloads.build import BuiltModel, random_states
from .config import EmulateConfig


def sample_on_chips(model: BuiltModel, partition, placement: np.ndarray, devices: list, config: EmulateConfig) -> dict:
    """Sample the model with shard p on device `placement[p]`; returns the sharded program,
    the samples `[chains, samples, nodes]` and the measured timings.

    **Arguments:**

    - `model`: the built model.
    - `partition`: its partition.
    - `placement`: chip (= device index) of every part.
    - `devices`: one JAX device per chip.
    - `config`: the chip-system config (its `run:` section).
    """
    r = config.run
    t0 = time.perf_counter()
    sprog = dt.shard_program(model.program, partition, device_mesh([devices[int(c)] for c in placement]))
    shard_s = time.perf_counter() - t0
    keys = jax.random.split(jax.random.key(r.seed), r.chains)
    init = random_states(jax.random.key(r.seed + 1), model.blocks, r.chains, model.categories)
    schedule = dt.SamplingSchedule(r.warmup, r.samples, r.steps_per_sample)

    # filter_jit: the program goes in as arguments (not baked-in constants) and the second call
    # reuses the compiled sweep loop, so `run_s` times sampling, not tracing
    step = eqx.filter_jit(lambda k, sp, i: dt.sample_states(k, sp, schedule, i, [], [model.nodes])[0])

    def go():
        return jax.block_until_ready(step(keys, sprog, init))

    t0 = time.perf_counter()
    go()  # compiles
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    samples = go()
    run_s = time.perf_counter() - t0
    sweeps = r.warmup + r.samples * r.steps_per_sample
    return {
        "sprog": sprog, "samples": np.asarray(samples), "keys": keys, "init": init, "schedule": schedule,
        "measured": {
            "chains": r.chains, "sweeps": sweeps, "shard_s": shard_s, "first_call_s": first_s, "run_s": run_s,
            "seconds_per_sweep": run_s / sweeps, "samples_per_s": r.chains * sweeps / run_s,
            "devices": len(devices), "platform": devices[0].platform, "processes": jax.process_count(),
        },
    }
