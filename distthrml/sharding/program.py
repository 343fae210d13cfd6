"""`shard_program`: a program split over the `graph` axis of a device mesh.

The sharded program is the program's own tables restricted to each shard's nodes and re-indexed
to its local state (`layout.py`); sampling it runs the one engine on every shard (`run.py`).
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import numpy as np
from jax import numpy as jnp
from jax.sharding import Mesh

import partition as partition_lib

from ..block_management import state_bytes
from ..block_sampling import BatchedProgram, BlockSamplingProgram
from ..engine import BlockTables
from ..errors import ShardingError
from ..graph import interaction_graph
from .layout import EXCHANGES, ShardLayout, build_layout, program_node_block
from .run import sample_sharded

class ShardedProgram(BatchedProgram):
    """A `BlockSamplingProgram` laid out over the `graph` axis of a mesh (see `shard_program`).
    `sample_states` and `sample_with_observation` take one key per chain and states with a
    leading chain axis, and return what `jax.vmap` of the unsharded call returns, bit for bit, in
    the program's random stream (`program.rng`; `with_program(program.with_rng(...))` switches).

    **Attributes:**

    - `program`: the unsharded program.
    - `partition`: the `partition.Partition` used, with the program's update blocks.
    - `mesh`: the `Mesh` with axes `("chains", "graph")`.
    - `layout`: the per-shard layout (numpy bookkeeping).
    - `tables`: per free block, its `BlockTables` restricted to each shard's nodes and
        re-indexed to the local state, leading axis `n_parts`.
    """

    program: BlockSamplingProgram
    partition: object = eqx.field(static=True)
    mesh: Mesh = eqx.field(static=True)
    layout: ShardLayout = eqx.field(static=True)
    tables: list[BlockTables]

    @property
    def n_parts(self) -> int:
        return self.layout.n_parts

    @property
    def exchange(self) -> tuple[str, ...]:
        """Per free block, how its halo moves: `"ppermute"` or `"all_to_all"` (`distthrml.sharding.exchange`)."""
        return self.layout.transport

    def sample_with_observation(self, keys, schedule, init_chain_state, state_clamp, observation_carry_init, f_observe):
        return sample_sharded(self, keys, schedule, init_chain_state, state_clamp, observation_carry_init, f_observe)

    def with_program(self, program: BlockSamplingProgram) -> ShardedProgram:
        """The same layout and exchange plans for a program of identical structure (same blocks,
        interaction types and tails) whose parameters differ, e.g. after a training step. Only
        the parameters are re-gathered, so this is cheap and works under `jax.jit`.

        **Arguments:**

        - `program`: the new program; built like the sharded one, with other parameter values.
        """
        old, new = self.program.gibbs_spec, getattr(program, "gibbs_spec", None)
        if new is None or len(new.free_blocks) != len(old.free_blocks) or new.n_nodes != old.n_nodes:
            raise ShardingError("with_program needs a program with the same blocks as the sharded one")
        for b, (x, y) in enumerate(zip(old.free_blocks, new.free_blocks)):
            if len(x) != len(y) or not np.array_equal(x.ids, y.ids):
                raise ShardingError(f"with_program: free block {b} differs from the sharded program's")
        old_tails, new_tails = self.program.per_block_interaction_tail_index, program.per_block_interaction_tail_index
        for b, (x, y) in enumerate(zip(old_tails, new_tails)):
            if [[t.shape for t in g] for g in x] != [[t.shape for t in g] for g in y]:
                raise ShardingError(f"with_program: the interactions of free block {b} have another structure")
        tables = [
            dataclasses.replace(t, interactions=i) for t, i in zip(self.tables, _local_interactions(program, self.layout))
        ]
        return dataclasses.replace(self, program=program, tables=tables)

    def halo_bytes_per_sweep(self) -> int:
        """Bytes the executed exchange plans move per sweep (unpadded), all shards together;
        equal to `partition.report(bytes per node)["halo_bytes_per_sweep"]`."""
        spec = self.program.gibbs_spec
        return sum(
            state_bytes(spec.node_shape_struct[spec.free_blocks[b].node_type]) * sum(int(r.count.sum()) for r in rounds)
            for b, rounds in enumerate(self.layout.exchange)
        )


def _default_mesh(n_parts: int) -> Mesh:
    devices = jax.devices()
    if len(devices) < n_parts:
        raise ShardingError(
            f"{n_parts} graph parts need {n_parts} devices, {len(devices)} available (on CPU, emulate "
            f"devices with XLA_FLAGS=--xla_force_host_platform_device_count={n_parts}), or pass a mesh"
        )
    return Mesh(np.array(devices[:n_parts]).reshape(1, n_parts), ("chains", "graph"))


def shard_program(program: BlockSamplingProgram, partition, mesh: Mesh | None = None, *, exchange: str = "auto") -> ShardedProgram:
    """Split `program` over the devices of `mesh`'s `graph` axis.

    **Arguments:**

    - `program`: the program to shard.
    - `partition`: a `partition.Partition` of `interaction_graph(program)`, or an int (a METIS
        partition into that many parts).
    - `mesh`: a `Mesh` with axes `("chains", "graph")`; by default all parts on `graph`, one
        chain group, the first `n_parts` devices.
    - `exchange`: `"auto"` (the default), `"ppermute"` (rounds of neighbour messages) or
        `"all_to_all"` (one collective per block); see `distthrml.sharding.exchange`. The samples
        do not depend on it.
    """
    if not isinstance(program, BlockSamplingProgram):
        raise ShardingError(f"shard_program needs a BlockSamplingProgram, got {type(program).__name__}")
    if exchange not in EXCHANGES:
        raise ShardingError(f"exchange must be one of {EXCHANGES}, got {exchange!r}")
    n = program.gibbs_spec.n_nodes
    graph = interaction_graph(program)
    if isinstance(partition, (int, np.integer)):
        if not 1 <= int(partition) <= n:
            raise ShardingError(f"number of parts must be between 1 and the program's {n} nodes, got {partition}")
        partition = partition_lib.partition_graph(graph, int(partition), method="metis")
    assignment = np.asarray(getattr(partition, "assignment", None))
    if assignment.ndim != 1 or len(assignment) != n:
        raise ShardingError(
            f"the partition has {assignment.size} nodes but the program has {n}: it is a partition of another "
            "graph (partition interaction_graph(program))"
        )
    if not _same_structure(getattr(partition, "csr", None), graph):
        raise ShardingError("the partition was computed on a different graph than interaction_graph(program)")
    n_parts = int(partition.n_parts)
    mesh = _default_mesh(n_parts) if mesh is None else mesh
    if tuple(mesh.axis_names) != ("chains", "graph"):
        raise ShardingError(f"the mesh must have axes ('chains', 'graph'), got {tuple(mesh.axis_names)}")
    # jax.make_mesh gives Explicit axes by default; the engine's shard_map wants Auto ones
    mesh = Mesh(np.asarray(mesh.devices), tuple(mesh.axis_names))
    if mesh.shape["graph"] != n_parts:
        raise ShardingError(f"the partition has {n_parts} parts but the mesh's graph axis has {mesh.shape['graph']} devices")

    partition = partition.with_blocks(program_node_block(program))
    layout = build_layout(program, partition, exchange)
    return ShardedProgram(program, partition, mesh, layout, _local_tables(program, layout))


def _same_structure(csr, graph) -> bool:
    if csr is graph:
        return True
    if csr is None or csr.shape != graph.shape or csr.nnz != graph.nnz:
        return False
    return bool(np.array_equal(csr.indptr, graph.indptr) and np.array_equal(csr.indices, graph.indices))


def _owned_rows(spec, layout: ShardLayout, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of free block b each shard owns, `[P, width]` (padding -> row 0), and their validity."""
    table = layout.owned[b]
    valid = table >= 0
    return np.where(valid, table - spec.block_starts[b], 0), valid


