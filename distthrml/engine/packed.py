"""The multispin path of the one engine: spin entries packed 32 chains per uint32 word, `[W, rows]`
(`distthrml.multispin`), swept through the samplers' packed kernels.

The same plan as the other paths: the same tables, the same superblock order, each block written
at its offset of its entry and handed to the plan's exchange (which then moves packed words: a
sharded run exchanges 32 chains' spins per word). The node axis is axis 1, so that the kernels
vectorise over rows whatever the number of words; a tail read is one gather from the flattened
entry (a gather along axis 1 of `[W, rows]` is laid out node-major by XLA and then transposed,
measured 10-20% slower).
"""

from __future__ import annotations

import jax
from jax import numpy as jnp
from jaxtyping import Array, UInt32

from .. import multispin, node_rng
from .plan import CONCAT_FRACTION, SweepPlan


def pack_state(state: list) -> list:
    """Every bool entry `[chains, rows]` as words `[W, rows]` (other entries unchanged: the
    packed kernels read spin entries only)."""
    return [x if x is None or x.dtype != jnp.bool_ else multispin.pack(x) for x in state]


def unpack_state(state: list, like: list) -> list:
    """The packed entries back to bool `[chains, rows]`, shaped like `like`'s entries."""
    return [x if x is None or y.dtype != jnp.bool_ else multispin.unpack(x, y.shape[0]) for x, y in zip(state, like)]


def _tail_words(x: UInt32[Array, "W rows"], rows) -> UInt32[Array, "W n"]:
    # positions come from lowering or sharding and are always in range
    flat = rows[None, :] + (jnp.arange(x.shape[0], dtype=rows.dtype) * x.shape[1])[:, None]
    return x.reshape(-1).at[flat].get(mode="promise_in_bounds")


def kernel_tables(plan: SweepPlan) -> list:
    """Every block's multispin tables as its kernel reads them (hoisted out of the sweep loop)."""
    return [t.packed.kernel_layout() for t in plan.blocks]


def _update_block(plan: SweepPlan, b: int, packed, g0, g1, state: list) -> UInt32[Array, "W n"]:
    tables = plan.blocks[b]
    entries = plan.tail_entries[b]

    def column(i: int, j: int) -> list:
        return [_tail_words(state[e], p[:, j]) for e, p in zip(entries[i], tables.tail_positions[i])]

    return plan.samplers[b].sample_packed(g0[:, None], g1[:, None], tables.node_index, packed, column)


def _write(plan: SweepPlan, b: int, state: list, out) -> list:
    e, offset = plan.entry[b], plan.offset[b]
    state = list(state)
    g = state[e]
    if out.shape[1] >= CONCAT_FRACTION * g.shape[1]:
        # a new array, which XLA:CPU splits across threads (`plan.CONCAT_FRACTION`)
        parts = [g[:, :offset], out, g[:, offset + out.shape[1] :]]
        state[e] = jnp.concatenate([p for p in parts if p.shape[1]], axis=1)
    else:
        state[e] = jax.lax.dynamic_update_slice_in_dim(g, out, offset, axis=1)
    if plan.exchange is not None:
        state[e] = plan.exchange(b, state[e], out, node_axis=1)
    return state


def sweep_packed(plan: SweepPlan, tables: list, g0: UInt32[Array, " W"], g1: UInt32[Array, " W"], state: list) -> list:
    """One sweep of every chain on the packed state.

    **Arguments:**

    - `plan`: the sweep plan (multispin stream: its `BlockTables` carry `packed` tables).
    - `tables`: `kernel_tables(plan)`.
    - `g0`, `g1`: the chain groups' words of this sweep (`multispin.group_words`).
    - `state`: the packed state entries.
    """
    for group in plan.sampling_order:
        updates = [(b, _update_block(plan, b, tables[b], g0, g1, state)) for b in group]
        for b, out in updates:
            state = _write(plan, b, state, out)
    return state


def sweep_one_chain(plan: SweepPlan, key, state: list) -> tuple[list, list]:
    """One sweep of one chain (a group of one) with sweep key `key`: `(state, outputs)`, the
    state's `[rows]` entries and every block's new state."""
    words = node_rng.key_words(key)
    g0, g1 = multispin.group_words(words[0:1], words[1:2])
    batch = [None if x is None else x[None] for x in state]
    packed = sweep_packed(plan, kernel_tables(plan), g0, g1, pack_state(batch))
    out = [None if x is None else x[0] for x in unpack_state(packed, batch)]
    outputs = [jax.lax.dynamic_slice_in_dim(out[plan.entry[b]], plan.offset[b], plan.blocks[b].node_index.shape[0]) for b in range(len(plan.blocks))]
    return out, outputs
