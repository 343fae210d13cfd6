"""The halo exchange after a block's update, inside `shard_map` over the `graph` axis.

Both transports move the layout's messages (the partition's halo plan) and give the same bits:

- `"ppermute"`: one `ppermute` per round, every shard sending one packed buffer to at most one
  neighbour part per round (max-degree many rounds); traffic is the cut.
- `"all_to_all"`: one `all_to_all` per block, every shard sending one buffer per part, padded to
  the block's largest message: one collective instead of several, more bytes.
- `"auto"` (the default of `shard_program`): `all_to_all` for a block while its padded buffers
  move at most `layout.AUTO_PADDING` times the bytes of its messages, else `ppermute`. On
  emulated CPU devices the collectives' synchronisation dominates (`benchmarks/sharded.py`);
  with many parts the padding would.

Receiving is one contiguous write at a static row (the layout's receive regions are laid out as
the messages arrive), never a scatter. A message's rows index the node axis, so the same code
runs on one chain's `[rows, ...]` and on the chains-innermost `[rows, chains, ...]` layout (and,
with `node_axis=1`, on the multispin path's packed words `[W, rows]`).
"""

from __future__ import annotations

import functools

import jax
from jax import numpy as jnp

from .layout import ShardLayout

AXIS = "graph"


def make_exchange(layout: ShardLayout, part):
    """The plan's `exchange(block, entry_state, block_state)` for shard `part` (a traced index).

    **Arguments:**

    - `layout`: the sharded program's layout.
    - `part`: this shard's index on the `graph` axis (`jax.lax.axis_index`).
    """
    return functools.partial(_exchange, layout, part)


def _exchange(layout: ShardLayout, part, b: int, entry, out, node_axis: int = 0):
    # Messages are read from the state entry, where the block was just written, not from the
    # block's new state: the sampler's fused field then has one consumer (the write) and is
    # never materialised (the sending and writing went from 0.38 to 0.13 ms per sweep on a 2-way
    # 256x256 torus with 16 chains).
    offset = layout.block_offset[b]
    if layout.transport[b] == "all_to_all" and layout.all_to_all[b] is not None:
        return _all_to_all(layout.all_to_all[b], layout.n_parts, part, offset, entry, node_axis)
    for r in layout.exchange[b]:
        send = offset + jnp.asarray(r.send)[part]
        sent = jax.tree.map(lambda x: jax.lax.ppermute(jnp.take(x, send, axis=node_axis), AXIS, list(r.pairs)), entry)
        entry = _write(entry, sent, r.offset, node_axis)
    return entry


def _all_to_all(table, n_parts: int, part, offset: int, entry, node_axis: int):
    send = offset + jnp.asarray(table.send)[part]

    def move(x):
        # the messages travel node-major whatever the entry's layout (packed words: node axis 1)
        taken = jnp.moveaxis(jnp.take(x, send, axis=node_axis), node_axis, 0)
        packed = taken.reshape(n_parts, table.width, *taken.shape[1:])
        moved = jax.lax.all_to_all(packed, AXIS, 0, 0, tiled=False).reshape(n_parts * table.width, *taken.shape[1:])
        return jnp.moveaxis(moved, 0, node_axis)

    return _write(entry, jax.tree.map(move, entry), table.offset, node_axis)


def _write(entry, received, offset: int, node_axis: int = 0):
    return jax.tree.map(lambda g, y: jax.lax.dynamic_update_slice_in_dim(g, y, offset, axis=node_axis), entry, received)
