"""`shard_program`: a program split over the `graph` axis of a device mesh."""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import numpy as np
from jax import numpy as jnp
from jax.sharding import Mesh

from ..block_sampling import BlockSamplingProgram
from ..errors import DistThrmlError
from ..graph import interaction_graph
from .layout import ShardLayout, build_layout


class ShardingError(DistThrmlError):
    """A partition, mesh or batch does not fit a sharded program."""


class ShardedProgram(eqx.Module):
    """A `BlockSamplingProgram` laid out over the `graph` axis of a mesh (see `shard_program`).

    **Attributes:**

    - `program`: the unsharded program.
    - `partition`: the `partition.Partition` used.
    - `mesh`: the `Mesh` with axes `("chains", "graph")`.
    - `layout`: the per-shard layout (numpy bookkeeping).
    - `local_interactions`, `local_active`, `local_slices`, `local_node_index`: per free block
        the program's tables restricted to each shard's nodes, leading axis `n_parts`.
    """

    program: BlockSamplingProgram
    partition: object = eqx.field(static=True)
    mesh: Mesh = eqx.field(static=True)
    layout: ShardLayout = eqx.field(static=True)
    local_interactions: list
    local_active: list
    local_slices: list
    local_node_index: list

    @property
    def n_parts(self) -> int:
        return self.layout.n_parts

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
        return dataclasses.replace(self, program=program, local_interactions=_local_interactions(program, self.layout))

    def halo_bytes_per_sweep(self) -> int:
        """Bytes the executed exchange plans move per sweep (unpadded), all shards together."""
        spec = self.program.gibbs_spec
        total = 0
        for b, rounds in enumerate(self.layout.exchange):
            sd = spec.node_shape_struct[spec.free_blocks[b].node_type]
            node_bytes = sum(int(np.prod(x.shape, dtype=np.int64)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(sd))
            total += node_bytes * sum(int(r.count.sum()) for r in rounds)
        return total


def _default_mesh(n_parts: int) -> Mesh:
    devices = jax.devices()
    if len(devices) < n_parts:
        raise ShardingError(
            f"{n_parts} graph parts need {n_parts} devices, {len(devices)} available (on CPU, emulate "
            f"devices with XLA_FLAGS=--xla_force_host_platform_device_count={n_parts}), or pass a mesh"
        )
    return Mesh(np.array(devices[:n_parts]).reshape(1, n_parts), ("chains", "graph"))


def shard_program(program: BlockSamplingProgram, partition, mesh: Mesh | None = None) -> ShardedProgram:
    """Split `program` over the devices of `mesh`'s `graph` axis.

    **Arguments:**

    - `program`: the program to shard.
    - `partition`: a `partition.Partition` of `interaction_graph(program)`, or an int (a METIS
        partition into that many parts).
    - `mesh`: a `Mesh` with axes `("chains", "graph")`; by default all parts on `graph`, one
        chain group, the first `n_parts` devices.
    """
    import partition as partition_lib

    if not isinstance(program, BlockSamplingProgram):
        raise ShardingError(f"shard_program needs a BlockSamplingProgram, got {type(program).__name__}")
    n = program.gibbs_spec.n_nodes
    if isinstance(partition, (int, np.integer)):
        if not 1 <= int(partition) <= n:
            raise ShardingError(f"number of parts must be between 1 and the program's {n} nodes, got {partition}")
        partition = partition_lib.partition_graph(interaction_graph(program), int(partition), method="metis")
    assignment = np.asarray(getattr(partition, "assignment", None))
    if assignment.ndim != 1 or len(assignment) != n:
        raise ShardingError(
            f"the partition has {assignment.size} nodes but the program has {n}: it is a partition of another "
            "graph (partition interaction_graph(program))"
        )
    csr = getattr(partition, "csr", None)
    if csr is not None and csr.shape == (n, n):
        graph = interaction_graph(program)
        if graph.nnz != csr.nnz or (abs(graph - (csr != 0).astype(graph.dtype)) != 0).nnz:
            raise ShardingError("the partition was computed on a different graph than interaction_graph(program)")
    n_parts = int(partition.n_parts)
    mesh = _default_mesh(n_parts) if mesh is None else mesh
    if tuple(mesh.axis_names) != ("chains", "graph"):
        raise ShardingError(f"the mesh must have axes ('chains', 'graph'), got {tuple(mesh.axis_names)}")
    # jax.make_mesh gives Explicit axes by default; the engine's shard_map wants Auto ones
    mesh = Mesh(np.asarray(mesh.devices), tuple(mesh.axis_names))
    if mesh.shape["graph"] != n_parts:
        raise ShardingError(f"the partition has {n_parts} parts but the mesh's graph axis has {mesh.shape['graph']} devices")

    layout = build_layout(program, assignment.astype(np.int64), n_parts)
    spec = program.gibbs_spec
    active, slices, node_index = [], [], []
    for b in range(len(spec.free_blocks)):
        rows, valid = _owned_rows(spec, layout, b)
        node_index.append(jnp.asarray(np.where(valid, layout.owned[b], 0).astype(np.int32)))
        b_active, b_slices = [], []
        for j, tails in enumerate(program.per_block_interaction_tail_index[b]):
            act = np.asarray(program.per_block_interaction_active[b][j])[rows] & valid[:, :, None]
            b_active.append(jnp.asarray(act))
            locals_ = []
            for tail in tails:
                t = tail[rows]  # [P, width, k] program indices
                pos = np.take_along_axis(layout.local_position, np.where(t >= 0, t, 0).reshape(len(t), -1), axis=1)
                pos = pos.reshape(t.shape)
                if np.any((pos < 0) & act):
                    raise ShardingError("internal: a shard reads a node it neither owns nor receives")
                locals_.append(jnp.asarray(np.where(act, pos, 0).astype(np.int32)))
            b_slices.append(locals_)
        active.append(b_active)
        slices.append(b_slices)
    return ShardedProgram(program, partition, mesh, layout, _local_interactions(program, layout), active, slices, node_index)


def _owned_rows(spec, layout: ShardLayout, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of free block b each shard owns, `[P, width]` (padding -> row 0), and their validity."""
    table = layout.owned[b]
    valid = table >= 0
    return np.where(valid, table - spec.block_starts[b], 0), valid


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
