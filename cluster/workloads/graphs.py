"""The graphs of the `model:` kinds, as edge arrays over node numbers `0..n-1`, and their colour
classes (the blocks a Gibbs sweep updates one after another)."""

from __future__ import annotations

import dataclasses
import pathlib
import warnings

import numpy as np
from partition.coloring import greedy_color
from partition.generators import (
    checkerboard_colors,
    edges_to_csr,
    load_edge_list,
    pegasus_edges,
    random_regular_edges,
    torus_edges,
)

from ..config_file import ConfigError
from ..resources import check_sampling_fits
from .schema import ModelConfig, edge_list_path


@dataclasses.dataclass(frozen=True)
class Graph:
    """A model's graph.

    **Fields:**

    - `edges`: `[E, 2]` node numbers of the coupled pairs.
    - `n_nodes`: node count.
    - `weights`: `[E]` couplings when they differ per edge (edge lists), else None.
    - `colors`: `[N]` colour of every node number (no edge joins two nodes of one colour).
    - `lattice`: `(rows, cols)` for lattices (node `r * cols + c`), else None.
    - `name`: a short description.
    """

    edges: np.ndarray
    n_nodes: int
    weights: np.ndarray | None
    colors: np.ndarray
    lattice: tuple[int, int] | None
    name: str


def model_graph(model: ModelConfig, source: str | pathlib.Path | None = None) -> Graph:
    """The graph of a `model:` section: lattices get the checkerboard colouring, other graphs
    `partition.coloring.greedy_color`.

    **Arguments:**

    - `model`: a validated section.
    - `source`: the config file (edge-list paths are relative to its folder).
    """
    m = model
    if m.kind in ("ising2d", "potts2d"):
        edges = torus_edges(m.rows, m.cols)
        return Graph(edges, m.rows * m.cols, None, checkerboard_colors(m.rows, m.cols), (m.rows, m.cols),
                     f"{m.kind} {m.rows}x{m.cols} torus")
    weights = None
    if m.kind == "pegasus":
        edges, name = pegasus_edges(m.m), f"pegasus P({m.m})"
    elif m.kind == "random_regular":
        edges, name = random_regular_edges(m.n, m.degree, m.seed), f"random {m.degree}-regular graph (seed {m.seed})"
    else:
        path = edge_list_path(m, source)
        edges, weights, name = _edge_list(path, m.weights), _weights(path, m.weights), f"edge list {path.name}"
    n = int(edges.max()) + 1 if m.kind != "random_regular" else m.n
    if m.kind == "edge_list":  # its size is known only now: ids beyond the edges' count are isolated nodes
        check_sampling_fits(n, len(edges), chains=0, samples=0, key=f"model.path ({path.name}: node ids up to {n - 1})")
    return Graph(edges, n, weights, color_nodes(edges, n), None, name)


def color_nodes(edges: np.ndarray, n_nodes: int) -> np.ndarray:
    """A colour of every node such that no edge joins two nodes of one colour (greedy).

    **Arguments:**

    - `edges`: `[E, 2]` node numbers.
    - `n_nodes`: node count.
    """
    return greedy_color(edges_to_csr(edges, n_nodes, self_loops="error"))


def color_classes(colors: np.ndarray) -> list[np.ndarray]:
    """The node numbers of every colour, colour 0 first.

    **Arguments:**

    - `colors`: `[N]` colour of every node.
    """
    return [np.flatnonzero(colors == c) for c in range(int(colors.max()) + 1)]


def _edge_list(path: pathlib.Path, weights: int | None) -> np.ndarray:
    if not path.is_file():
        raise ConfigError(f"model.path: edge-list file not found: {path}")
    edges = load_edge_list(path)
    loops = np.flatnonzero(edges[:, 0] == edges[:, 1])
    if loops.size:
        raise ConfigError(
            f"model.path: edge list {path} has {loops.size} self loop(s), the first at node {int(edges[loops[0], 0])} "
            f"(edge {int(loops[0])})"
        )
    pairs = np.sort(edges, axis=1)
    _, first, counts = np.unique(pairs, axis=0, return_index=True, return_counts=True)
    if np.any(counts > 1):
        dup = pairs[first[np.flatnonzero(counts > 1)[0]]]
        # both orientations (or a repeat) of one edge would silently double its coupling
        raise ConfigError(f"model.path: edge list {path} lists edge ({int(dup[0])}, {int(dup[1])}) more than once "
                          "(in either orientation); list every undirected edge once")
    if weights is not None and path.suffix == ".npy":
        raise ConfigError(f"model.weights: {path} is a .npy array of node pairs; weights need a text edge list")
    return edges


def _weights(path: pathlib.Path, column: int | None) -> np.ndarray | None:
    if column is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            weights = np.loadtxt(path, dtype=np.float64, comments="#", ndmin=1, usecols=(column,))
    except (ValueError, IndexError) as err:
        raise ConfigError(f"model.weights: cannot read column {column} of edge list {path} as numbers ({err})") from None
    if not np.all(np.isfinite(weights)):
        raise ConfigError(f"model.weights: column {column} of edge list {path} has a non-finite weight "
                          f"(edge {int(np.flatnonzero(~np.isfinite(weights))[0])})")
    if np.any(np.abs(weights) > 1e30):  # they become float32 couplings: keep them well inside its range
        raise ConfigError(f"model.weights: column {column} of edge list {path} has a weight beyond +-1e30 "
                          f"(edge {int(np.flatnonzero(np.abs(weights) > 1e30)[0])})")
    return weights
