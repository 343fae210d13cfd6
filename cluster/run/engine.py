"""The compiled sampler of a job: the same chunk function, sharded over a mesh or `jax.vmap`ped
on one device; either way the samples are bit for bit the same (distthrml contract 4)."""

from __future__ import annotations

import dataclasses
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from distthrml.block_sampling import SamplingSchedule, sample_with_observation
from distthrml.chains import map_chains
from distthrml.sharding import shard_program, spans_processes, to_global

from ..devices import device_mesh
from ..workloads.build import BuiltModel, partition_model, random_states
from .config import RunConfig
from .observe import JobObserver


@dataclasses.dataclass
class Engine:
    """Runs chunks of a job's chains.

    **Fields:**

    - `model`, `observer`: what is sampled and recorded.
    - `target`: the program or the `ShardedProgram` that is run.
    - `partition`: the `partition.Partition` (None when unsharded).
    - `mesh`: the mesh (None when unsharded).
    - `partition_seconds`: time to partition and shard.
    - `compile_seconds`: time spent compiling so far.
    """

    model: BuiltModel
    observer: JobObserver
    target: object
    partition: object
    mesh: Mesh | None
    partition_seconds: float
    parts: int = 1
    compile_seconds: float = 0.0
    _compiled: dict = dataclasses.field(default_factory=dict)

    @property
    def sharded(self) -> bool:
        return self.mesh is not None

    def place(self, x, replicated: bool = False):
        """Put `x` where the compiled chunks expect it (chain axis over the mesh's chains axis; a
        global array when the mesh spans processes)."""
        if self.mesh is None:
            return x
        spec = P() if replicated else P("chains")
        if spans_processes(self.mesh):
            return to_global(x, self.mesh, spec)
        return jax.device_put(x, NamedSharding(self.mesh, spec))

    def compile(self, schedule: SamplingSchedule, keys, state, carry) -> None:
        """Compile the chunk function of `schedule` for these argument shapes (once per schedule)."""
        if schedule in self._compiled:
            return
        params, static = eqx.partition((self.target, self.observer), eqx.is_array)

        def chunk(params, keys, state, carry):
            target, observer = eqx.combine(params, static)
            spec = self.model.program.gibbs_spec
            init = [state[:, o : o + len(b)] for o, b in zip(spec.block_offsets, spec.free_blocks)]
            one = lambda k, i: sample_with_observation(k, target, schedule, i, [], carry, observer)  # noqa: E731
            return map_chains(one, target, keys, init)

        start = time.perf_counter()
        compiled = jax.jit(chunk).lower(params, keys, state, carry).compile()
        self.compile_seconds += time.perf_counter() - start
        self._compiled[schedule] = (compiled, params)

    def run(self, schedule: SamplingSchedule, keys, state, carry):
        """Run one chunk: returns (final carry, records `[chains, n_samples]`)."""
        compiled, params = self._compiled[schedule]
        return compiled(params, keys, state, carry)


def make_engine(model: BuiltModel, observer: JobObserver, config: RunConfig, devices: list, parts: int,
                assignment: np.ndarray | None = None) -> Engine:
    """Partition and shard `model`'s program over `devices` (or keep it whole for one device).

    **Arguments:**

    - `model`, `observer`: the job's model and observer.
    - `config`: the run config (`sharding` section).
    - `devices`: the devices the run may use.
    - `parts`: number of graph parts.
    - `assignment`: the part of every program index when the partition was made already (by
        the driver of a Ray launch), else None.
    """
    sh = config.sharding
    start = time.perf_counter()
    if parts == 1 and sh.chains_axis == 1:
        return Engine(model, observer, model.program, None, None, time.perf_counter() - start)
    part = partition_model(model, parts, sh.method, sh.seed, assignment=assignment)
    mesh = device_mesh(devices[: sh.chains_axis * parts], sh.chains_axis)
    target = shard_program(model.program, part, mesh)
    return Engine(model, observer, target, part, mesh, time.perf_counter() - start, parts=parts)


def fastest_engine(candidates: list[Engine], schedule: SamplingSchedule, keys, state, carry, rounds: int = 2) -> tuple[Engine, list[float]]:
    """The candidate that runs a chunk of `schedule` fastest (best of `rounds` interleaved runs,
    compilation excluded), and every candidate's seconds. Every candidate samples the same bits
    (contract 4), so the choice changes the speed only.

    **Arguments:**

    - `candidates`: engines of one job (e.g. unsharded and sharded over all cores).
    - `schedule`: the chunk schedule to time (the run's most common one).
    - `keys`, `state`, `carry`: the chunk's inputs.
    - `rounds`: timed runs per candidate.
    """
    for e in candidates:
        e.compile(schedule, e.place(keys), e.place(state), e.place(carry, replicated=True))
    seconds = [float("inf")] * len(candidates)
    for _ in range(rounds):
        for i, e in enumerate(candidates):
            args = (e.place(keys), e.place(state), e.place(carry, replicated=True))
            start = time.perf_counter()
            jax.block_until_ready(e.run(schedule, *args))
            seconds[i] = min(seconds[i], time.perf_counter() - start)
    return candidates[int(np.argmin(seconds))], seconds


def initial_state(model: BuiltModel, chains: int, key) -> jax.Array:
    """Uniformly random initial global states `[chains, n_slots]` (spins or categories).

    **Arguments:**

    - `model`: the built model.
    - `chains`: number of chains.
    - `key`: the run's initial-state key.
    """
    # all nodes share one type, hence one global array: the free blocks laid end to end
    return jnp.concatenate(random_states(key, model.blocks, chains, model.categories), axis=1)
