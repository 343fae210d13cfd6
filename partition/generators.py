"""Graph generators that return edge arrays (array-native, no per-node Python objects)."""

from __future__ import annotations

import os
import warnings

import numpy as np
import scipy.sparse as sp
from jaxtyping import Float, Int

from .arrays import contains, first_occurrence, unique_counts, unique_sorted
from .errors import PartitionError


def grid_edges(rows: int, cols: int, *, periodic: bool = False) -> Int[np.ndarray, "edges 2"]:
    """Edges of a `rows x cols` grid whose node `(r, c)` has id `r * cols + c`.

    Horizontal edges come first (row-major), then vertical ones. With `periodic=True` the grid
    wraps around in both directions (a torus); a side of length <= 2 does not wrap, so that no
    edge is repeated.

    **Arguments:**

    - `rows`, `cols`: the grid's side lengths.
    - `periodic`: whether to wrap around (torus).
    """
    if rows < 1 or cols < 1:
        raise PartitionError(f"grid sides must be positive, got rows={rows}, cols={cols}")
    ids = np.arange(rows * cols, dtype=np.int64).reshape(rows, cols)
    wrap_cols = periodic and cols > 2
    wrap_rows = periodic and rows > 2
    right = np.roll(ids, -1, axis=1) if wrap_cols else ids[:, 1:]
    left = ids if wrap_cols else ids[:, :-1]
    down = np.roll(ids, -1, axis=0) if wrap_rows else ids[1:, :]
    up = ids if wrap_rows else ids[:-1, :]
    horizontal = np.stack([left.ravel(), right.ravel()], axis=1)
    vertical = np.stack([up.ravel(), down.ravel()], axis=1)
    return np.concatenate([horizontal, vertical], axis=0)


def torus_edges(rows: int, cols: int) -> Int[np.ndarray, "edges 2"]:
    """Edges of a periodic `rows x cols` grid; see `grid_edges`."""
    return grid_edges(rows, cols, periodic=True)


def checkerboard_colors(rows: int, cols: int) -> Int[np.ndarray, " nodes"]:
    """The 2-coloring `(r + c) % 2` of a grid's nodes (valid on a torus when both sides are even)."""
    r, c = np.divmod(np.arange(rows * cols, dtype=np.int64), cols)
    return (r + c) % 2


def grid_coordinates(rows: int, cols: int) -> Float[np.ndarray, "nodes 2"]:
    """Plot coordinates `(x, y) = (c, -r)` of a grid's nodes (node `(r, c)` has id `r * cols + c`).

    **Arguments:**

    - `rows`, `cols`: the grid's side lengths.
    """
    if rows < 1 or cols < 1:
        raise PartitionError(f"grid sides must be positive, got rows={rows}, cols={cols}")
    r, c = np.divmod(np.arange(rows * cols, dtype=np.int64), cols)
    return np.stack([c, -r], axis=1).astype(np.float64)


def random_regular_edges(n: int, degree: int, seed: int = 0) -> Int[np.ndarray, "edges 2"]:
    """Edges of a random simple `degree`-regular graph on `n` nodes (vectorised).

    Stubs are paired at random (configuration model); the few self loops and repeated edges
    that pairing makes are then removed by degree-preserving switches, in vectorised rounds, so
    that the result is simple and exactly regular. Deterministic for a given seed.

    **Arguments:**

    - `n`: number of nodes.
    - `degree`: every node's number of neighbors; `n * degree` must be even and `degree < n`.
    - `seed`: random seed.
    """
    if n < 1:
        raise PartitionError(f"n must be positive, got {n}")
    if degree < 0 or degree >= n:
        raise PartitionError(f"degree must be in [0, n), got degree={degree} for n={n}")
    if (n * degree) % 2:
        raise PartitionError(f"n * degree must be even, got n={n}, degree={degree}")
    rng = np.random.default_rng(seed)
    if degree == 0:
        return np.zeros((0, 2), dtype=np.int64)
    for _ in range(20):  # restarts: switching can get stuck on tiny, dense graphs
        edges = _switch_to_simple(rng.permutation(np.repeat(np.arange(n), degree)).reshape(-1, 2), n, rng)
        if edges is not None:
            return edges
    raise PartitionError(f"could not build a simple {degree}-regular graph on {n} nodes")


