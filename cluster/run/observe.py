"""What a job records at every observation: sufficient statistics of the energy and the order
parameter, and (optionally) running counts for node and edge moments.

Everything is an integer count where the model allows it (uniform couplings), so that the
records of a sharded run equal those of an unsharded one exactly, not only up to the order of
a floating-point reduction.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from distthrml.block_management import Block, block_state_to_global, concat_blocks
from distthrml.observers import AbstractObserver
from distthrml.shard_view import LocalRows, ShardObservation, ShardView

from ..workloads.build import BuiltModel


class JobObserver(AbstractObserver):
    """Carries the latest global state (and moment counts); records energy statistics.

    Records per observation: spins: `pair` (sum of `s_u s_v` over edges, weighted by the edge
    couplings when they differ) and `spin` (sum of `s_i`); Potts: `equal` (edges whose ends
    agree) and `majority` (size of the largest category); with `states`, also `state` (the
    global state, to be streamed to disk).
    """

    u: jax.Array  # [E] global-state slot of every edge's first node
    v: jax.Array
    weights: jax.Array | None
    sd: int = eqx.field(static=True)
    categories: int | None = eqx.field(static=True)
    moments: bool = eqx.field(static=True)
    slots: Block  # every node, in global-state slot order
    ends: tuple[Block, Block]  # every edge's two nodes
    states: bool = eqx.field(static=True, default=False)

    def __call__(self, program, state_free, state_clamped, carry, iteration):
        global_state = block_state_to_global(list(state_free) + list(state_clamped), program.gibbs_spec)
        return self.observe_global(program, global_state, carry, iteration)

    def observe_global(self, program, global_state, carry, iteration):
        state = global_state[self.sd]
        a, b = state[self.u], state[self.v]
        if self.categories is None:
            spins = jnp.where(state, 1, -1).astype(jnp.int32)
            if self.weights is None:
                pair = jnp.sum(jnp.where(a == b, 1, -1).astype(jnp.int32))
            else:
                pair = jnp.sum(jnp.where(a == b, self.weights, -self.weights))
            record = {"pair": pair, "spin": jnp.sum(spins)}
        else:
            counts = jnp.bincount(state.astype(jnp.int32), length=self.categories)
            record = {"equal": jnp.sum((a == b).astype(jnp.int32)), "majority": jnp.max(counts).astype(jnp.int32)}
        if self.states:
            record["state"] = state
        new = {"state": state}
        if self.moments:
            node = state.astype(jnp.int32) if self.categories is None else jax.nn.one_hot(state, self.categories, dtype=jnp.int32)
            new["node"] = carry["node"] + node
            new["edge"] = carry["edge"] + (a == b).astype(jnp.int32)
        return new, record

    def init(self):
        return None

    def for_shard(self, program, view):
        if self.weights is not None:
            return None  # float sums over shards would round differently: observe the whole state
        edges = view.rows(list(self.ends))
        return None if edges is None else _ShardJob(self.categories, self.moments, view.rows([self.slots]), edges, view,
                                                    self.states)

    def carry_init(self, program) -> dict:
        """The carry a chunk starts from (shared by all chains: the state slot is overwritten)."""
        sd = program.gibbs_spec.node_shape_struct[program.gibbs_spec.blocks[0].node_type]
        n_slots = program.gibbs_spec.sd_sizes[self.sd]
        carry = {"state": jnp.zeros((n_slots,), sd.dtype)}
        if self.moments:
            shape = (n_slots,) if self.categories is None else (n_slots, self.categories)
            carry["node"] = jnp.zeros(shape, jnp.int32)
            carry["edge"] = jnp.zeros(self.u.shape, jnp.int32)
        return carry


class _ShardJob(ShardObservation):
    """`JobObserver` on one shard: integer counts over the shard's nodes and edges (each node
    and edge on one shard), summed across shards after the last sample; the state and moment
    counts of the owned slots, gathered then."""

    categories: int | None = eqx.field(static=True)
    moments: bool = eqx.field(static=True)
    nodes: LocalRows
    edges: LocalRows
    view: ShardView
    states: bool = eqx.field(static=True, default=False)

    def init(self, carry):
        out = {"state": self.nodes.localize(carry["state"])}
        if self.moments:
            out["node"] = self.nodes.localize(carry["node"])
            out["edge"] = self.edges.localize(carry["edge"])
        return out

    def observe(self, state, carry, iteration):
        x = self.nodes.take(state, 0)
        a, b = self.edges.take(state, 0), self.edges.take(state, 1)
        on_nodes, on_edges = self.nodes.valid, self.edges.valid
        if self.categories is None:
            spins = jnp.where(x, 1, -1).astype(jnp.int32)
            record = {
                "pair": jnp.sum(jnp.where(on_edges, jnp.where(a == b, 1, -1), 0).astype(jnp.int32)),
                "spin": jnp.sum(jnp.where(on_nodes, spins, 0)),
            }
        else:
            counts = jnp.zeros(self.categories, jnp.int32).at[x.astype(jnp.int32)].add(on_nodes.astype(jnp.int32))
            record = {"equal": jnp.sum((on_edges & (a == b)).astype(jnp.int32)), "counts": counts}
        if self.states:
            record["state"] = x
        new = {"state": x}
        if self.moments:
            node = x.astype(jnp.int32) if self.categories is None else jax.nn.one_hot(x, self.categories, dtype=jnp.int32)
            new["node"] = carry["node"] + node
            new["edge"] = carry["edge"] + (a == b).astype(jnp.int32)
        return new, record

    def finalize(self, carry, observations):
        carry = {"state": self.view.gather(carry["state"], self.nodes)} | (
            {"node": self.view.gather(carry["node"], self.nodes), "edge": self.view.gather(carry["edge"], self.edges)}
            if self.moments
            else {}
        )
        sums = {k: v for k, v in observations.items() if k != "state"}
        totals = self.view.sum(sums)
        if self.categories is not None:
            totals = {"equal": totals["equal"], "majority": jnp.max(totals["counts"], axis=-1)}
        if self.states:  # [samples, owned rows] on each shard -> [samples, all slots]
            totals["state"] = self.view.gather(observations["state"], self.nodes, axis=1)
        return carry, totals


def node_slots(model: BuiltModel) -> np.ndarray:
    """The global-state slot of every node number (global state -> node order: `state[..., slots]`)."""
    spec = model.program.gibbs_spec
    return np.asarray(spec.node_sd_position[spec.node_index.lookup(model.nodes.ids)])


def make_observer(model: BuiltModel, moments: bool, states: bool = False) -> JobObserver:
    """The observer of `model`'s job.

    **Arguments:**

    - `model`: the built model.
    - `moments`: whether to count node and edge moments.
    - `states`: whether to record the state at every observation (for `output.states`).
    """
    slots = node_slots(model)
    weights = None if model.weights is None else jnp.asarray(model.weights, jnp.float32)
    spec = model.program.gibbs_spec
    return JobObserver(
        jnp.asarray(slots[model.edges[:, 0]].astype(np.int32)),
        jnp.asarray(slots[model.edges[:, 1]].astype(np.int32)),
        weights, int(spec.block_sd_index[0]), model.categories, moments,
        concat_blocks(spec.blocks), (model.nodes[model.edges[:, 0]], model.nodes[model.edges[:, 1]]), states,
    )
