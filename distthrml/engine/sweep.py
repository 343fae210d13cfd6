"""One sweep of block Gibbs: for each superblock, gather the tails, sample, write the owned rows,
then (when sharded) exchange that block's boundary states.

Two layouts of the same sweep:

- `sweep`: one chain, state entries `[rows, ...]`; every sampler works here, in either random
  stream (`block_keys`, `update_block`): per node through `sample_per_node` (the node indices
  drive the draws), THRML's through `sample` with THRML's block key (or `sample_rows` for the
  rows a shard owns).
- `sweep_chains`: every chain at once, state entries `[rows, chains, ...]` (chains innermost).
  A tail read is then a gather of contiguous rows (one row is a node's state in every chain),
  folded into the conditional's field one slot at a time. Samplers take part through
  `sample_chains`, which equals `sample_per_node` under `jax.vmap` bit for bit. Unsharded, the
  entries are kept cut into one piece per free block, and a block's new state replaces its
  piece (`split_entries`).

Otherwise a block's new state is written at its offset in its entry and handed to the plan's
exchange, whose send and receive rows index the same node axis in either layout.
"""

from __future__ import annotations

import dataclasses

import jax
from jax import numpy as jnp
from jaxtyping import Array, Int, Key, UInt32

from ..errors import SamplerOutputError, StateError
from .packed import sweep_one_chain
from .plan import CONCAT_FRACTION, UNROLL_SLOTS, SweepPlan


def block_output_sd(plan: SweepPlan, b: int, batch: tuple[int, ...] = ()):
    """Shape/dtype pytree of free block b's new state: `[rows, *batch, *node_shape]`."""
    n = plan.blocks[b].node_index.shape[0]
    return jax.tree.map(
        lambda sd: jax.ShapeDtypeStruct((n, *batch, *sd.shape), sd.dtype) if isinstance(sd, jax.ShapeDtypeStruct) else sd,
        plan.node_sd[b],
    )


def check_sampler_output(sampler, b: int, out, output_sd, dtypes: bool = True) -> None:
    """Raise `StateError` if a sampler returned another structure or shape than its block's, and
    (`dtypes`) `SamplerOutputError` if another dtype: inside the chain loop THRML's `lax.scan`
    refuses that too, while a single sweep (`sample_blocks`) keeps the sampler's dtype."""
    if jax.tree.structure(out) != jax.tree.structure(output_sd):
        raise StateError(
            f"sampler {b} ({type(sampler).__name__}) returned a state with structure "
            f"{jax.tree.structure(out)}, expected {jax.tree.structure(output_sd)}"
        )
    for got, want in zip(jax.tree.leaves(out), jax.tree.leaves(output_sd)):
        if got.shape != want.shape:
            raise StateError(
                f"sampler {b} ({type(sampler).__name__}) returned {got.dtype}{list(got.shape)} for free "
                f"block {b}, expected {want.dtype}{list(want.shape)} (see node_shape_dtypes)"
            )
        if dtypes and got.dtype != want.dtype:
            raise SamplerOutputError(
                f"sampler {b} ({type(sampler).__name__}) returned {got.dtype}{list(got.shape)} for free "
                f"block {b}, expected {want.dtype}{list(want.shape)}: the chain loop's scan body function carry "
                "input and carry output must have equal types (cast in the sampler, or change node_shape_dtypes)"
            )


def gather_tails(plan: SweepPlan, b: int, state: list) -> list[list]:
    """Per interaction group and tail, the tail states `[n, k, ...]` of free block b (one chain)."""
    tables = plan.blocks[b]
    return [
        [jax.tree.map(lambda x: jnp.take(x, p, axis=0), state[e]) for e, p in zip(entries, positions)]
        for entries, positions in zip(plan.tail_entries[b], tables.tail_positions)
    ]


def block_keys(plan: SweepPlan, key: Key[Array, ""]) -> list:
    """The key of every free block's update in a sweep with key `key`: THRML's
    `split(key, n_free_blocks)`, or (per-node stream) the sweep key itself for every block (each
    node's draws then differ by its program index)."""
    n = len(plan.blocks)
    if plan.rng == "thrml":
        return list(jax.random.split(key, n)) if n else []
    return [key] * n


