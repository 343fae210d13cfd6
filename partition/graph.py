"""Turn user graphs into one canonical, validated CSR adjacency structure.

Every algorithm in this package works on the same representation: a square, symmetric
`scipy.sparse.csr_matrix` without self loops, with sorted column indices and all data equal to 1.
Values of the input matrix are ignored (only its sparsity pattern is an interaction); weights
are given separately, so that a coupling of strength 0.0 stored explicitly is not mistaken for a
missing edge while a negative coupling is not mistaken for a negative weight.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp
from jaxtyping import Int

from .errors import PartitionError

Graph = Any  # a scipy.sparse matrix/array or a networkx graph


def as_csr(graph: Graph) -> sp.csr_matrix:
    """The canonical adjacency structure of `graph`, validated.

    Nodes keep their ids: row `i` of a sparse matrix, or the `i`-th node of `list(graph)` for a
    networkx graph. Every stored entry is an edge (explicit zeros included).

    **Arguments:**

    - `graph`: a square, symmetric scipy sparse matrix/array without self loops, or an
      undirected networkx graph without self loops.

    **Returns:** a `csr_matrix` with sorted indices, no duplicates and int8 ones as data.

    **Raises:** `PartitionError` naming what is wrong (type, shape, emptiness, asymmetry, self
    loops).
    """
    if isinstance(graph, nx.Graph):
        if graph.is_directed():
            raise PartitionError("graph must be undirected; got a directed networkx graph")
        if graph.number_of_nodes() == 0:
            raise PartitionError("graph is empty: it has no nodes")
        loops = nx.number_of_selfloops(graph)
        if loops:
            raise PartitionError(f"graph has {loops} self loop(s); a node cannot interact with itself")
        matrix = nx.to_scipy_sparse_array(graph, weight=None, format="csr", dtype=np.int8)
    elif sp.issparse(graph):
        matrix = graph
    else:
        raise PartitionError(
            f"graph must be a scipy.sparse matrix or a networkx graph, got {type(graph).__name__}"
        )

    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise PartitionError(f"adjacency matrix must be square, got shape {matrix.shape}")
    if matrix.shape[0] == 0:
        raise PartitionError("graph is empty: the adjacency matrix has shape (0, 0)")

    csr = sp.csr_matrix(matrix, copy=True)
    csr.sum_duplicates()  # also sorts indices
    csr.data = np.ones(csr.nnz, dtype=np.int8)

    loops = np.flatnonzero(row_ids(csr) == csr.indices)
    n_loops = loops.size
    if n_loops:
        first = int(csr.indices[loops[0]])
        raise PartitionError(
            f"adjacency matrix has {n_loops} self loop(s) (first at node {first}); "
            "a node cannot interact with itself"
        )
    transpose = csr.T.tocsr()
    transpose.sort_indices()
    if transpose.nnz != csr.nnz or not (
        np.array_equal(transpose.indptr, csr.indptr)
        and np.array_equal(transpose.indices, csr.indices)
    ):
        diff = (csr != transpose).tocoo()
        raise PartitionError(
            "adjacency matrix must be symmetric (every interaction read both ways); "
            f"entry ({int(diff.row[0])}, {int(diff.col[0])}) has no mirror"
        )
    return csr


def row_ids(csr: sp.csr_matrix) -> Int[np.ndarray, " nnz"]:
    """The row (source node) of every stored entry of `csr`, aligned with `csr.indices`.

    **Arguments:**

    - `csr`: a CSR matrix.
    """
    return np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))


def gather_neighbors(
    csr: sp.csr_matrix, nodes: Int[np.ndarray, " k"]
) -> tuple[Int[np.ndarray, " m"], Int[np.ndarray, " m"]]:
    """All entries of the rows `nodes`: `(local row position, neighbor id)` pairs.

    Cheaper than `csr[nodes]` because it builds no new matrix.

    **Arguments:**

    - `csr`: a CSR matrix.
    - `nodes`: row ids to gather (any order, repeats allowed).
    """
    starts = csr.indptr[nodes].astype(np.int64)
    counts = csr.indptr[nodes + 1].astype(np.int64) - starts
    local = np.repeat(np.arange(len(nodes), dtype=np.int64), counts)
    offsets = np.cumsum(counts) - counts
    positions = np.arange(local.size, dtype=np.int64) - offsets[local] + starts[local]
    return local, csr.indices[positions].astype(np.int64)


def degrees(csr: sp.csr_matrix) -> Int[np.ndarray, " nodes"]:
    """Number of neighbors of every node.

    **Arguments:**

    - `csr`: a canonical adjacency structure (see `as_csr`).
    """
    return np.diff(csr.indptr).astype(np.int64)


def integer_weights(values: Any, size: int, name: str) -> Int[np.ndarray, " size"]:
    """Validate user weights: finite, non-negative, integral (METIS weights are integers).

    **Arguments:**

    - `values`: array-like of weights.
    - `size`: the required length.
    - `name`: the argument's name, for error messages.
    """
    array = np.asarray(values)
    if array.ndim != 1 or array.shape[0] != size:
        raise PartitionError(f"{name} must have shape ({size},), got {array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise PartitionError(f"{name} must be numeric, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise PartitionError(f"{name} must be finite")
        if not np.array_equal(array, np.round(array)):
            raise PartitionError(f"{name} must be integers (METIS weights are integral); scale and round them")
    if array.size and array.min() < 0:
        bad = int(np.flatnonzero(array < 0)[0])
        raise PartitionError(f"{name} must be non-negative; entry {bad} is {array[bad]}")
    return array.astype(np.int64)


def edge_weight_data(csr: sp.csr_matrix, edge_weights: Any) -> Int[np.ndarray, " nnz"]:
    """Validate edge weights and align them with `csr.indices`.

    **Arguments:**

    - `csr`: the canonical adjacency structure.
    - `edge_weights`: an array with one weight per stored entry of `csr` (aligned with
      `csr.indices`), or a sparse matrix with the same pattern as `csr`; symmetric.
    """
    if sp.issparse(edge_weights):
        weights = sp.csr_matrix(edge_weights, copy=True)
        weights.sum_duplicates()
        if weights.shape != csr.shape or not (
            weights.nnz == csr.nnz
            and np.array_equal(weights.indptr, csr.indptr)
            and np.array_equal(weights.indices, csr.indices)
        ):
            raise PartitionError("edge_weights (sparse) must have exactly the graph's sparsity pattern")
        data = integer_weights(weights.data, csr.nnz, "edge_weights")
    else:
        data = integer_weights(edge_weights, csr.nnz, "edge_weights")
    matrix = sp.csr_matrix((data, csr.indices, csr.indptr), shape=csr.shape)
    mirrored = matrix.T.tocsr()
    mirrored.sort_indices()
    if not np.array_equal(mirrored.data, data):
        raise PartitionError("edge_weights must be symmetric: w(u, v) must equal w(v, u)")
    return data
