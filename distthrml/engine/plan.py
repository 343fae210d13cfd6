"""What one sweep reads: per free block, its sampler, its tables and its place in the state.

A program's own tables index its global state; a shard's are the same tables restricted to the
nodes it owns and re-indexed to its local state (owned nodes, then halo, then one spare slot).
The sweep (`distthrml.engine.sweep`) runs either, so an unsharded program is the one-shard case
of the sharded engine: the same loop and kernels on the same tables, re-indexed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import numpy as np
from jax import numpy as jnp
from jaxtyping import Array, Bool, Int, PyTree

from .._arrays import is_concrete

# slots per interaction up to which a block's tail states are gathered (and its field summed)
# fully unrolled; larger interactions run a loop over slots
UNROLL_SLOTS = 32

# (one-chain sweep, `write_block`; the chains-innermost sweep keeps each block as its own piece
# of the state instead, `sweep_chains`) a block at least this fraction of its state entry is
# written by concatenation into a new array, which XLA:CPU splits across its threads (an update
# written in place runs on one).
# Measured (2 cores, same samples): per_node 256x256 torus x 64 chains (2 blocks, half the entry
# each) +20-25% against the in-place update, pegasus(14) x 256 chains (4 colours) -20%
CONCAT_FRACTION = 0.4

Exchange = Callable[..., Any]
"""`exchange(block, entry_state, block_state, node_axis=0) -> entry_state`: after `block` was
written into its state entry, bring the other shards' copies of its boundary nodes up to date
(`node_axis`: the entry's node axis, 1 for the multispin path's packed words)."""


class BlockTables(eqx.Module):
    """The tables of one free block's update, in the positions of the state it runs on.

    **Attributes:**

    - `interactions`: per interaction group, the parameters `[n, k, ...]`.
    - `active`: per interaction group, bool `[n, k]` (False marks padding).
    - `tail_positions`: per interaction group and tail, int `[n, k]` rows of the tail's state entry.
    - `node_index`: int32 `[n]` program indices of the block's rows (the counters of the
        per-node random stream, so a node draws the same numbers wherever it is sampled).
    - `block_rows`: int32 `[n]` positions of the rows in their free block (the counters of the
        THRML stream); padding rows hold the block's length.
    - `packed`: the block's `distthrml.multispin.MultispinTables` (multispin stream), else None.
    """

    interactions: list[PyTree]
    active: list[Bool[Array, "n k"]]
    tail_positions: list[list[Int[Array, "n k"]]]
    node_index: Int[Array, " n"]
    block_rows: Int[Array, " n"]
    packed: Any = None


class SweepPlan(eqx.Module):
    """Everything one sweep of a (local) state needs.

    **Attributes:**

    - `samplers`: one conditional sampler per free block.
    - `blocks`: one `BlockTables` per free block.
    - `tail_entries`: per free block and interaction group, the state entry of each tail.
    - `entry`: per free block, the state entry it is stored in.
    - `offset`: per free block, its first row in that entry.
    - `node_sd`: per free block, the node type's shape/dtype pytree.
    - `sampling_order`: per superblock, its free blocks (updated from the same state).
    - `exchange`: the halo exchange run after each block's write, or None (one shard).
    - `rng`: the random stream, `"thrml"`, `"per_node"` or `"multispin"` (`distthrml.rng`).
    - `block_size`: per free block, its length in the program.
    - `whole_blocks`: whether every `BlockTables` holds its whole block in order (unsharded):
        THRML-stream updates then call the sampler's `sample`, as THRML does.
    - `tail_spans`: per free block, interaction group and tail, the rows `(first, last + 1)` its
        positions span (padding included), or None where unknown (traced tables); `()`: none
        known. A tail within one free block's rows is read from that block's piece of the state
        alone (`distthrml.engine.sweep.sweep_chains`).
    """

    samplers: list
    blocks: list[BlockTables]
    tail_entries: tuple = eqx.field(static=True)
    entry: tuple[int, ...] = eqx.field(static=True)
    offset: tuple[int, ...] = eqx.field(static=True)
    node_sd: tuple = eqx.field(static=True)
    sampling_order: tuple = eqx.field(static=True)
    exchange: Exchange | None = eqx.field(static=True, default=None)
    rng: str = eqx.field(static=True, default="per_node")
    block_size: tuple[int, ...] = eqx.field(static=True, default=())
    whole_blocks: bool = eqx.field(static=True, default=True)
    tail_spans: tuple = eqx.field(static=True, default=())


def program_plan(program) -> SweepPlan:
    """The plan of an unsharded `BlockSamplingProgram`: its own tables on its global state.

    **Arguments:**

    - `program`: the program.
    """
    spec = program.gibbs_spec
    n_free = len(spec.free_blocks)
    return SweepPlan(
        samplers=list(program.samplers),
        blocks=[
            BlockTables(
                program.per_block_interactions[b],
                program.per_block_interaction_active[b],
                program.per_block_interaction_global_slices[b],
                program.per_block_node_index[b],
                jnp.arange(len(spec.free_blocks[b]), dtype=jnp.int32),
                None if program.per_block_multispin is None else program.per_block_multispin[b],
            )
            for b in range(n_free)
        ],
        tail_entries=_freeze(program.per_block_interaction_global_inds),
        entry=tuple(spec.block_sd_index[:n_free]),
        offset=tuple(spec.block_offsets[:n_free]),
        node_sd=tuple(spec.node_shape_struct[b.node_type] for b in spec.free_blocks),
        sampling_order=_freeze(spec.sampling_order),
        rng=program.rng,
        block_size=tuple(len(b) for b in spec.free_blocks),
        tail_spans=_tail_spans(program),
    )


def _tail_spans(program) -> tuple:
    """The plan's `tail_spans`: read once from concrete tables and kept with the program's
    static bookkeeping; `()` while unknown (tables traced, e.g. a program passed into jax.jit)."""
    memo = program.per_block_interaction_tail_index.memo
    if "tail_spans" not in memo:
        slices = program.per_block_interaction_global_slices
        if not all(is_concrete(p) for group in slices for ps in group for p in ps):
            return ()
        # host copies: jax operations on constants would be staged when called under a trace
        host = [[[np.asarray(p) for p in ps] for ps in group] for group in slices]
        memo["tail_spans"] = _freeze([[[(int(p.min()), int(p.max()) + 1) if p.size else None for p in ps] for ps in group] for group in host])
    return memo["tail_spans"]


def chains_ready(plan: SweepPlan) -> bool:
    """Whether the chains-innermost kernels run this plan: the per-node stream (whose draws are
    per node, hence free of the batch layout) and, for every free block, a sampler with such a
    kernel for its interactions. THRML-stream plans run `jax.vmap` of the one-chain sweep, which
    computes what THRML computes under `jax.vmap`."""
    return plan.rng == "per_node" and all(s.has_chains_kernel(t.interactions) for s, t in zip(plan.samplers, plan.blocks))


def _freeze(nested) -> tuple:
    return tuple(_freeze(x) for x in nested) if isinstance(nested, (list, tuple)) else nested