def update_block(plan: SweepPlan, b: int, key: Key[Array, ""], state: list, sampler_state):
    """Free block b's new state and sampler state for one chain (any sampler), unchecked.

    **Arguments:**

    - `plan`: the sweep plan.
    - `b`: the free block.
    - `key`: the block's key (`block_keys`).
    - `state`: the chain's state entries.
    - `sampler_state`: the block's sampler state.
    """
    tables, sampler = plan.blocks[b], plan.samplers[b]
    if plan.rng == "multispin":
        # one block of one chain (a group of one): the block's rows of a whole sweep's draws
        # would not be its draws alone; sweep the block by itself
        return _single_block_multispin(plan, b, key, state), sampler_state
    output_sd = block_output_sd(plan, b)
    tails = gather_tails(plan, b, state)
    if plan.rng == "per_node":
        return sampler.sample_per_node(key, tables.node_index, tables.interactions, tables.active, tails, sampler_state, output_sd)
    if plan.whole_blocks:
        return sampler.sample(key, tables.interactions, tables.active, tails, sampler_state, output_sd)
    return sampler.sample_rows(
        key, tables.block_rows, plan.block_size[b], tables.interactions, tables.active, tails, sampler_state, output_sd
    )


def write_block(plan: SweepPlan, b: int, state: list, out) -> list:
    """Write free block b's new state at its offset, then run the plan's exchange for it. A
    state of another dtype promotes its whole entry, as THRML's concatenation of block states
    into the global state does."""
    e, offset = plan.entry[b], plan.offset[b]
    state = list(state)

    def write(g, x):
        dtype = jnp.promote_types(g.dtype, x.dtype)
        g, x = g.astype(dtype), x.astype(dtype)
        if x.shape[0] >= CONCAT_FRACTION * g.shape[0]:
            # a new array rather than an in-place update: XLA:CPU splits such a kernel across
            # its threads, never one written in place; worth the copy of the rest of the entry
            # when the block is a large part of it
            parts = [g[:offset], x, g[offset + x.shape[0] :]]
            return jnp.concatenate([p for p in parts if p.shape[0]], axis=0)
        return jax.lax.dynamic_update_slice_in_dim(g, x, offset, axis=0)

    state[e] = jax.tree.map(write, state[e], out)
    if plan.exchange is not None:
        state[e] = plan.exchange(b, state[e], out)
    return state


def sweep(
    plan: SweepPlan, key: Key[Array, ""], state: list, sampler_states: list, *, keep_dtypes: bool = False
) -> tuple[list, list, list]:
    """One pass over all superblocks of one chain (blocks of a superblock read the same state).

    **Arguments:**

    - `plan`: the sweep plan.
    - `key`: the sweep's key.
    - `state`, `sampler_states`: the chain's state entries and one sampler state per free block.
    - `keep_dtypes`: accept sampler outputs of another dtype (THRML's `sample_blocks`), else
        raise `SamplerOutputError` (the chain loop).

    **Returns:** `(state, sampler_states, outputs)`, `outputs` every block's new state as its
    sampler returned it.
    """
    sampler_states = list(sampler_states)
    if plan.rng == "multispin":
        state, outputs = sweep_one_chain(plan, key, state)
        return state, sampler_states, outputs
    outputs = [None] * len(plan.blocks)
    keys = block_keys(plan, key)
    for group in plan.sampling_order:
        updates = [(b, *update_block(plan, b, keys[b], state, sampler_states[b])) for b in group]
        for b, out, sampler_state in updates:
            check_sampler_output(plan.samplers[b], b, out, block_output_sd(plan, b), dtypes=not keep_dtypes)
            state = write_block(plan, b, state, out)
            sampler_states[b], outputs[b] = sampler_state, out
    return state, sampler_states, outputs


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


