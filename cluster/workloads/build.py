"""A `model:` section built into a sampling program, array-natively; its partition; random
initial states."""

from __future__ import annotations

import dataclasses
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import partition as partition_lib
from partition.methods import contiguous_assignment

from distthrml.block_management import Block, block_state_bytes, make_block
from distthrml.block_sampling import BlockGibbsSpec, BlockSamplingProgram
from distthrml.factor import FactorSamplingProgram
from distthrml.graph import interaction_graph
from distthrml.models import (
    CategoricalEBMFactor,
    CategoricalGibbsConditional,
    IsingEBM,
    IsingSamplingProgram,
)
from distthrml.pgm import CategoricalNode, SpinNode
from distthrml.sharding.layout import program_node_block

from .graphs import color_classes, model_graph
from .schema import ModelConfig


@dataclasses.dataclass(frozen=True)
class BuiltModel:
    """A model, ready to sample.

    **Fields:**

    - `name`: a one-line description.
    - `program`: the sampling program (free blocks = color classes, no clamped blocks).
    - `blocks`: its free blocks.
    - `nodes`: all nodes; node number `i` (the id in `edges`) is `nodes[i]`.
    - `edges`: `[E, 2]` node numbers of the coupled pairs.
    - `weights`: `[E]` couplings when they differ per edge, else None (all `model.coupling`).
    - `lattice`: `(rows, cols)` for lattices (node `r * cols + c`), else None.
    - `categories`: Potts categories, or None for spins.
    - `build_seconds`: time taken to build.
    - `node_of_index`: `[N]` node number of every program index (the program numbers its nodes
      block by block, i.e. colour class by colour class).
    """

    name: str
    program: BlockSamplingProgram
    blocks: list[Block]
    nodes: Block
    edges: np.ndarray
    weights: np.ndarray | None
    lattice: tuple[int, int] | None
    categories: int | None
    build_seconds: float
    node_of_index: np.ndarray

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def node_bytes(self) -> int:
        """Bytes of one node's state (the unit of halo traffic; all nodes share one type)."""
        return block_state_bytes(self.program.gibbs_spec, 0)


def build_model(model: ModelConfig, source: str | pathlib.Path | None = None) -> BuiltModel:
    """Build the graph, colouring and program of a `model:` section.

    **Arguments:**

    - `model`: a validated section (`parse_model`).
    - `source`: the config file (edge-list paths are relative to its folder).
    """
    m = model
    start = time.perf_counter()
    graph = model_graph(m, source)
    edges, n = graph.edges, graph.n_nodes
    classes = color_classes(graph.colors)
    if m.kind == "potts2d":
        nodes = make_block(CategoricalNode, n)
        blocks = [nodes[ids] for ids in classes]
        k = m.categories
        table = np.broadcast_to(np.float32(m.beta * m.coupling) * np.eye(k, dtype=np.float32), (len(edges), k, k))
        factor = CategoricalEBMFactor([nodes[edges[:, 0]], nodes[edges[:, 1]]], jnp.asarray(table))
        samplers = [CategoricalGibbsConditional(k)] * len(blocks)
        program = FactorSamplingProgram(BlockGibbsSpec(blocks, []), samplers, [factor], [])
    else:
        nodes = make_block(SpinNode, n)
        blocks = [nodes[ids] for ids in classes]
        couplings = np.full(len(edges), m.coupling, np.float32) if graph.weights is None else graph.weights.astype(np.float32)
        ebm = IsingEBM(
            nodes,
            (nodes[edges[:, 0]], nodes[edges[:, 1]]),
            jnp.full(n, m.field, jnp.float32),
            jnp.asarray(couplings),
            jnp.array(m.beta, jnp.float32),
        )
        program = IsingSamplingProgram(ebm, blocks, [])
    name = f"{graph.name}, {n} nodes, {len(edges)} edges, {len(blocks)} colors"
    return BuiltModel(
        name, program, blocks, nodes, edges, graph.weights, graph.lattice,
        m.categories if m.kind == "potts2d" else None, time.perf_counter() - start, np.concatenate(classes),
    )


def partition_model(model: BuiltModel, parts: int, method: str, seed: int = 0, capacity: int | None = None,
                    assignment: np.ndarray | None = None):
    """A `partition.Partition` of the model's interaction graph (program indices) into `parts`.

    `contiguous` takes consecutive *node numbers* (row-major on lattices, so horizontal strips),
    not consecutive program indices, which run colour class by colour class.

    **Arguments:**

    - `model`: the built model.
    - `parts`: number of parts.
    - `method`: `metis`, `random` or `contiguous`.
    - `seed`: METIS / random seed.
    - `capacity`: the most nodes one part may hold (a chip's capacity), or None.
    - `assignment`: the part of every program index, computed before (by a launcher's driver,
        which partitions once for all its workers); None partitions here.

    **Returns:** the partition with the program's update blocks, so that its halo plan is built
    once for the report, the sharded program and the emulation.
    """
    return _partition(model, parts, method, seed, capacity, assignment).with_blocks(program_node_block(model.program))


def _partition(model: BuiltModel, parts: int, method: str, seed: int, capacity: int | None, assignment):
    graph = interaction_graph(model.program)
    if assignment is not None:
        return partition_lib.Partition(assignment=np.asarray(assignment, np.int64), n_parts=parts,
                                       csr=partition_lib.as_csr(graph), method=method, seed=seed, capacity=capacity)
    if method != "contiguous":
        if capacity is None:
            return partition_lib.partition_graph(graph, parts, method=method, seed=seed)
        return partition_lib.partition_capacity(graph, capacity, parts, method=method, seed=seed)
    if capacity is not None and parts * capacity < model.n_nodes:
        raise partition_lib.PartitionError(
            f"capacity too small: {parts} parts of at most {capacity} nodes hold {parts * capacity} < {model.n_nodes} nodes"
        )
    by_number = contiguous_assignment(model.n_nodes, parts)
    return partition_lib.Partition(assignment=by_number[model.node_of_index], n_parts=parts,
                                   csr=partition_lib.as_csr(graph), method="contiguous", capacity=capacity)


def random_states(key: jax.Array, blocks: list[Block], chains: int, categories: int | None = None) -> list[jax.Array]:
    """Uniformly random states `[chains, len(block)]` of every block: spins (bool), or
    categories `0..categories-1` (uint8). Block b draws from `split(key, len(blocks))[b]`.

    **Arguments:**

    - `key`: the PRNG key.
    - `blocks`: the blocks (all of spins, or all categorical).
    - `chains`: the leading chain axis.
    - `categories`: the number of categories, or None for spins.
    """
    keys = jax.random.split(key, len(blocks))
    if categories is None:
        return [jax.random.bernoulli(k, 0.5, (chains, len(b))) for k, b in zip(keys, blocks)]
    return [jax.random.randint(k, (chains, len(b)), 0, categories, jnp.int32).astype(jnp.uint8) for k, b in zip(keys, blocks)]
