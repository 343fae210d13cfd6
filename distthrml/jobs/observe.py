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

from ..block_management import block_state_to_global
from ..observers import AbstractObserver
from .models import BuiltModel


class JobObserver(AbstractObserver):
    """Carries the latest global state (and moment counts); records energy statistics.

    Records per observation: spins: `pair` (sum of `s_u s_v` over edges, weighted by the edge
    couplings when they differ) and `spin` (sum of `s_i`); Potts: `equal` (edges whose ends
    agree) and `majority` (size of the largest category).
    """

    u: jax.Array  # [E] global-state slot of every edge's first node
    v: jax.Array
    weights: jax.Array | None
    sd: int = eqx.field(static=True)
    categories: int | None = eqx.field(static=True)
    moments: bool = eqx.field(static=True)

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
        new = {"state": state}
        if self.moments:
            node = state.astype(jnp.int32) if self.categories is None else jax.nn.one_hot(state, self.categories, dtype=jnp.int32)
            new["node"] = carry["node"] + node
            new["edge"] = carry["edge"] + (a == b).astype(jnp.int32)
        return new, record

    def init(self):
        return None

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


def node_slots(model: BuiltModel) -> np.ndarray:
    """The global-state slot of every node number (global state -> node order: `state[..., slots]`)."""
    spec = model.program.gibbs_spec
    return np.asarray(spec.node_sd_position[spec.node_index.lookup(model.nodes.ids)])


def make_observer(model: BuiltModel, moments: bool) -> JobObserver:
    """The observer of `model`'s job.

    **Arguments:**

    - `model`: the built model.
    - `moments`: whether to count node and edge moments.
    """
    slots = node_slots(model)
    weights = None if model.weights is None else jnp.asarray(model.weights, jnp.float32)
    sd = int(model.program.gibbs_spec.block_sd_index[0])
    return JobObserver(
        jnp.asarray(slots[model.edges[:, 0]].astype(np.int32)),
        jnp.asarray(slots[model.edges[:, 1]].astype(np.int32)),
        weights, sd, model.categories, moments,
    )