def _local_tables(program: BlockSamplingProgram, layout: ShardLayout) -> list[BlockTables]:
    """Every free block's tables restricted to each shard's rows and re-indexed to local rows."""
    spec = program.gibbs_spec
    parts = np.arange(layout.n_parts)[:, None, None]
    interactions = _local_interactions(program, layout)
    tables = []
    for b in range(len(spec.free_blocks)):
        rows, valid = _owned_rows(spec, layout, b)
        active, positions = [], []
        for j, tails in enumerate(program.per_block_interaction_tail_index[b]):
            act = np.asarray(program.per_block_interaction_active[b][j])[rows] & valid[:, :, None]
            group = []
            for tail in tails:
                local = layout.index.lookup(parts, tail[rows])  # [P, width, k]
                if np.any((local < 0) & act):
                    raise ShardingError("internal: a shard reads a node it neither owns nor receives")
                group.append(jnp.asarray(np.where(act, local, 0).astype(np.int32)))
            active.append(jnp.asarray(act))
            positions.append(group)
        node_index = jnp.asarray(np.where(valid, layout.owned[b], 0).astype(np.int32))
        # positions in the block, the THRML stream's counters; padding rows fall outside the block
        block_rows = jnp.asarray(np.where(valid, layout.owned[b] - spec.block_starts[b], len(spec.free_blocks[b])).astype(np.int32))
        packed = program.per_block_multispin[b] if program.per_block_multispin is not None else None
        if packed is not None:
            packed = jax.tree.map(lambda x: jnp.take(x, jnp.asarray(rows), axis=0), packed)
        tables.append(BlockTables(interactions[b], active, positions, node_index, block_rows, packed))
    return tables


def _local_interactions(program: BlockSamplingProgram, layout: ShardLayout) -> list:
    """The program's interaction parameters restricted to each shard's rows (works under jit)."""
    spec = program.gibbs_spec
    out = []
    for b in range(len(spec.free_blocks)):
        rows = jnp.asarray(_owned_rows(spec, layout, b)[0])
        out.append(
            [
                jax.tree.map(lambda x: jnp.take(x, rows, axis=0) if eqx.is_array(x) else x, group)
                for group in program.per_block_interactions[b]
            ]
        )
    return out
