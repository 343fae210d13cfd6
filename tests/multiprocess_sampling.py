"""Run by tests/test_multiprocess.py under `launch_local`: sample a sharded program whose mesh
spans every process's devices and save the samples (rank 0). Also importable for the reference."""

import sys

import numpy as np


def build(n_chains: int = 4):
    import jax
    import jax.numpy as jnp
    import networkx as nx

    import distthrml as dt
    from distthrml.models import IsingEBM, IsingSamplingProgram, hinton_init

    n = 96
    g = nx.random_regular_graph(3, n, seed=5)
    edges = np.array(sorted(g.edges()))
    coloring = nx.coloring.greedy_color(g, "largest_first")
    colors = np.array([coloring[i] for i in range(n)])
    nodes = dt.make_block(dt.SpinNode, n)
    rng = np.random.default_rng(0)
    model = IsingEBM(
        nodes, (nodes[edges[:, 0]], nodes[edges[:, 1]]),
        jnp.asarray(rng.normal(size=n), jnp.float32), jnp.asarray(rng.normal(size=len(edges)), jnp.float32), jnp.array(0.6),
    )
    blocks = [nodes[np.flatnonzero(colors == c)] for c in range(colors.max() + 1)]
    program = IsingSamplingProgram(model, blocks, [])
    init = hinton_init(jax.random.key(1), model, blocks, (n_chains,))
    keys = jax.random.split(jax.random.key(2), n_chains)
    return program, init, keys, [nodes], dt.SamplingSchedule(3, 5, 2)


def main(out_path: str) -> None:
    from distthrml.sharding.distributed import initialize_from_env

    assert initialize_from_env(), "run me under distthrml's launcher"
    import jax

    import distthrml as dt

    program, init, keys, nodes, schedule = build()
    sprog = dt.shard_program(program, jax.device_count())
    samples = dt.sample_states(keys, sprog, schedule, init, [], nodes)
    if jax.process_index() == 0:
        np.savez(out_path, samples=np.asarray(samples[0]), devices=jax.device_count(), processes=jax.process_count(),
                 halo_bytes=sprog.halo_bytes_per_sweep())


if __name__ == "__main__":
    main(sys.argv[1])
