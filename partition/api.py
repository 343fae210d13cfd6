"""Entry points: flat, capacity-constrained and hierarchical (hosts x devices) partitioning."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import scipy.sparse as sp
from jaxtyping import Int

from .capacity import enforce_capacity
from .errors import PartitionError
from .graph import Graph, as_csr, degrees, edge_weight_data, integer_weights
from .methods import METHODS, contiguous_assignment, metis_assignment, random_assignment
from .result import Partition

# METIS's own default load tolerance for k-way partitioning
_DEFAULT_IMBALANCE = 0.03


def partition_graph(
    graph: Graph,
    n_parts: int | None = None,
    *,
    method: str = "metis",
    seed: int = 0,
    node_weights: Any = None,
    edge_weights: Any = None,
    capacity: int | None = None,
) -> Partition:
    """Split a graph's nodes into `n_parts` parts.

    **Arguments:**

    - `graph`: a symmetric scipy sparse matrix without self loops (its pattern is the graph),
      or an undirected networkx graph (node `i` is `list(graph)[i]`). Disconnected is fine.
    - `n_parts`: number of parts, `1 <= n_parts <= n_nodes`; may be omitted with `capacity`.
    - `method`: `"metis"` (k-way METIS, minimises the weighted edge cut under a 3% load
      tolerance), `"random"` (balanced random) or `"contiguous"` (consecutive node ids).
    - `seed`: random seed; the result is deterministic for a given seed.
    - `node_weights`: non-negative integer load per node, balanced across parts. Default for
      METIS: a node's update cost, its number of interactions (at least 1); `contiguous` uses
      them when given; `random` balances node counts.
    - `edge_weights`: non-negative integer cost per stored entry of the CSR (aligned with its
      `indices`, symmetric), or a sparse matrix with the graph's pattern: the bytes a state
      costs to send. Default: every edge costs the same. Only METIS uses them.
    - `capacity`: if given, no part holds more than this many nodes (see `partition_capacity`).

    **Returns:** a `Partition`.
    """
    if capacity is not None:
        if node_weights is not None:
            raise PartitionError("node_weights cannot be combined with capacity (capacity counts nodes)")
        return partition_capacity(
            graph, capacity, n_parts, method=method, seed=seed, edge_weights=edge_weights
        )
    _check_method(method)
    _check_seed(seed)
    csr = as_csr(graph)
    n_parts = _check_n_parts(n_parts, csr.shape[0])
    node_w, edge_w = _weights(csr, method, node_weights, edge_weights)
    assignment = _assign(csr, n_parts, method, seed, node_w, edge_w)
    return Partition(assignment=assignment, n_parts=n_parts, csr=csr, method=method, seed=seed)


def partition_capacity(
    graph: Graph,
    capacity: int,
    n_parts: int | None = None,
    *,
    method: str = "metis",
    seed: int = 0,
    edge_weights: Any = None,
) -> Partition:
    """Split a graph into parts of at most `capacity` nodes each (e.g. chips with C slots).

    METIS balances node counts with the tolerance the capacity leaves (at most 3%), then any
    part still over capacity hands nodes to adjacent parts with room.

    **Arguments:**

    - `graph`: see `partition_graph`.
    - `capacity`: the most nodes one part may hold (>= 1).
    - `n_parts`: number of parts; default `ceil(n_nodes / capacity)`.
    - `method`, `seed`, `edge_weights`: see `partition_graph`.

    **Raises:** `PartitionError` when `n_parts * capacity < n_nodes` (the nodes cannot fit).
    """
    _check_method(method)
    _check_seed(seed)
    if not isinstance(capacity, numbers.Integral) or isinstance(capacity, bool) or capacity < 1:
        raise PartitionError(f"capacity must be a positive integer, got {capacity!r}")
    capacity = int(capacity)
    csr = as_csr(graph)
    n = csr.shape[0]
    if n_parts is None:
        n_parts = -(-n // capacity)
    n_parts = _check_n_parts(n_parts, n)
    if n_parts * capacity < n:
        raise PartitionError(
            f"capacity too small: {n_parts} parts of at most {capacity} nodes hold "
            f"{n_parts * capacity} < {n} nodes; raise capacity or n_parts"
        )
    _, edge_w = _weights(csr, method, None, edge_weights)
    slack = min(capacity * n_parts / n - 1.0, _DEFAULT_IMBALANCE)
    assignment = _assign(csr, n_parts, method, seed, None, edge_w, imbalance=slack)
    assignment = enforce_capacity(csr, assignment, n_parts, capacity)
    return Partition(
        assignment=assignment, n_parts=n_parts, csr=csr, method=method, seed=seed, capacity=capacity
    )


def partition_hierarchical(
    graph: Graph,
    n_hosts: int,
    devices_per_host: int,
    *,
    method: str = "metis",
    seed: int = 0,
    node_weights: Any = None,
    edge_weights: Any = None,
) -> Partition:
    """Split a graph across hosts first, then across the devices of every host.

    The first level minimises the cut between hosts, so the slow inter-host links carry the
    least traffic; the second splits each host's subgraph across its devices. Node
    `i` goes to part `host * devices_per_host + device`; `report()` adds `traffic_per_level`.

    **Arguments:**

    - `graph`: see `partition_graph`.
    - `n_hosts`: number of hosts (>= 1).
    - `devices_per_host`: number of devices per host (>= 1).
    - `method`, `seed`, `node_weights`, `edge_weights`: see `partition_graph`; both levels use
      them.
    """
    _check_method(method)
    _check_seed(seed)
    for name, value in (("n_hosts", n_hosts), ("devices_per_host", devices_per_host)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise PartitionError(f"{name} must be a positive integer, got {value!r}")
    csr = as_csr(graph)
    n_parts = _check_n_parts(n_hosts * devices_per_host, csr.shape[0])
    node_w, edge_w = _weights(csr, method, node_weights, edge_weights)
    hosts = _assign(csr, n_hosts, method, seed, node_w, edge_w)

    # carry edge weights through the subgraph slicing as the matrix's data
    weighted = sp.csr_matrix(
        (np.ones(csr.nnz, dtype=np.int64) if edge_w is None else edge_w, csr.indices, csr.indptr),
        shape=csr.shape,
    )
    assignment = np.empty(csr.shape[0], dtype=np.int64)
    for host in range(n_hosts):  # one step per host, not per node
        members = np.flatnonzero(hosts == host)
        if members.size <= devices_per_host:
            local = np.arange(members.size, dtype=np.int64)  # at most one node per device
        else:
            sub = weighted[members][:, members].tocsr()
            sub.sort_indices()
            sub_csr = sp.csr_matrix(
                (np.ones(sub.nnz, dtype=np.int8), sub.indices, sub.indptr), shape=sub.shape
            )
            local = _assign(
                sub_csr,
                devices_per_host,
                method,
                seed,
                None if node_w is None else node_w[members],
                None if edge_w is None else sub.data.astype(np.int64),
            )
        assignment[members] = host * devices_per_host + local
    return Partition(
        assignment=assignment,
        n_parts=n_parts,
        csr=csr,
        method=method,
        seed=seed,
        hierarchy=(int(n_hosts), int(devices_per_host)),
    )


def _assign(
    csr: sp.csr_matrix,
    n_parts: int,
    method: str,
    seed: int,
    node_weights: Int[np.ndarray, " nodes"] | None,
    edge_weights: Int[np.ndarray, " nnz"] | None,
    imbalance: float | None = None,
) -> Int[np.ndarray, " nodes"]:
    """Dispatch to one method; weights are already validated."""
    n = csr.shape[0]
    if method == "metis":
        return metis_assignment(
            csr, n_parts, seed=seed, node_weights=node_weights, edge_weights=edge_weights, imbalance=imbalance
        )
    if method == "random":
        return random_assignment(n, n_parts, seed=seed)
    return contiguous_assignment(n, n_parts, node_weights)


def _weights(
    csr: sp.csr_matrix, method: str, node_weights: Any, edge_weights: Any
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Validate weights (for every method, so errors do not depend on it) and fill defaults."""
    n = csr.shape[0]
    node_w = None if node_weights is None else integer_weights(node_weights, n, "node_weights")
    edge_w = None if edge_weights is None else edge_weight_data(csr, edge_weights)
    if node_w is None and method == "metis":
        node_w = np.maximum(degrees(csr), 1)  # update cost ~ number of interactions
    return node_w, edge_w


def _check_n_parts(n_parts: Any, n_nodes: int) -> int:
    if n_parts is None:
        raise PartitionError("n_parts is required (it may be omitted only when capacity is given)")
    if not isinstance(n_parts, numbers.Integral) or isinstance(n_parts, bool):
        raise PartitionError(f"n_parts must be an integer, got {n_parts!r}")
    if n_parts < 1:
        raise PartitionError(f"n_parts must be at least 1, got {n_parts}")
    if n_parts > n_nodes:
        raise PartitionError(f"n_parts={n_parts} exceeds the number of nodes ({n_nodes})")
    return int(n_parts)


def _check_method(method: Any) -> None:
    if method not in METHODS:
        raise PartitionError(f"method must be one of {METHODS}, got {method!r}")


def _check_seed(seed: Any) -> None:
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise PartitionError(f"seed must be a non-negative integer, got {seed!r}")
