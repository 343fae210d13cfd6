"""Sampling a `ShardedProgram`: `shard_map` over ("chains", "graph"), halo exchange per superblock.

Each shard runs the unsharded algorithm on its local layout: per superblock it gathers tail
states from its local arrays, calls the blocks' samplers on the nodes it owns (drawing each
node's randomness from its program index, so results match the unsharded chain bit for bit),
writes them, then sends the boundary states of the blocks just updated to the shards that read
them, one `ppermute` round per part offset that carries traffic. Observers see the state
reassembled across shards (an `all_gather` of owned values, once per observation, not per
colour step).
"""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np
from jax import numpy as jnp
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ..block_management import block_state_to_global
from ..block_sampling import _check_sampler_output, _observe, _verify_states, run_chain
from ..errors import StateError
from .program import ShardedProgram, ShardingError


def _local_output_sd(sprog: ShardedProgram, b: int):
    spec = sprog.program.gibbs_spec
    width = sprog.layout.block_width[b]
    template = spec.node_shape_struct[spec.free_blocks[b].node_type]
    return jax.tree.map(lambda sd: jax.ShapeDtypeStruct((width, *sd.shape), sd.dtype), template)


def _sweep(sprog: ShardedProgram, tables, key, local, sampler_states):
    spec, layout = sprog.program.gibbs_spec, sprog.layout
    interactions, active, slices, node_index = tables
    local, sampler_states = list(local), list(sampler_states)
    for group in spec.sampling_order:
        updates = []
        for b in group:
            tails = [
                [jax.tree.map(lambda x: jnp.take(x, sl, axis=0), local[i]) for i, sl in zip(inds, sls)]
                for inds, sls in zip(sprog.program.per_block_interaction_global_inds[b], slices[b])
            ]
            out_sd = _local_output_sd(sprog, b)
            out, ss = sprog.program.samplers[b].sample_per_node(
                key, node_index[b], interactions[b], active[b], tails, sampler_states[b], out_sd
            )
            _check_sampler_output(sprog.program, b, out, out_sd)
            updates.append((b, out, ss))
        for b, out, ss in updates:
            s, offset = spec.block_sd_index[b], layout.block_offset[b]
            sampler_states[b] = ss
            local[s] = jax.tree.map(lambda g, x: jax.lax.dynamic_update_slice_in_dim(g, x, offset, axis=0), local[s], out)
            for r in layout.exchange[b]:
                perm = list(r.pairs)
                send, recv = _round_rows(r)
                sent = jax.tree.map(lambda x: jax.lax.ppermute(jnp.take(x, send, axis=0), "graph", perm), out)
                local[s] = jax.tree.map(lambda g, y: g.at[recv].set(y), local[s], sent)
    return local, sampler_states


def _round_rows(r):
    """This shard's rows of an exchange round's send/receive tables."""
    p = jax.lax.axis_index("graph")
    return jnp.asarray(r.send)[p], jnp.asarray(r.recv)[p]


def _reassemble(sprog: ShardedProgram, local) -> list:
    """The global state, identical on all shards: every shard contributes the values it owns
    (an `all_gather` of owned slots only, so N values move, not N per shard)."""
    spec, layout = sprog.program.gibbs_spec, sprog.layout
    p = jax.lax.axis_index("graph")
    out = []
    for s, entry in enumerate(local):
        if entry is None:
            out.append(None)
            continue
        ol = jnp.asarray(layout.owned_local[s])[p]
        og = jnp.asarray(layout.owned_global[s].reshape(-1))  # every shard's owned positions, pad = size

        def one(x, size=spec.sd_sizes[s], ol=ol, og=og):
            everyone = jax.lax.all_gather(jnp.take(x, ol, axis=0), "graph", tiled=True)
            return jnp.zeros((size + 1, *x.shape[1:]), x.dtype).at[og].set(everyone)[:size]

        out.append(jax.tree.map(one, entry))
    return out


def _batched(x, n_chains, what):
    if x.shape[:1] != (n_chains,):
        raise ShardingError(f"{what} has leading shape {x.shape[:1]}, expected the chain count ({n_chains},) of the keys")
    return x


