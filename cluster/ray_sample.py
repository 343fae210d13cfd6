"""A sharded sampling run launched over Ray Train: every worker runs the same sharded program on
a mesh spanning all workers' devices; rank 0's samples come back to the driver as the loop's
return value."""

from __future__ import annotations

import dataclasses

import numpy as np

from .ray_launch import RayLaunch, global_mesh, run_on_workers


@dataclasses.dataclass(frozen=True)
class LatticeJob:
    """A periodic Ising lattice to sample. **Attributes:** `rows`, `cols`, `beta`, `chains`,
    `warmup`, `samples`, `steps_per_sample`, `seed`."""

    rows: int = 16
    cols: int = 16
    beta: float = 0.4
    chains: int = 4
    warmup: int = 4
    samples: int = 5
    steps_per_sample: int = 2
    seed: int = 0


def build_lattice(job: LatticeJob):
    """The program, initial states, keys, observed blocks and schedule of `job` (deterministic)."""
    import jax
    import jax.numpy as jnp

    import distthrml as dt
    from distthrml.models import IsingEBM, IsingSamplingProgram
    from partition.generators import checkerboard_colors, torus_edges

    from .workloads.build import random_states

    n = job.rows * job.cols
    edges, colors = torus_edges(job.rows, job.cols), checkerboard_colors(job.rows, job.cols)
    nodes = dt.make_block(dt.SpinNode, n)
    rng = np.random.default_rng(job.seed)
    model = IsingEBM(nodes, (nodes[edges[:, 0]], nodes[edges[:, 1]]), jnp.asarray(0.1 * rng.normal(size=n), jnp.float32),
                     jnp.asarray(1 + 0.1 * rng.normal(size=len(edges)), jnp.float32), jnp.array(job.beta, jnp.float32))
    blocks = [nodes[np.flatnonzero(colors == c)] for c in (0, 1)]
    init = random_states(jax.random.key(job.seed + 1), blocks, job.chains)
    keys = jax.random.split(jax.random.key(job.seed), job.chains)
    schedule = dt.SamplingSchedule(job.warmup, job.samples, job.steps_per_sample)
    return IsingSamplingProgram(model, blocks, []), init, keys, [nodes], schedule


def sample_sharded(job: LatticeJob, mesh=None) -> np.ndarray:
    """Sample `job` sharded over all devices (of all processes) with METIS; `[chains, samples, nodes]`."""
    import distthrml as dt

    program, init, keys, nodes, schedule = build_lattice(job)
    if mesh is None:
        mesh = global_mesh()
    sharded = dt.shard_program(program, mesh.shape["graph"], mesh)
    return np.asarray(dt.sample_states(keys, sharded, schedule, init, [], nodes)[0])


def sample_on_workers(job: dict):
    """Ray worker function: sample the job on every process's devices; rank 0 returns its samples."""
    import jax

    samples = sample_sharded(LatticeJob(**job), global_mesh())
    if jax.process_index() == 0:
        return {"samples": samples, "processes": jax.process_count(), "devices": jax.device_count()}
    return None


def launch_sampling(job: LatticeJob, launch: RayLaunch, storage: str) -> dict:
    """Sample `job` as a Ray Train run of `launch.workers` processes; returns rank 0's result.

    **Arguments:**

    - `job`: the lattice and schedule.
    - `launch`: the Ray settings.
    - `storage`: Ray Train's storage folder (absolute).
    """
    return run_on_workers(sample_on_workers, dataclasses.asdict(job), launch, storage, name="distthrml-sample")
