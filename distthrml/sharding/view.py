"""`ShardView` for one shard of a sharded program: row tables from the layout, collectives over
the `graph` axis."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import numpy as np
from jax import numpy as jnp
from jaxtyping import Array

from ..shard_view import LocalRows, ShardView
from .exchange import AXIS
from .layout import ShardLayout


class LocalShardView(ShardView):
    """The view of shard `part` (a traced `axis_index`) of a program laid out by `layout`."""

    spec: object = eqx.field(static=True)
    layout: ShardLayout = eqx.field(static=True)
    part: Array

    def rows(self, columns: Sequence) -> LocalRows | None:
        spec, layout = self.spec, self.layout
        if not columns:
            raise ValueError("rows needs at least one column")
        lengths = {len(c) for c in columns}
        if len(lengths) != 1:
            raise ValueError(f"parallel blocks must have one length, got {sorted(lengths)}")
        n = lengths.pop()
        nodes = np.stack([spec.program_index(c, f"column {k}") for k, c in enumerate(columns)])  # [order, n]
        owners = layout.assignment[nodes]
        # a row goes to the first of its nodes' owners that holds all of its nodes
        chosen = np.full(n, -1, np.int64)
        for j in range(len(columns)):
            holds = np.all(layout.index.lookup(owners[j][None, :], nodes) >= 0, axis=0)
            chosen = np.where((chosen < 0) & holds, owners[j], chosen)
        if n and chosen.min() < 0:
            return None
        order = np.argsort(chosen, kind="stable")
        counts = np.bincount(chosen, minlength=layout.n_parts)
        width = int(counts.max(initial=0))
        slot = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)  # position within its shard
        index = np.full((layout.n_parts, width), n, np.int64)
        index[chosen[order], slot] = order
        entries = tuple(int(spec.node_sd[nodes[k, 0]]) if n else int(spec.block_sd_index[0]) for k in range(len(columns)))
        positions = []
        for k, e in enumerate(entries):
            table = np.full((layout.n_parts, width), layout.spare_row(e), np.int64)
            table[chosen[order], slot] = layout.index.lookup(chosen[order], nodes[k, order])
            positions.append(jnp.asarray(table.astype(np.int32))[self.part])
        index32 = jnp.asarray(index.astype(np.int32))
        return LocalRows(n, entries, positions, index32[self.part], index32[self.part] < n, index32)

    def gather(self, values, rows: LocalRows, axis: int = 0):
        v = jnp.moveaxis(values, axis, 0)
        everyone = jax.lax.all_gather(v, AXIS, tiled=True)
        out = jnp.zeros((rows.n + 1, *v.shape[1:]), v.dtype).at[rows.all_index.reshape(-1)].set(everyone)[: rows.n]
        return jnp.moveaxis(out, 0, axis)

    def sum(self, values):
        return jax.lax.psum(values, AXIS)

    def global_state(self, state: list) -> list:
        spec, layout = self.spec, self.layout
        out = []
        for s, entry in enumerate(state):
            if entry is None:
                out.append(None)
                continue
            mine = jnp.asarray(layout.owned_local[s])[self.part]
            where = jnp.asarray(layout.owned_global[s].reshape(-1))  # every shard's owned positions, pad = size

            def one(x, size=spec.sd_sizes[s], mine=mine, where=where):
                everyone = jax.lax.all_gather(jnp.take(x, mine, axis=0), AXIS, tiled=True)
                return jnp.zeros((size + 1, *x.shape[1:]), x.dtype).at[where].set(everyone)[:size]

            out.append(jax.tree.map(one, entry))
        return out