def sample_with_observation_sharded(key, sprog: ShardedProgram, schedule, init_chain_state, state_clamp, carry_init, f_observe):
    """`sample_with_observation` for a `ShardedProgram`: `key` is a batch of chain keys and the
    states carry the same leading chain axis (clamped states may also be shared)."""
    program, spec, layout, mesh = sprog.program, sprog.program.gibbs_spec, sprog.layout, sprog.mesh
    keys = key
    if keys.ndim < 1 or (not jnp.issubdtype(keys.dtype, jax.dtypes.prng_key) and keys.ndim != 2):
        raise ShardingError("a sharded program takes one key per chain: pass jax.random.split(key, n_chains)")
    n_chains = keys.shape[0]
    if n_chains % mesh.shape["chains"]:
        raise ShardingError(f"{n_chains} chains are not divisible by the mesh's chains axis ({mesh.shape['chains']})")
    init = [jax.tree.map(lambda x: _batched(x, n_chains, f"initial state of free block {i}"), s) for i, s in enumerate(init_chain_state)]
    clamp = []
    for i, (block, s) in enumerate(zip(spec.clamped_blocks, state_clamp)):
        leaves = jax.tree.leaves(s)
        sd = jax.tree.leaves(spec.node_shape_struct[block.node_type])
        shared = leaves and leaves[0].ndim == len(sd[0].shape) + 1
        clamp.append(jax.tree.map(lambda x: jnp.broadcast_to(x, (n_chains, *x.shape)), s) if shared else s)
    if len(clamp) != len(state_clamp) or len(state_clamp) != len(spec.clamped_blocks):
        raise StateError(f"got {len(state_clamp)} clamped block states for {len(spec.clamped_blocks)} clamped blocks")
    _verify_states(program, [jax.tree.map(lambda x: x[0], s) for s in init], [jax.tree.map(lambda x: x[0], s) for s in clamp])

    global_state = jax.vmap(lambda f, c: block_state_to_global(list(f) + list(c), spec))(init, clamp)
    local = [
        None if g is None else jax.tree.map(lambda x, idx=layout.gather[s]: x[:, idx], g) for s, g in enumerate(global_state)
    ]
    tables = (sprog.local_interactions, sprog.local_active, sprog.local_slices, sprog.local_node_index)
    arrays, static = eqx.partition(tables, eqx.is_array)

    key_impl = jax.random.key_impl(keys) if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key) else None
    key_data = jax.random.key_data(keys) if key_impl is not None else keys

    def per_shard(key_data, local, arrays, carry_init):
        tabs = jax.tree.map(lambda x: x[0], eqx.combine(arrays, static))
        keys = key_data if key_impl is None else jax.random.wrap_key_data(key_data, impl=key_impl)

        def chain(chain_key, state):
            state = [None if x is None else jax.tree.map(lambda y: y[0], x) for x in state]
            return run_chain(
                chain_key,
                schedule,
                lambda k, st, ss: _sweep(sprog, tabs, k, st, ss),
                lambda st, c, i: _observe(f_observe, program, _reassemble(sprog, st), c, i),
                state,
                [s.init() for s in program.samplers],
                carry_init,
            )

        return jax.vmap(chain)(keys, local)

    in_specs = (P("chains"), P("chains", "graph"), P("graph"), P())
    mapped = jax.shard_map(per_shard, mesh=mesh, in_specs=in_specs, out_specs=P("chains"), check_vma=False)
    inputs = (key_data, local, arrays, carry_init)
    if not spans_processes(mesh):
        return mapped(*inputs)
    return _gather_to_host(jax.jit(mapped)(*_to_global(inputs, in_specs, mesh)))


def spans_processes(mesh) -> bool:
    """Whether `mesh` holds devices of other processes (a `jax.distributed` run)."""
    return any(d.process_index != jax.process_index() for d in mesh.devices.flat)


def _to_global(inputs, in_specs, mesh):
    """Every process holds the whole of every input (same program, keys and states); turn each
    leaf into a global array laid out as `shard_map` expects. Traced inputs (a call inside the
    user's `jit`) must already be global and are left alone."""

    def one(x, spec):
        if isinstance(x, jax.core.Tracer) or (isinstance(x, jax.Array) and not x.is_fully_addressable):
            return x
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, NamedSharding(mesh, spec), lambda idx: host[idx])

    return tuple(jax.tree.map(lambda x, spec=spec: one(x, spec), tree) for tree, spec in zip(inputs, in_specs))


def _gather_to_host(outputs):
    """Outputs sharded over processes, as full host arrays on every process."""
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(outputs)):
        return outputs
    return multihost_utils.process_allgather(outputs, tiled=True)