def _switch_to_simple(pairs: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray | None:
    """Remove self loops and multi-edges from a stub pairing by degree-preserving switches.

    A bad pair (u, v) and a good edge (a, b) become the edges (u, a) and (v, b); every node keeps
    its degree. All bad pairs switch at once; conflicting switches are retried next round.
    """
    u, v = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])
    for _ in range(200):
        keys = u * n + v
        good = first_occurrence(keys) & (u != v)
        bad = np.flatnonzero(~good)
        if bad.size == 0:
            return np.stack([u, v], axis=1)
        good_idx = np.flatnonzero(good)
        if good_idx.size < bad.size:
            return None
        partner = rng.choice(good_idx, size=bad.size, replace=False)
        flip = rng.random(bad.size) < 0.5  # either orientation of the good edge
        a = np.where(flip, v[partner], u[partner])
        b = np.where(flip, u[partner], v[partner])
        bu, bv = u[bad], v[bad]
        new1 = np.sort(np.stack([bu, a], axis=1), axis=1)
        new2 = np.sort(np.stack([bv, b], axis=1), axis=1)
        k1, k2 = new1[:, 0] * n + new1[:, 1], new2[:, 0] * n + new2[:, 1]
        existing = np.sort(keys[good])
        values, counts = unique_counts(np.concatenate([k1, k2]))
        repeated = values[counts > 1]
        ok = (bu != a) & (bv != b) & (k1 != k2)
        ok &= ~contains(existing, k1) & ~contains(existing, k2)
        ok &= ~contains(repeated, k1) & ~contains(repeated, k2)
        # the switched-out good edge frees its key, but a proposal never recreates it
        u[partner[ok]], v[partner[ok]] = new1[ok, 0], new1[ok, 1]
        u[bad[ok]], v[bad[ok]] = new2[ok, 0], new2[ok, 1]
    return None


