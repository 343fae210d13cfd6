"""Sampling a `ShardedProgram`: the one engine on every shard, under `shard_map` over
`("chains", "graph")`.

Every shard runs `distthrml.engine.run_chain` on its local state, `jax.vmap`ped over its chains
(so the chains-innermost kernel runs whenever the samplers have one), with the sharded plan's
exchange after each block. Observers observe each shard where it is (`for_shard`) and combine
the shards once at the end; other observers see the state reassembled at every observation.
Every node draws its randomness from its program index (per-node stream) or from its block's key
and its position in the block (THRML stream), so the samples are those of `jax.vmap` of the
unsharded program, bit for bit, in either stream.
"""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np
from jax import numpy as jnp
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from .. import multispin
from ..block_management import block_state_to_global
from ..block_sampling import check_program_states
from ..engine import SweepPlan, program_plan, run_chain
from ..errors import ShardingError, StateError
from ..observers import observe_global_state
from ..shard_view import ShardObservation, ShardView
from .exchange import AXIS, make_exchange
from .view import LocalShardView


class _Reassembled(ShardObservation):
    """An observer without a shard form: it sees the whole state, gathered at every observation."""

    observer: object
    program: object
    view: ShardView

    def init(self, carry):
        return carry

    def observe(self, state, carry, iteration):
        return observe_global_state(self.observer, self.program, self.view.global_state(state), carry, iteration)

    def finalize(self, carry, observations):
        return carry, observations


def _batched(x, n_chains, what):
    if x.shape[:1] != (n_chains,):
        raise ShardingError(f"{what} has leading shape {x.shape[:1]}, expected the chain count ({n_chains},) of the keys")
    return x


def _chain_inputs(sprog, keys, init_chain_state, state_clamp):
    """Validate the batch; the initial global states `[chains, size]` (clamped ones broadcast)."""
    spec, mesh = sprog.program.gibbs_spec, sprog.mesh
    if keys.ndim < 1 or (not jnp.issubdtype(keys.dtype, jax.dtypes.prng_key) and keys.ndim != 2):
        raise ShardingError("a sharded program takes one key per chain: pass jax.random.split(key, n_chains)")
    n_chains = keys.shape[0]
    if n_chains % mesh.shape["chains"]:
        raise ShardingError(f"{n_chains} chains are not divisible by the mesh's chains axis ({mesh.shape['chains']})")
    per_device = n_chains // mesh.shape["chains"]
    if sprog.program.rng == "multispin" and mesh.shape["chains"] > 1 and per_device % multispin.LANES:
        # the multispin stream draws per group of 32 chains: groups must not straddle devices
        raise ShardingError(
            f"the multispin stream needs a multiple of {multispin.LANES} chains per device of the chains axis, "
            f"got {n_chains} chains over {mesh.shape['chains']}"
        )
    if len(state_clamp) != len(spec.clamped_blocks):
        raise StateError(f"got {len(state_clamp)} clamped block states for {len(spec.clamped_blocks)} clamped blocks")
    init = [jax.tree.map(lambda x: _batched(x, n_chains, f"initial state of free block {i}"), s) for i, s in enumerate(init_chain_state)]
    clamp = []
    for block, s in zip(spec.clamped_blocks, state_clamp):
        leaves = jax.tree.leaves(s)
        node = jax.tree.leaves(spec.node_shape_struct[block.node_type])
        shared = leaves and leaves[0].ndim == len(node[0].shape) + 1
        clamp.append(jax.tree.map(lambda x: jnp.broadcast_to(x, (n_chains, *x.shape)), s) if shared else s)
    check_program_states(sprog.program, [jax.tree.map(lambda x: x[0], s) for s in init], [jax.tree.map(lambda x: x[0], s) for s in clamp])
    return jax.vmap(lambda f, c: block_state_to_global(list(f) + list(c), spec))(init, clamp)


def _shard_plan(sprog, tables, part) -> SweepPlan:
    base = program_plan(sprog.program)
    return SweepPlan(
        base.samplers, tables, base.tail_entries, base.entry, tuple(sprog.layout.block_offset[: len(tables)]),
        base.node_sd, base.sampling_order, make_exchange(sprog.layout, part),
        rng=base.rng, block_size=base.block_size, whole_blocks=False,
    )