def _tail_source(plan: SweepPlan, b: int, i: int, t: int, state: "list | _Joined", pieces: list | None):
    """Where free block b reads tail t of interaction group i: `(rows, positions in them)`, the
    tail's entry or, when the positions lie within one piece of it, that piece alone (the read
    then needs no copy of the joined entry)."""
    e, positions = plan.tail_entries[b][i][t], plan.blocks[b].tail_positions[i][t]
    span = plan.tail_spans[b][i][t] if plan.tail_spans else None
    if pieces is not None and span is not None:
        cuts = _cuts(plan, e, state.rows(e) if isinstance(state, _Joined) else jax.tree.leaves(state[e])[0].shape[0])
        for piece, first, end in zip(pieces[e], cuts[:-1], cuts[1:]):
            if piece is not None and first <= span[0] and span[1] <= end:
                return piece, positions - first
    return state[e], positions


def _update_block_chains(plan: SweepPlan, b: int, tables, k0, k1, state: "list | _Joined", pieces: list | None = None):
    """Free block b's new state `[n, chains, ...]` from the chains-innermost state (its entries,
    and where given, the same cut into pieces by `split_entries`)."""
    interactions, active = tables
    sources = [
        [_tail_source(plan, b, i, t, state, pieces) for t in range(len(ps))] for i, ps in enumerate(plan.blocks[b].tail_positions)
    ]
    gathered = [
        # one gather of every slot at once (XLA runs it as one kernel); per slot in the loop when k is large
        [jax.tree.map(lambda x, p=p: _row_gather(x, p), rows) if p.shape[1] <= UNROLL_SLOTS else None for rows, p in group]
        for group in sources
    ]

    def column(i: int, j) -> list:
        # slot j of interaction i: every tail's state for every node of the block, [n, chains, ...]
        return [
            jax.tree.map(lambda x: _column(x, j), g) if g is not None else jax.tree.map(lambda x, p=p: _row_gather(x, _column(p, j)), rows)
            for g, (rows, p) in zip(gathered[i], sources[i])
        ]

    out_sd = block_output_sd(plan, b, (k0.shape[-1],))
    out, _ = plan.samplers[b].sample_chains(k0, k1, plan.blocks[b].node_index, interactions, active, column, None, out_sd)
    return out


def _cuts(plan: SweepPlan, e: int, rows: int) -> list[int]:
    """The rows where entry e (`rows` long) is cut into pieces: its free blocks' bounds; a
    shard's entries stay whole (`sweep_chains`)."""
    cuts = {0, rows}
    if plan.exchange is not None:
        return sorted(cuts)
    for b, (entry, offset) in enumerate(zip(plan.entry, plan.offset)):
        if entry == e:
            cuts |= {offset, offset + plan.blocks[b].node_index.shape[0]}
    return sorted(cuts)


def split_entries(plan: SweepPlan, state: list) -> list[list]:
    """Every state entry `[rows, chains, ...]` cut into pieces: each free block's rows are one
    piece, the rows between them (clamped blocks, halo) others. `sweep_chains` runs on pieces."""
    return [_split(plan, e, x) for e, x in enumerate(state)]


def _split(plan: SweepPlan, e: int, x) -> list:
    if not jax.tree.leaves(x):  # an entry without arrays (no node of its type)
        return [x]
    cuts = _cuts(plan, e, jax.tree.leaves(x)[0].shape[0])
    return [jax.tree.map(lambda a, lo=lo, hi=hi: a[lo:hi], x) for lo, hi in zip(cuts[:-1], cuts[1:])]


def join_entries(pieces: list[list]) -> list:
    """The state entries whose pieces `split_entries` made."""
    return [p[0] if len(p) == 1 else jax.tree.map(lambda *a: jnp.concatenate(a, axis=0), *p) for p in pieces]