def random_sparse_edges(n: int, mean_degree: float, seed: int = 0) -> Int[np.ndarray, "edges 2"]:
    """Edges of an Erdos-Renyi-like random graph: `n * mean_degree / 2` uniform node pairs,
    self loops dropped and repeats merged (so the mean degree is slightly below the target).

    **Arguments:**

    - `n`: number of nodes.
    - `mean_degree`: target mean number of neighbors.
    - `seed`: random seed.
    """
    if n < 2:
        raise PartitionError(f"n must be at least 2, got {n}")
    if mean_degree < 0:
        raise PartitionError(f"mean_degree must be non-negative, got {mean_degree}")
    rng = np.random.default_rng(seed)
    m = int(round(n * mean_degree / 2))
    pairs = np.sort(rng.integers(0, n, size=(m, 2), dtype=np.int64), axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    keys = unique_sorted(pairs[:, 0] * n + pairs[:, 1])
    return np.stack(np.divmod(keys, n), axis=1)


def pegasus_edges(m: int) -> Int[np.ndarray, "edges 2"]:
    """Edges of the D-Wave Pegasus graph P(m) (via dwave_networkx), nodes relabelled 0..n-1.

    Node `i` is the `i`-th smallest Pegasus linear index, so the order is deterministic; edges
    come sorted.

    **Arguments:**

    - `m`: the Pegasus size parameter (>= 2).
    """
    labels, graph = _pegasus(m)
    raw = np.asarray(list(graph.edges()), dtype=np.int64).reshape(-1, 2)
    edges = np.sort(np.searchsorted(labels, raw), axis=1)
    return edges[np.lexsort((edges[:, 1], edges[:, 0]))]


def pegasus_coordinates(m: int) -> Float[np.ndarray, "nodes 2"]:
    """Plot coordinates of the Pegasus graph P(m)'s nodes, in the order of `pegasus_edges(m)`.

    **Arguments:**

    - `m`: the Pegasus size parameter (>= 2).
    """
    import dwave_networkx as dnx

    labels, graph = _pegasus(m)
    layout = dnx.pegasus_layout(graph)
    return np.asarray([layout[int(label)] for label in labels], dtype=np.float64)


def _pegasus(m: int):
    """Sorted node labels and the networkx graph of P(m)."""
    if m < 2:
        raise PartitionError(f"pegasus size m must be at least 2, got {m}")
    import dwave_networkx as dnx

    graph = dnx.pegasus_graph(m)
    return np.sort(np.asarray(list(graph.nodes()), dtype=np.int64)), graph


def edges_to_csr(
    edges: Int[np.ndarray, "edges 2"], n_nodes: int, *, self_loops: str = "error"
) -> sp.csr_matrix:
    """The symmetric adjacency structure of an undirected edge list (duplicates merged).

    **Arguments:**

    - `edges`: integer array of node pairs `(u, v)`, ids in `[0, n_nodes)`; either orientation.
    - `n_nodes`: number of nodes (nodes without edges are allowed).
    - `self_loops`: `"error"` to reject edges `(u, u)`, `"drop"` to remove them.

    **Returns:** a `csr_matrix` of shape `(n_nodes, n_nodes)` with int8 ones, sorted indices.
    """
    edges = np.asarray(edges)
    if edges.ndim != 2 or edges.shape[1] != 2:
        raise PartitionError(f"edges must have shape (E, 2), got {edges.shape}")
    if edges.size and not np.issubdtype(edges.dtype, np.integer):
        raise PartitionError(f"edges must be integer node ids, got dtype {edges.dtype}")
    if n_nodes < 1:
        raise PartitionError(f"n_nodes must be positive, got {n_nodes}")
    if self_loops not in ("error", "drop"):
        raise PartitionError(f"self_loops must be 'error' or 'drop', got {self_loops!r}")
    if edges.size and (edges.min() < 0 or edges.max() >= n_nodes):
        raise PartitionError(
            f"edge endpoints must lie in [0, {n_nodes}), got range [{edges.min()}, {edges.max()}]"
        )
    loops = edges[:, 0] == edges[:, 1]
    if loops.any():
        if self_loops == "error":
            raise PartitionError(
                f"edges contain {int(loops.sum())} self loop(s) (first at node {int(edges[loops][0, 0])})"
            )
        edges = edges[~loops]
    # scipy would downcast int64 indices itself; doing it first saves a copy of every array
    index_dtype = np.int32 if n_nodes < 2**31 else np.int64
    pairs = edges.astype(index_dtype)
    rows = np.concatenate([pairs[:, 0], pairs[:, 1]])
    cols = np.concatenate([pairs[:, 1], pairs[:, 0]])
    del pairs
    data = np.ones(rows.size, dtype=np.int8)
    csr = sp.coo_matrix((data, (rows, cols)), shape=(n_nodes, n_nodes)).tocsr()
    csr.sum_duplicates()  # no-op when tocsr already merged, but that is not guaranteed
    csr.data[:] = 1
    return csr


def load_edge_list(path: str | os.PathLike) -> Int[np.ndarray, "edges 2"]:
    """Read an undirected edge list: a text file of `u v` lines (`#` comments, extra columns
    ignored), or a `.npy` array of shape `(E, 2)`. The graph has `edges.max() + 1` nodes.

    **Arguments:**

    - `path`: the file.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"edge list file not found: {path}")
    try:
        if path.endswith(".npy"):
            edges = np.load(path, allow_pickle=False)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an empty file is reported below instead
                edges = np.loadtxt(path, dtype=np.int64, comments="#", ndmin=2, usecols=(0, 1))
    except (ValueError, OSError) as error:
        raise PartitionError(f"could not read edge list {path}: {error}") from error
    if edges.ndim != 2 or edges.shape[1] != 2 or edges.shape[0] == 0:
        raise PartitionError(f"edge list {path} must hold at least one `u v` pair, got shape {edges.shape}")
    if not np.issubdtype(edges.dtype, np.integer):
        raise PartitionError(f"edge list {path} must hold integer node ids, got dtype {edges.dtype}")
    if edges.min() < 0:
        raise PartitionError(f"edge list {path} has a negative node id ({edges.min()})")
    return edges.astype(np.int64, copy=False)
