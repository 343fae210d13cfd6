"""What an observer sees on one shard of a sharded program, and how it combines shards.

A sharded run observes every chain on every shard, without reassembling the state: an observer
that implements `AbstractObserver.for_shard` gets a `ShardView` and returns a
`ShardObservation`, which observes the shard's local state (owned nodes and halo) and combines
the shards' results once, after the last sample (`finalize`). Observers without it see the
whole state, reassembled at every observation (`ShardView.global_state`).

`distthrml.sharding` implements the view; observers only use this interface.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import equinox as eqx
import jax
from jax import numpy as jnp
from jaxtyping import Array, Bool, Int, PyTree


class LocalRows(eqx.Module):
    """One shard's share of the rows of parallel blocks (row i: the i-th node of every column).

    Every row belongs to exactly one shard, one that holds all of the row's nodes (owned or in
    its halo), so per-row results computed on the shards assemble without double counting.

    **Attributes:**

    - `n`: rows in all.
    - `entries`: the local state entry of each column.
    - `positions`: per column, int32 `[width]` local rows of this shard's rows' nodes (padding
        points at a spare row).
    - `index`: int32 `[width]` the row numbers (padding: `n`).
    - `valid`: bool `[width]`, False for padding.
    - `all_index`: int32 `[shards, width]` every shard's `index` (what `ShardView.gather` scatters by).
    """

    n: int = eqx.field(static=True)
    entries: tuple[int, ...] = eqx.field(static=True)
    positions: list[Int[Array, " width"]]
    index: Int[Array, " width"]
    valid: Bool[Array, " width"]
    all_index: Int[Array, "shards width"]

    def take(self, state: list, column: int) -> PyTree:
        """The states `[width, ...]` of column `column`'s nodes of this shard's rows.

        **Arguments:**

        - `state`: the local state (one chain), entries `[local_rows, ...]`.
        - `column`: the column.
        """
        return jax.tree.map(lambda x: jnp.take(x, self.positions[column], axis=0), state[self.entries[column]])

    def localize(self, values: Array, fill=0) -> Array:
        """This shard's rows of `values` (axis 0 of length `n`), padding filled with `fill`."""
        return jnp.take(values, self.index, axis=0, mode="fill", fill_value=fill)


class ShardView(eqx.Module):
    """The interface between observers and the shard they run on (implemented by
    `distthrml.sharding`). Methods with collectives combine all shards of the run."""

    @abc.abstractmethod
    def rows(self, columns: Sequence) -> LocalRows | None:
        """This shard's rows of the parallel blocks `columns` (each row to a shard holding all its
        nodes), or None when some row's nodes are on no single shard.

        **Arguments:**

        - `columns`: blocks of equal length; row i is `(columns[0][i], columns[1][i], ...)`.
        """

    @abc.abstractmethod
    def gather(self, values: Array, rows: LocalRows, axis: int = 0) -> Array:
        """All shards' per-row `values` (length `width` along `axis`) in row order (length `n`),
        the same on every shard."""

    @abc.abstractmethod
    def sum(self, values: PyTree) -> PyTree:
        """The sum of `values` over all shards, the same on every shard."""

    @abc.abstractmethod
    def global_state(self, state: list) -> list:
        """The program's whole global state from every shard's owned nodes (one chain)."""


class ShardObservation(eqx.Module):
    """An observer's work on one shard: per chain, on the shard's local state."""

    @abc.abstractmethod
    def init(self, carry: PyTree) -> PyTree:
        """This shard's carry from the observer's initial carry (the same on every shard)."""

    @abc.abstractmethod
    def observe(self, state: list, carry: PyTree, iteration: Array) -> tuple[PyTree, PyTree]:
        """`(carry, observation)` from the local state (one chain)."""

    @abc.abstractmethod
    def finalize(self, carry: PyTree, observations: PyTree) -> tuple[PyTree, PyTree]:
        """The observer's final carry and observations (stacked over samples) from this shard's,
        combined across shards (one chain); what the unsharded run returns."""
