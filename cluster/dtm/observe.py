"""The training observer: sums of s_i and s_i s_j (as `MomentAccumulatorObserver`) and the last
grid state of each chain (the persistent chains). Sharded runs accumulate and keep both on the
shards and gather them once, after the last sample."""

from __future__ import annotations

import jax.numpy as jnp

import distthrml as dt
from distthrml.block_management import block_state_to_global, from_global_state
from distthrml.observers import AbstractObserver, MomentAccumulatorObserver
from distthrml.shard_view import LocalRows, ShardObservation, ShardView

from .graph import StepGraph


def _spins(state, _blocks):
    # float32 spins: sums over many samples must not overflow a narrow integer type
    return [jnp.where(x, 1.0, -1.0).astype(jnp.float32) for x in state]


class MomentsAndLastState(AbstractObserver):
    """Carry `(sums, last)`: `sums` = [per grid node sum of s_i, per edge sum of s_i s_j] (grid
    edges, then the input couplings), `last` = the grid's state `[side**2]` at the last sample.

    **Arguments:**

    - `graph`: the step graph.
    """

    moments: MomentAccumulatorObserver
    grid: dt.Block

    def __init__(self, graph: StepGraph):
        e = graph.edges
        self.moments = MomentAccumulatorObserver(
            moment_blocks=[[graph.grid], [graph.nodes[e[:, 0]], graph.nodes[e[:, 1]]]], f_transform=_spins,
            elementwise_transform=True,
        )
        self.grid = graph.grid

    def init(self):
        return self.moments.init(), jnp.zeros((len(self.grid),), bool)

    def observe_global(self, program, global_state, carry, iteration):
        sums, _ = self.moments.observe_global(program, global_state, carry[0], iteration)
        return (sums, from_global_state(global_state, program.gibbs_spec, [self.grid])[0]), None

    def __call__(self, program, state_free, state_clamped, carry, iteration):
        global_state = block_state_to_global(list(state_free) + list(state_clamped), program.gibbs_spec)
        return self.observe_global(program, global_state, carry, iteration)

    def for_shard(self, program, view: ShardView):
        moments = self.moments.for_shard(program, view)
        rows = view.rows([self.grid])
        if moments is None or rows is None:
            return None
        return _ShardMomentsAndLast(moments, rows, view)


class _ShardMomentsAndLast(ShardObservation):
    """Moments on the shards (the moment observer's own shard work) and each shard's grid rows."""

    moments: ShardObservation
    rows: LocalRows
    view: ShardView

    def init(self, carry):
        return self.moments.init(carry[0]), self.rows.localize(carry[1], False)

    def observe(self, state, carry, iteration):
        sums, _ = self.moments.observe(state, carry[0], iteration)
        return (sums, self.rows.take(state, 0)), None

    def finalize(self, carry, observations):
        sums, _ = self.moments.finalize(carry[0], None)
        return (sums, self.view.gather(carry[1], self.rows)), observations
