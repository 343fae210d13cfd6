"""The batched sweep kernel: many chains in a node-major, chains-innermost layout.

THRML users run chains with `jax.vmap(sample_states)`. Batched naively, every gather of tail
states becomes a gather of one element per (chain, node, slot) from a chains-outermost state,
which XLA on CPU runs slowly. `run_sweeps` is a `jax.custom_batching.custom_vmap` function:
unbatched it is the plain scan of sweeps; under `jax.vmap` (the chains axis) it transposes the
state once to `[nodes, chains, ...]`, runs all sweeps between two observations there, and
transposes back. In that layout a tail read is a gather of contiguous rows (one row = the node's
state in every chain), done one slot at a time and folded into the conditional's field as it
goes, so no `[n, k, chains]` array is ever materialised.

Samplers take part through `AbstractConditionalSampler.sample_chains` (the built-in spin and
categorical Gibbs conditionals under `DiscreteEBMInteraction`s). Their per-chain results are
bit-identical to `sample_per_node` under `jax.vmap` (same per-node random words, same field
accumulated in the same order), which the sharded engine and `tests/test_sharded.py` rely on. A
program with any other sampler, batched program arrays or batched sampler states falls back to
`jax.vmap` of the plain scan.
"""

from __future__ import annotations

from typing import Callable

import equinox as eqx
import jax
from jax import numpy as jnp
from jaxtyping import Array, Int, Key, PyTree

from . import node_rng


def _chains_ready(program) -> bool:
    """Whether every free block's sampler has a chains-innermost kernel for its interactions."""
    return all(
        s.has_chains_kernel(inter) for s, inter in zip(program.samplers, program.per_block_interactions)
    )


def _row_gather(x: Array, rows: Int[Array, " n"]) -> Array:
    # positions come from lowering and are always in range: no clamping needed
    return x.at[rows].get(mode="promise_in_bounds")


def _column(x: Array, j) -> Array:
    """Column j of `[n, k, ...]` (static or traced j)."""
    if isinstance(j, int):
        return jax.lax.index_in_dim(x, j, axis=1, keepdims=False)
    return jax.lax.dynamic_index_in_dim(x, j, axis=1, keepdims=False)


def _sample_block_chains(program, b: int, tables, k0, k1, state: list):
    """New state `[n_b, chains, ...]` of free block b from the chains-innermost global state."""
    inds = program.per_block_interaction_global_inds[b]
    slices = program.per_block_interaction_global_slices[b]
    interactions, active = tables
    gathered = [
        # one gather of every slot at once (XLA runs it as one kernel); per slot inside the loop when k is large
        [jax.tree.map(lambda x, p=p: _row_gather(x, p), state[sd]) if p.shape[1] <= UNROLL_SLOTS else None for sd, p in zip(inds[i], sls)]
        for i, sls in enumerate(slices)
    ]

    def column(i: int, j) -> list:
        # slot j of interaction i: every tail's state for every node of the block, [n_b, chains, ...]
        return [
            jax.tree.map(lambda x: _column(x, j), g)
            if g is not None
            else jax.tree.map(lambda x, p=p: _row_gather(x, _column(p, j)), state[sd])
            for g, sd, p in zip(gathered[i], inds[i], slices[i])
        ]

    spec = program.gibbs_spec
    template = spec.node_shape_struct[spec.free_blocks[b].node_type]
    n, chains = len(spec.free_blocks[b]), k0.shape[-1]
    out_sd = jax.tree.map(lambda sd: jax.ShapeDtypeStruct((n, chains, *sd.shape), sd.dtype), template)
    out, _ = program.samplers[b].sample_chains(
        k0, k1, program.per_block_node_index[b], interactions, active, column, None, out_sd
    )
    return out