def sample_sharded(sprog, keys, schedule, init_chain_state, state_clamp, carry_init, f_observe):
    """`sample_with_observation` for a `ShardedProgram`: `keys` is a batch of chain keys and the
    states carry the same leading chain axis (clamped states may also be shared).

    Inside the caller's `jit` the call is traced in place. Otherwise it runs compiled, cached
    across calls with the same program, schedule, observer and shapes (an eager `shard_map`
    would interpret the whole chain loop op by op); when the mesh spans processes the inputs
    become global arrays first and every process gets the whole result.
    """
    args = (sprog, keys, schedule, init_chain_state, state_clamp, carry_init, f_observe)
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(args)):
        return _sample(*args)
    if not spans_processes(sprog.mesh):
        return _sample_compiled(*args)
    return _gather_to_host(_sample_compiled(*_globalize(args)))


def _sample(sprog, keys, schedule, init_chain_state, state_clamp, carry_init, f_observe):
    program, layout, mesh = sprog.program, sprog.layout, sprog.mesh
    global_state = _chain_inputs(sprog, keys, init_chain_state, state_clamp)
    local = [None if g is None else jax.tree.map(lambda x, i=layout.gather[s]: x[:, i], g) for s, g in enumerate(global_state)]
    tables, tables_static = eqx.partition(sprog.tables, eqx.is_array)
    key_impl = jax.random.key_impl(keys) if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key) else None
    key_data = jax.random.key_data(keys) if key_impl is not None else keys

    def per_shard(key_data, local, tables, carry_init):
        part = jax.lax.axis_index(AXIS)
        plan = _shard_plan(sprog, jax.tree.map(lambda x: x[0], eqx.combine(tables, tables_static)), part)
        view = LocalShardView(program.gibbs_spec, layout, part)
        # the observer is closed over: its shard form needs its (static) index tables concrete
        shard_observation = f_observe.for_shard(program, view) if hasattr(f_observe, "for_shard") else None
        if shard_observation is None:
            shard_observation = _Reassembled(f_observe, program, view)
        carry = shard_observation.init(carry_init)
        args, args_static = eqx.partition(shard_observation, eqx.is_array)

        def observe(args, state, carry, iteration):
            return eqx.combine(args, args_static).observe(state, carry, iteration)

        def chain(chain_key, state):
            return run_chain(plan, chain_key, schedule, state, [s.init() for s in plan.samplers], carry, observe, args)

        keys = key_data if key_impl is None else jax.random.wrap_key_data(key_data, impl=key_impl)
        state = [None if x is None else jax.tree.map(lambda y: y[:, 0], x) for x in local]
        carry, observations = jax.vmap(chain)(keys, state)
        return jax.vmap(shard_observation.finalize)(carry, observations)

    in_specs = (P("chains"), P("chains", "graph"), P("graph"), P())
    mapped = jax.shard_map(per_shard, mesh=mesh, in_specs=in_specs, out_specs=P("chains"), check_vma=False)
    return mapped(key_data, local, tables, carry_init)


_sample_compiled = eqx.filter_jit(_sample)


def spans_processes(mesh) -> bool:
    """Whether `mesh` holds devices of other processes (a `jax.distributed` run)."""
    return any(d.process_index != jax.process_index() for d in mesh.devices.flat)


def to_global(tree, mesh, spec: P):
    """Every array of `tree` as a global array over `mesh` laid out by `spec`, built from the whole
    value that every process holds (PRNG keys too); arrays that are global already stay as they
    are. `jax.device_put` cannot do this when the mesh spans processes.

    **Arguments:**

    - `tree`: a pytree (non-array leaves pass through).
    - `mesh`: the mesh (e.g. a `ShardedProgram`'s).
    - `spec`: how the arrays are split over the mesh's axes (`P()`: replicated).
    """

    def one(x):
        if not eqx.is_array(x) or (isinstance(x, jax.Array) and not x.is_fully_addressable):
            return x
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            impl = jax.random.key_impl(x)
            return jax.random.wrap_key_data(one(jax.random.key_data(x)), impl=impl)
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, NamedSharding(mesh, spec), lambda idx: host[idx])

    return jax.tree.map(one, tree)


def _globalize(args):
    """The arguments of `_sample` with every array a global array of the sharded program's mesh
    (every process holds all of every input): the sharded tables split over `graph`, the keys
    and initial states over `chains`, everything else replicated."""
    sprog, keys, schedule, init, clamp, carry, observer = args
    mesh = sprog.mesh
    tables = to_global(sprog.tables, mesh, P("graph"))
    sprog = eqx.tree_at(lambda s: s.tables, to_global(sprog, mesh, P()), tables)
    return (sprog, to_global(keys, mesh, P("chains")), schedule, to_global(init, mesh, P("chains")),
            to_global(clamp, mesh, P()), to_global(carry, mesh, P()), to_global(observer, mesh, P()))


def _gather_to_host(outputs):
    """Outputs sharded over processes, as full host arrays on every process."""
    return multihost_utils.process_allgather(outputs, tiled=True)
