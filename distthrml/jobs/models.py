"""Building a job's model and sampling program from its `model:` section, array-natively."""

from __future__ import annotations

import dataclasses
import time
import warnings

import jax.numpy as jnp
import numpy as np

from ..block_management import Block, make_block
from ..block_sampling import BlockGibbsSpec, BlockSamplingProgram
from ..factor import FactorSamplingProgram
from ..models import (
    CategoricalEBMFactor,
    CategoricalGibbsConditional,
    IsingEBM,
    IsingSamplingProgram,
)
from ..pgm import CategoricalNode, SpinNode
from .config import ConfigError, RunConfig, edge_list_path


@dataclasses.dataclass(frozen=True)
class BuiltModel:
    """A job's model, ready to sample.

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


def build_model(config: RunConfig) -> BuiltModel:
    """Build the model of `config.model` (graph, colouring, program).

    **Arguments:**

    - `config`: a validated run config.
    """
    m = config.model
    start = time.perf_counter()
    weights = None
    if m.kind in ("ising2d", "potts2d"):
        from partition.generators import checkerboard_colors, torus_edges

        edges, colors = torus_edges(m.rows, m.cols), checkerboard_colors(m.rows, m.cols)
        n, lattice, name = m.rows * m.cols, (m.rows, m.cols), f"{m.kind} {m.rows}x{m.cols} torus"
    else:
        edges, n, weights, name = _graph(config)
        colors, lattice = _greedy_colors(edges, n), None
    classes = [np.flatnonzero(colors == c) for c in range(int(colors.max()) + 1)]
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
        couplings = np.full(len(edges), m.coupling, np.float32) if weights is None else weights.astype(np.float32)
        model = IsingEBM(
            nodes,
            (nodes[edges[:, 0]], nodes[edges[:, 1]]),
            jnp.full(n, m.field, jnp.float32),
            jnp.asarray(couplings),
            jnp.array(m.beta, jnp.float32),
        )
        program = IsingSamplingProgram(model, blocks, [])
    name += f", {n} nodes, {len(edges)} edges, {len(blocks)} colors"
    return BuiltModel(
        name, program, blocks, nodes, edges, weights, lattice,
        m.categories if m.kind == "potts2d" else None, time.perf_counter() - start, np.concatenate(classes),
    )


def partition_model(model: BuiltModel, parts: int, method: str, seed: int = 0, capacity: int | None = None):
    """A `partition.Partition` of the model's interaction graph (program indices) into `parts`.

    `contiguous` takes consecutive *node numbers* (row-major on lattices, so horizontal strips),
    not consecutive program indices, which run colour class by colour class.

    **Arguments:**

    - `model`: the built model.
    - `parts`: number of parts.
    - `method`: `metis`, `random` or `contiguous`.
    - `seed`: METIS / random seed.
    - `capacity`: the most nodes one part may hold (a chip's capacity), or None.

    **Returns:** the partition with the program's update blocks, so that its halo plan is built
    once for the report, the sharded program and the emulation.
    """
    from ..sharding.layout import program_node_block

    return _partition(model, parts, method, seed, capacity).with_blocks(program_node_block(model.program))


def _partition(model: BuiltModel, parts: int, method: str, seed: int, capacity: int | None):
    import partition as partition_lib

    from ..graph import interaction_graph

    graph = interaction_graph(model.program)
    if method != "contiguous":
        if capacity is None:
            return partition_lib.partition_graph(graph, parts, method=method, seed=seed)
        return partition_lib.partition_capacity(graph, capacity, parts, method=method, seed=seed)
    if capacity is not None and parts * capacity < model.n_nodes:
        raise ValueError(f"capacity too small: {parts} parts of at most {capacity} nodes hold {parts * capacity} "
                         f"< {model.n_nodes} nodes")
    from partition.methods import contiguous_assignment

    by_number = contiguous_assignment(model.n_nodes, parts)
    return partition_lib.Partition(assignment=by_number[model.node_of_index], n_parts=parts,
                                   csr=partition_lib.as_csr(graph), method="contiguous", capacity=capacity)


def _greedy_colors(edges: np.ndarray, n: int) -> np.ndarray:
    from partition.coloring import greedy_color
    from partition.generators import edges_to_csr

    return greedy_color(edges_to_csr(edges, n))


def _graph(config: RunConfig) -> tuple[np.ndarray, int, np.ndarray | None, str]:
    """Edges, node count, per-edge weights (or None) and a name of a general graph."""
    from partition.generators import pegasus_edges, random_regular_edges

    m = config.model
    if m.kind == "pegasus":
        edges = pegasus_edges(m.m)
        return edges, int(edges.max()) + 1, None, f"pegasus P({m.m})"
    if m.kind == "random_regular":
        try:
            edges = random_regular_edges(m.n, m.degree, m.seed)
        except ValueError as err:
            raise ConfigError(f"model (random_regular n={m.n}, degree={m.degree}): {err}") from None
        return edges, m.n, None, f"random {m.degree}-regular graph (seed {m.seed})"
    return _edge_list(config)


def _edge_list(config: RunConfig) -> tuple[np.ndarray, int, np.ndarray | None, str]:
    from partition.generators import load_edge_list

    path, column = edge_list_path(config), config.model.weights
    if not path.is_file():
        raise ConfigError(f"model.path: edge-list file not found: {path}")
    try:
        edges = load_edge_list(path)
    except ValueError as err:
        raise ConfigError(f"model.path: {err}") from None
    loops = np.flatnonzero(edges[:, 0] == edges[:, 1])
    if loops.size:
        raise ConfigError(
            f"model.path: edge list {path} has {loops.size} self loop(s), the first at node {int(edges[loops[0], 0])} "
            f"(edge {int(loops[0])})"
        )
    weights = None
    if column is not None:
        if path.suffix == ".npy":
            raise ConfigError(f"model.weights: {path} is a .npy array of node pairs; weights need a text edge list")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                weights = np.loadtxt(path, dtype=np.float64, comments="#", ndmin=1, usecols=(column,))
        except (ValueError, IndexError) as err:
            raise ConfigError(f"model.weights: cannot read column {column} of edge list {path} as numbers ({err})") from None
        if not np.all(np.isfinite(weights)):
            raise ConfigError(f"model.weights: column {column} of edge list {path} has a non-finite weight (edge {int(np.flatnonzero(~np.isfinite(weights))[0])})")
    return edges, int(edges.max()) + 1, weights, f"edge list {path.name}"