def sweep_chains(plan: SweepPlan, tables: list, k0: UInt32[Array, "1 chains"], k1: UInt32[Array, "1 chains"], pieces: list) -> list:
    """One sweep of every chain, on the state cut into pieces (`split_entries`).

    A block's new state replaces its piece rather than being written into its entry: XLA:CPU
    then computes each block in one kernel over the block's rows, split across its threads.
    Written into the entry, the update ran on one thread (in place), or the concatenation was
    simplified to the earlier blocks' elementwise draws and recomputed them (the last of
    pegasus(14)'s 4 blocks hashed all 4). Tails are gathered from the joined entries
    (`_Joined`), or straight from a piece that holds all of a tail's rows (`tail_spans`) and
    was not rewritten earlier in this sweep: XLA:CPU fuses a cheap fresh update (the Potts draw)
    into the gather and recomputes it at every read (-14 to -18% on a 4-state Potts torus).

    **Arguments:**

    - `plan`: the sweep plan.
    - `tables`: from `chains_tables`.
    - `k0, k1`: every chain's key words of this sweep.
    - `pieces`: the chains-innermost state `[rows, chains, ...]`, cut by `split_entries`.
    """
    if plan.exchange is not None:
        # a shard writes blocks into its whole entries, where the exchange reads and writes:
        # cutting and joining them around every exchange cost more than it saved (2-way 256x256
        # torus x 64 chains, 2 emulated devices: 0.32 flips/ns against 0.42 whole)
        state = join_entries(pieces)
        for group in plan.sampling_order:
            updates = [(b, _update_block_chains(plan, b, tables[b], k0, k1, state)) for b in group]
            for b, out in updates:
                state = write_block(plan, b, state, out)
        return split_entries(plan, state)
    pieces = [list(p) for p in pieces]
    stale = [list(p) for p in pieces]  # the pieces as the sweep found them; None once rewritten
    joined = _Joined(pieces)
    for group in plan.sampling_order:
        updates = [(b, _update_block_chains(plan, b, tables[b], k0, k1, joined, stale)) for b in group]
        for b, out in updates:
            e = plan.entry[b]
            if plan.blocks[b].node_index.shape[0]:
                k = _cuts(plan, e, _rows(pieces[e])).index(plan.offset[b])
                pieces[e] = _put(pieces[e], k, out)
                stale[e][k] = None
                joined.copy_in(e, k, plan.offset[b])
    return pieces


def _rows(pieces: list) -> int:
    return sum(jax.tree.leaves(p)[0].shape[0] for p in pieces)


class _Joined:
    """The entries of a sweep's pieces, joined when a tail read first needs one (a read from a
    piece that holds the tail needs none) and then kept up to date by copying each new piece
    into it in place: joining anew for every superblock was a quarter of pegasus(14)'s sweep."""

    def __init__(self, pieces: list):
        self.pieces = pieces  # the sweep's list, whose entries it replaces as blocks are written
        self.entries: dict = {}

    def __getitem__(self, e: int):
        if e not in self.entries:
            self.entries[e] = join_entries([self.pieces[e]])[0]
        return self.entries[e]

    def rows(self, e: int) -> int:
        return _rows(self.pieces[e])

    def copy_in(self, e: int, i: int, offset: int) -> None:
        """Piece i of entry e (at row `offset`) was replaced: copy it into the joined entry, or
        drop that entry (joined anew when read) if the piece promoted its dtype (`_put`)."""
        if e not in self.entries:
            return
        entry, piece = self.entries[e], self.pieces[e][i]
        if any(g.dtype != x.dtype for g, x in zip(jax.tree.leaves(entry), jax.tree.leaves(piece))):
            del self.entries[e]
            return
        self.entries[e] = jax.tree.map(lambda g, x: jax.lax.dynamic_update_slice_in_dim(g, x, offset, axis=0), entry, piece)


def _put(pieces: list, i: int, out) -> list:
    """An entry's pieces with piece i replaced by `out`; another dtype promotes the whole entry,
    as `write_block` does."""
    dtype = jax.tree.map(lambda g, x: jnp.promote_types(g.dtype, x.dtype), pieces[i], out)
    pieces = [jax.tree.map(lambda g, d: g.astype(d), p, dtype) for p in pieces]
    pieces[i] = jax.tree.map(lambda x, d: x.astype(d), out, dtype)
    return pieces


def _single_block_multispin(plan: SweepPlan, b: int, key, state: list):
    """Block b's new state for one chain under the multispin stream (sweep key `key`)."""
    only = dataclasses.replace(plan, sampling_order=((b,),), exchange=None)
    return sweep_one_chain(only, key, state)[1][b]
