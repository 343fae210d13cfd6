"""One sweep of block Gibbs: for each superblock, gather the tails, sample, write the owned rows,
then (when sharded) exchange that block's boundary states.

Two layouts of the same sweep:

- `sweep`: one chain, state entries `[rows, ...]`; every sampler works here through
  `sample_per_node` (the node indices drive the per-node random stream).
- `sweep_chains`: every chain at once, state entries `[rows, chains, ...]` (chains innermost).
  A tail read is then a gather of contiguous rows (one row is a node's state in every chain),
  folded into the conditional's field one slot at a time. Samplers take part through
  `sample_chains`, which equals `sample_per_node` under `jax.vmap` bit for bit.

In both, a block's new state is written at its offset in its entry and handed to the plan's
exchange, whose send and receive rows index the same node axis in either layout.
"""

from __future__ import annotations

import jax
from jax import numpy as jnp
from jaxtyping import Array, Int, Key, UInt32

from ..errors import StateError
from .plan import UNROLL_SLOTS, SweepPlan


def block_output_sd(plan: SweepPlan, b: int, batch: tuple[int, ...] = ()):
    """Shape/dtype pytree of free block b's new state: `[rows, *batch, *node_shape]`."""
    n = plan.blocks[b].node_index.shape[0]
    return jax.tree.map(
        lambda sd: jax.ShapeDtypeStruct((n, *batch, *sd.shape), sd.dtype) if isinstance(sd, jax.ShapeDtypeStruct) else sd,
        plan.node_sd[b],
    )


def check_sampler_output(sampler, b: int, out, output_sd) -> None:
    """Raise `StateError` if a sampler returned another structure, shape or dtype than its block's."""
    if jax.tree.structure(out) != jax.tree.structure(output_sd):
        raise StateError(
            f"sampler {b} ({type(sampler).__name__}) returned a state with structure "
            f"{jax.tree.structure(out)}, expected {jax.tree.structure(output_sd)}"
        )
    for got, want in zip(jax.tree.leaves(out), jax.tree.leaves(output_sd)):
        if got.shape != want.shape or got.dtype != want.dtype:
            raise StateError(
                f"sampler {b} ({type(sampler).__name__}) returned {got.dtype}{list(got.shape)} for free "
                f"block {b}, expected {want.dtype}{list(want.shape)} (see node_shape_dtypes)"
            )


def gather_tails(plan: SweepPlan, b: int, state: list) -> list[list]:
    """Per interaction group and tail, the tail states `[n, k, ...]` of free block b (one chain)."""
    tables = plan.blocks[b]
    return [
        [jax.tree.map(lambda x: jnp.take(x, p, axis=0), state[e]) for e, p in zip(entries, positions)]
        for entries, positions in zip(plan.tail_entries[b], tables.tail_positions)
    ]


def update_block(plan: SweepPlan, b: int, key: Key[Array, ""], state: list, sampler_state):
    """Free block b's new state and sampler state for one chain (any sampler)."""
    tables, sampler = plan.blocks[b], plan.samplers[b]
    output_sd = block_output_sd(plan, b)
    out, sampler_state = sampler.sample_per_node(
        key, tables.node_index, tables.interactions, tables.active, gather_tails(plan, b, state), sampler_state, output_sd
    )
    check_sampler_output(sampler, b, out, output_sd)
    return out, sampler_state


def write_block(plan: SweepPlan, b: int, state: list, out) -> list:
    """Write free block b's new state at its offset, then run the plan's exchange for it."""
    e, offset = plan.entry[b], plan.offset[b]
    state = list(state)
    state[e] = jax.tree.map(lambda g, x: jax.lax.dynamic_update_slice_in_dim(g, x, offset, axis=0), state[e], out)
    if plan.exchange is not None:
        state[e] = plan.exchange(b, state[e], out)
    return state


def sweep(plan: SweepPlan, key: Key[Array, ""], state: list, sampler_states: list) -> tuple[list, list]:
    """One pass over all superblocks of one chain (blocks of a superblock read the same state)."""
    sampler_states = list(sampler_states)
    for group in plan.sampling_order:
        updates = [(b, *update_block(plan, b, key, state, sampler_states[b])) for b in group]
        for b, out, sampler_state in updates:
            state = write_block(plan, b, state, out)
            sampler_states[b] = sampler_state
    return state, sampler_states


def chains_tables(plan: SweepPlan) -> list:
    """Per free block, its sampler's loop-invariant preprocessing (`chains_tables`), done once
    per run of sweeps rather than per sweep."""
    return [s.chains_tables(t.interactions, t.active) for s, t in zip(plan.samplers, plan.blocks)]


def _row_gather(x: Array, rows: Int[Array, "..."]) -> Array:
    # positions come from lowering or sharding and are always in range: no clamping needed
    return x.at[rows].get(mode="promise_in_bounds")


def _column(x: Array, j) -> Array:
    """Column j of `[n, k, ...]` (static or traced j)."""
    if isinstance(j, int):
        return jax.lax.index_in_dim(x, j, axis=1, keepdims=False)
    return jax.lax.dynamic_index_in_dim(x, j, axis=1, keepdims=False)


def _update_block_chains(plan: SweepPlan, b: int, tables, k0, k1, state: list):
    """Free block b's new state `[n, chains, ...]` from the chains-innermost state."""
    positions = plan.blocks[b].tail_positions
    entries = plan.tail_entries[b]
    interactions, active = tables
    gathered = [
        # one gather of every slot at once (XLA runs it as one kernel); per slot in the loop when k is large
        [jax.tree.map(lambda x, p=p: _row_gather(x, p), state[e]) if p.shape[1] <= UNROLL_SLOTS else None for e, p in zip(entries[i], ps)]
        for i, ps in enumerate(positions)
    ]

    def column(i: int, j) -> list:
        # slot j of interaction i: every tail's state for every node of the block, [n, chains, ...]
        return [
            jax.tree.map(lambda x: _column(x, j), g)
            if g is not None
            else jax.tree.map(lambda x, p=p: _row_gather(x, _column(p, j)), state[e])
            for g, e, p in zip(gathered[i], entries[i], positions[i])
        ]

    out_sd = block_output_sd(plan, b, (k0.shape[-1],))
    out, _ = plan.samplers[b].sample_chains(k0, k1, plan.blocks[b].node_index, interactions, active, column, None, out_sd)
    return out


def sweep_chains(plan: SweepPlan, tables: list, k0: UInt32[Array, "1 chains"], k1: UInt32[Array, "1 chains"], state: list) -> list:
    """One sweep of every chain; state entries are `[rows, chains, ...]`, `tables` from
    `chains_tables`, `k0, k1` every chain's key words of this sweep."""
    for group in plan.sampling_order:
        updates = [(b, _update_block_chains(plan, b, tables[b], k0, k1, state)) for b in group]
        for b, out in updates:
            state = write_block(plan, b, state, out)
    return state
