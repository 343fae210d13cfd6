"""Build a graph from a short description (a `graph:` mapping): a named generator or an edge-list file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import scipy.sparse as sp
from jaxtyping import Float

from . import generators
from .errors import PartitionError

GRAPH_KINDS = ("grid2d", "torus", "pegasus", "random-regular", "random", "edges")

_GRAPH_KEYS = {"kind", "size", "m", "nodes", "degree", "mean_degree", "path", "seed"}


@dataclass(frozen=True)
class GraphSource:
    """A built graph: its adjacency structure, plot coordinates if it has any, and a name."""

    csr: sp.csr_matrix
    coordinates: Float[np.ndarray, "nodes 2"] | None
    name: str


def parse_size(size: Any) -> tuple[int, int]:
    """`"256x128"`, `"256"`, `256` or `[256, 128]` as `(rows, cols)`.

    **Arguments:**

    - `size`: the size description.
    """
    try:
        if isinstance(size, str):
            parts = [int(p) for p in size.lower().split("x")]
        elif isinstance(size, (list, tuple)):
            parts = [int(p) for p in size]
        else:
            parts = [int(size)]
    except (TypeError, ValueError):
        raise PartitionError(f"size must look like ROWSxCOLS (e.g. 256x256), got {size!r}") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise PartitionError(f"size must be two positive integers ROWSxCOLS, got {size!r}")
    return parts[0], parts[1]


def build_graph(spec: Mapping[str, Any]) -> GraphSource:
    """Build the graph a spec describes.

    **Arguments:**

    - `spec`: a mapping with `kind` (one of `GRAPH_KINDS`) and the kind's parameters:
      `size` (grid2d, torus), `m` (pegasus), `nodes` and `degree` (random-regular), `nodes`
      and `mean_degree` (random), `path` (edges), and `seed` for the random kinds.
    """
    unknown = set(spec) - _GRAPH_KEYS
    if unknown:
        raise PartitionError(f"unknown graph keys {sorted(unknown)}; allowed: {sorted(_GRAPH_KEYS)}")
    kind = spec.get("kind")
    if kind not in GRAPH_KINDS:
        raise PartitionError(f"graph kind must be one of {GRAPH_KINDS}, got {kind!r}")
    seed = int(spec.get("seed") or 0)
    if kind in ("grid2d", "torus"):
        if spec.get("size") is None:
            raise PartitionError(f"graph kind {kind!r} needs a size ROWSxCOLS")
        rows, cols = parse_size(spec["size"])
        edges = generators.grid_edges(rows, cols, periodic=kind == "torus")
        csr = generators.edges_to_csr(edges, rows * cols)
        return GraphSource(csr, generators.grid_coordinates(rows, cols), f"{kind}-{rows}x{cols}")
    if kind == "pegasus":
        m = _required_int(spec, "m", kind)
        edges = generators.pegasus_edges(m)
        coords = generators.pegasus_coordinates(m)
        return GraphSource(generators.edges_to_csr(edges, coords.shape[0]), coords, f"pegasus-{m}")
    if kind == "random-regular":
        n, degree = _required_int(spec, "nodes", kind), _required_int(spec, "degree", kind)
        edges = generators.random_regular_edges(n, degree, seed)
        return GraphSource(generators.edges_to_csr(edges, n), None, f"random-regular-{n}-d{degree}")
    if kind == "random":
        n = _required_int(spec, "nodes", kind)
        mean_degree = float(spec.get("mean_degree") or 6.0)
        edges = generators.random_sparse_edges(n, mean_degree, seed)
        return GraphSource(generators.edges_to_csr(edges, n), None, f"random-{n}-k{mean_degree:g}")
    path = spec.get("path")
    if not path:
        raise PartitionError("graph kind 'edges' needs a path to an edge-list file")
    edges = generators.load_edge_list(path)
    n = int(edges.max()) + 1
    return GraphSource(generators.edges_to_csr(edges, n), None, os.path.basename(os.fspath(path)))


def _required_int(spec: Mapping[str, Any], key: str, kind: str) -> int:
    value = spec.get(key)
    if value is None:
        raise PartitionError(f"graph kind {kind!r} needs {key!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PartitionError(f"graph {key!r} must be an integer, got {value!r}") from None