def _sweep_chains(program, tables: list, k0, k1, state: list) -> list:
    """One sweep of every chain; `state` entries are `[nodes, chains, ...]`, `tables` the samplers'
    loop-invariant tables (`chains_tables`)."""
    spec = program.gibbs_spec
    state = list(state)
    for group in spec.sampling_order:
        updates = [(b, _sample_block_chains(program, b, tables[b], k0, k1, state)) for b in group]
        for b, out in updates:
            sd, offset = spec.block_sd_index[b], spec.block_offsets[b]
            state[sd] = jax.tree.map(
                lambda g, x: jax.lax.dynamic_update_slice_in_dim(g, x, offset, axis=0), state[sd], out
            )
    return state


# slots per interaction up to which a block's tail states are gathered in one go
UNROLL_SLOTS = 32


def make_run_sweeps(program, sweep: Callable) -> Callable:
    """`run(key, first_step, n_sweeps, state, sampler_states)`: sweeps `first_step ..
    first_step + n_sweeps - 1` of one chain, with the batched kernel under `jax.vmap`.

    **Arguments:**

    - `program`: the `BlockSamplingProgram`.
    - `sweep`: the plain sweep, `(sweep_key, program, state, sampler_states) -> (state, sampler_states)`.
    """
    arrays, static = eqx.partition(program, eqx.is_array)
    chains_ready = _chains_ready(program)

    def run(key: Key[Array, ""], first_step: Int[Array, ""], n_sweeps: int, state: list, sampler_states: list):
        if n_sweeps == 0:
            return state, sampler_states

        def plain(key, first_step, state, sampler_states, arrays):
            prog = eqx.combine(arrays, static)

            def body(c, step):
                return sweep(node_rng.step_key(key, step), prog, *c), None

            steps = first_step + jnp.arange(n_sweeps, dtype=jnp.int32)
            return jax.lax.scan(body, (state, sampler_states), steps)[0]

        batched_run = jax.custom_batching.custom_vmap(plain)

        @batched_run.def_vmap
        def rule(axis_size, in_batched, key, first_step, state, sampler_states, arrays):
            key_b, step_b, state_b, ss_b, arrays_b = in_batched
            if not chains_ready or step_b or any(jax.tree.leaves(arrays_b)) or any(jax.tree.leaves(ss_b)):
                in_axes = tuple(jax.tree.map(lambda b: 0 if b else None, x) for x in in_batched)
                out = jax.vmap(plain, in_axes=in_axes)(key, first_step, state, sampler_states, arrays)
                return out, jax.tree.map(lambda _: True, out)
            prog = eqx.combine(arrays, static)
            # chains-innermost: [nodes, chains, ...] (unbatched entries, e.g. shared clamped ones, broadcast)
            inner = jax.tree.map(
                lambda x, b: jnp.moveaxis(x, 0, 1) if b else jnp.broadcast_to(x[:, None], (x.shape[0], axis_size, *x.shape[1:])),
                state,
                state_b,
            )
            # hoisted out of the sweep loop: e.g. padding folded into the weights
            tables = [
                s.chains_tables(inter, act)
                for s, inter, act in zip(prog.samplers, prog.per_block_interactions, prog.per_block_interaction_active)
            ]

            def body(st, step):
                # every chain's key words of this sweep, [2, chains]: one word contiguous across chains
                if key_b:
                    words = jax.vmap(lambda k: node_rng.key_words(node_rng.step_key(k, step)), out_axes=1)(key)
                else:
                    words = jnp.broadcast_to(node_rng.key_words(node_rng.step_key(key, step))[:, None], (2, axis_size))
                return _sweep_chains(prog, tables, words[0:1], words[1:2], st), None

            steps = first_step + jnp.arange(n_sweeps, dtype=jnp.int32)
            inner = jax.lax.scan(body, inner, steps)[0]
            out_state = jax.tree.map(lambda x: jnp.moveaxis(x, 1, 0), inner)
            return (out_state, sampler_states), (jax.tree.map(lambda _: True, out_state), ss_b)

        return batched_run(key, first_step, state, sampler_states, arrays)

    return run
