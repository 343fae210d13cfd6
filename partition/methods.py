"""Partitioning methods: each maps a canonical CSR graph to one part id per node."""

from __future__ import annotations

import numpy as np
import pymetis
import scipy.sparse as sp
from jaxtyping import Int

METHODS = ("metis", "random", "contiguous")


def metis_assignment(
    csr: sp.csr_matrix,
    n_parts: int,
    *,
    seed: int,
    node_weights: Int[np.ndarray, " nodes"] | None,
    edge_weights: Int[np.ndarray, " nnz"] | None,
    imbalance: float | None = None,
) -> Int[np.ndarray, " nodes"]:
    """METIS k-way partition (pymetis), deterministic for a given seed.

    **Arguments:**

    - `csr`: canonical adjacency structure.
    - `n_parts`: number of parts.
    - `seed`: METIS's random seed.
    - `node_weights`: per-node weights METIS balances, or None for unit weights.
    - `edge_weights`: per-entry weights (aligned with `csr.indices`) whose cut METIS minimises,
      or None for unit weights.
    - `imbalance`: allowed load imbalance (max part / mean part - 1); None keeps METIS's 3%.
    """
    n = csr.shape[0]
    if n_parts == 1:
        return np.zeros(n, dtype=np.int64)
    options = pymetis.Options()
    options.seed = int(seed) % (2**31)  # METIS takes a C int
    if imbalance is not None:
        options.ufactor = max(1, int(np.floor(imbalance * 1000)))
    # METIS's idx_t is int64 here: passing int64 avoids a copy inside pymetis
    adjacency = pymetis.CSRAdjacency(
        adj_starts=csr.indptr.astype(np.int64), adjacent=csr.indices.astype(np.int64)
    )
    result = pymetis.part_graph(
        n_parts,
        adjacency,
        vweights=None if node_weights is None else node_weights.astype(np.int64),
        eweights=None if edge_weights is None else edge_weights.astype(np.int64),
        options=options,
        recursive=False,  # k-way: lower cut and faster than recursive bisection on large graphs
    )
    return np.asarray(result.vertex_part, dtype=np.int64)


def random_assignment(n_nodes: int, n_parts: int, *, seed: int) -> Int[np.ndarray, " nodes"]:
    """A balanced random partition: part sizes differ by at most one node.

    **Arguments:**

    - `n_nodes`: number of nodes.
    - `n_parts`: number of parts.
    - `seed`: random seed.
    """
    rng = np.random.default_rng(seed)
    return rng.permutation(np.arange(n_nodes, dtype=np.int64) % n_parts)


def contiguous_assignment(
    n_nodes: int, n_parts: int, node_weights: Int[np.ndarray, " nodes"] | None = None
) -> Int[np.ndarray, " nodes"]:
    """Consecutive node ids in equal blocks (by count, or by total weight when given).

    **Arguments:**

    - `n_nodes`: number of nodes.
    - `n_parts`: number of parts.
    - `node_weights`: optional per-node weights to balance instead of counts.
    """
    if node_weights is None or node_weights.sum() == 0:
        return np.arange(n_nodes, dtype=np.int64) * n_parts // n_nodes
    # a node belongs to the block that holds the midpoint of its weight interval
    cumulative = np.cumsum(node_weights, dtype=np.float64)
    midpoints = cumulative - node_weights / 2.0
    parts = np.floor(midpoints * n_parts / cumulative[-1]).astype(np.int64)
    return np.clip(parts, 0, n_parts - 1)
