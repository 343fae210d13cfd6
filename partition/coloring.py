"""Graph coloring for block Gibbs sampling, vectorised for graphs of millions of nodes.

Nodes of one color share no edge, so a sampler may update them all at once. Sequential greedy
coloring (networkx's DSATUR) is far too slow at this scale; instead:

1. Bipartite graphs (grids, tori with even sides, RBMs) get their optimal 2-coloring from BFS
   depth parity over a spanning forest.
2. Otherwise Jones-Plassmann rounds color, all at once, every uncolored node whose priority
   beats all of its uncolored neighbors, with the smallest color its colored neighbors leave
   free. With a fixed priority this equals sequential greedy in priority order; `dsatur` instead
   re-ranks every round by saturation (distinct neighbor colors), as DSATUR does.
3. Iterated greedy passes (Culberson) recolor class by class: a class is independent, so it
   is recolored in one vectorised step, and the number of colors never grows.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from jaxtyping import Int
from scipy.sparse.csgraph import breadth_first_order, connected_components

from .arrays import first_occurrence, unique_sorted
from .graph import Graph, as_csr, degrees, gather_neighbors, row_ids

STRATEGIES = ("largest_first", "smallest_last", "random", "dsatur")

# above this many (rows x colors) cells, the smallest free color is found by sorting instead
_BITMAP_CELLS = 50_000_000


def greedy_color(
    graph: Graph,
    strategy: str = "largest_first",
    *,
    seed: int = 0,
    improve_passes: int = 8,
    exact_bipartite: bool = True,
) -> Int[np.ndarray, " nodes"]:
    """Color the nodes so that no edge joins two nodes of the same color.

    **Arguments:**

    - `graph`: a symmetric sparse matrix without self loops, or a networkx graph.
    - `strategy`: node priority of the greedy rounds: `"largest_first"` (high degree first),
      `"smallest_last"` (degeneracy order), `"random"`, or `"dsatur"` (saturation, re-ranked
      every round). Ties are broken at random.
    - `seed`: random seed for tie breaking; the result is deterministic for a given seed.
    - `improve_passes`: at most this many iterated-greedy passes (stops early when two passes
      in a row do not reduce the number of colors).
    - `exact_bipartite`: return the 2-coloring when the graph is bipartite.

    **Returns:** colors `0..k-1`, one per node (every color used).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if improve_passes < 0:
        raise ValueError(f"improve_passes must be non-negative, got {improve_passes}")
    csr = as_csr(graph)
    if csr.nnz == 0:
        return np.zeros(csr.shape[0], dtype=np.int64)
    if exact_bipartite:
        two = two_coloring(csr)
        if two is not None:
            return two
    rng = np.random.default_rng(seed)
    if strategy == "dsatur":
        colors = _saturation_rounds(csr, rng)
    else:
        colors = _jones_plassmann(csr, _priority(csr, strategy, rng))
    return _iterated_greedy(csr, colors, improve_passes, rng)


def is_valid_coloring(graph: Graph, colors: Int[np.ndarray, " nodes"]) -> bool:
    """Whether every node has a color >= 0 and no edge joins two nodes of one color.

    **Arguments:**

    - `graph`: a sparse matrix or networkx graph (its stored entries are the edges).
    - `colors`: one integer color per node.
    """
    csr = graph if isinstance(graph, sp.csr_matrix) else as_csr(graph)
    colors = np.asarray(colors)
    if colors.shape != (csr.shape[0],):
        raise ValueError(f"colors must have shape ({csr.shape[0]},) (one per node), got {colors.shape}")
    if not np.issubdtype(colors.dtype, np.integer):
        raise ValueError(f"colors must be integers, got dtype {colors.dtype}")
    if colors.size and colors.min() < 0:
        return False
    return not np.any(colors[row_ids(csr)] == colors[csr.indices])


def color_classes(
    colors: Int[np.ndarray, " nodes"], node_types: Int[np.ndarray, " nodes"] | None = None
) -> list:
    """Group nodes into free blocks: one per color, split by node type into superblocks.

    **Arguments:**

    - `colors`: one non-negative color per node.
    - `node_types`: optional integer type per node (e.g. spin vs categorical). Nodes of one
      color are independent, but a block holds one node type, so each color becomes a
      superblock: a list of blocks, one per type present, by ascending type.

    **Returns:** without `node_types`, `classes[c]` is the ascending ids of color `c` for
    `c = 0..max(colors)`; with `node_types`, `classes[c]` is a list of such arrays, one per type.
    """
    colors = np.asarray(colors)
    if colors.ndim != 1 or not np.issubdtype(colors.dtype, np.integer):
        raise ValueError(f"colors must be a 1-D integer array, got shape {colors.shape}, dtype {colors.dtype}")
    if colors.size == 0:
        return []
    if colors.min() < 0:
        raise ValueError(f"colors must be non-negative, node {int(np.argmin(colors))} has {colors.min()}")
    n_colors = int(colors.max()) + 1
    order = np.argsort(colors, kind="stable")  # stable: ids stay ascending within a class
    bounds = np.searchsorted(colors[order], np.arange(n_colors + 1))
    if node_types is None:
        return [order[bounds[c] : bounds[c + 1]] for c in range(n_colors)]

    node_types = np.asarray(node_types)
    if node_types.shape != colors.shape:
        raise ValueError(f"node_types must have shape {colors.shape}, got {node_types.shape}")
    if not np.issubdtype(node_types.dtype, np.integer):
        raise ValueError(f"node_types must be integers, got dtype {node_types.dtype}")
    types = unique_sorted(node_types)
    type_index = np.searchsorted(types, node_types)
    keys = colors.astype(np.int64) * types.size + type_index
    order = np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[order], np.arange(n_colors * types.size + 1))
    superblocks = []
    for c in range(n_colors):  # loops over colors and types only
        blocks = [order[bounds[k] : bounds[k + 1]] for k in range(c * types.size, (c + 1) * types.size)]
        superblocks.append([block for block in blocks if block.size])
    return superblocks


def two_coloring(graph: Graph) -> Int[np.ndarray, " nodes"] | None:
    """The 2-coloring (BFS depth parity) of a bipartite graph, or None if it has an odd cycle.

    **Arguments:**

    - `graph`: a symmetric sparse matrix without self loops, or a networkx graph.
    """
    csr = graph if isinstance(graph, sp.csr_matrix) else as_csr(graph)
    n = csr.shape[0]
    _, labels = connected_components(csr, directed=False)
    roots = np.flatnonzero(first_occurrence(labels))
    # one BFS from a virtual node linked to a root of every component spans the whole forest
    link = sp.csr_matrix(
        (np.ones(roots.size, dtype=np.int8), (roots, np.zeros(roots.size, dtype=np.int64))),
        shape=(n, 1),
    )
    forest = sp.bmat([[csr, link], [link.T, None]], format="csr")
    _, predecessor = breadth_first_order(forest, n, directed=True, return_predecessors=True)
    pointer = predecessor[:n].astype(np.int64)
    parity = np.ones(n, dtype=np.int8)
    parity[roots], pointer[roots] = 0, roots
    # pointer jumping: log2(depth) vectorised rounds instead of a walk down the tree
    while True:
        jumped = pointer[pointer]
        if np.array_equal(jumped, pointer):
            break
        parity ^= parity[pointer]
        pointer = jumped
    colors = parity.astype(np.int64)
    return colors if is_valid_coloring(csr, colors) else None


def _priority(csr: sp.csr_matrix, strategy: str, rng: np.random.Generator) -> Int[np.ndarray, " nodes"]:
    """A unique rank per node: higher ranks are colored first."""
    n = csr.shape[0]
    tie = rng.permutation(n)
    if strategy == "random":
        return tie
    primary = degrees(csr) if strategy == "largest_first" else _peel_rounds(csr)
    rank = np.empty(n, dtype=np.int64)
    rank[np.lexsort((tie, primary))] = np.arange(n)
    return rank


def _peel_rounds(csr: sp.csr_matrix) -> Int[np.ndarray, " nodes"]:
    """Smallest-last (degeneracy) order in batches: every round removes all nodes of current
    minimum degree; nodes removed later are colored first."""
    n = csr.shape[0]
    degree = degrees(csr)
    removed_at = np.full(n, -1, dtype=np.int64)
    alive = np.arange(n)
    step = 0
    while alive.size:
        low = alive[degree[alive] <= degree[alive].min()]
        removed_at[low] = step
        _, neighbor = gather_neighbors(csr, low)
        degree -= np.bincount(neighbor, minlength=n)
        alive = alive[removed_at[alive] < 0]
        step += 1
    return removed_at


def _jones_plassmann(csr: sp.csr_matrix, priority: Int[np.ndarray, " nodes"]) -> Int[np.ndarray, " nodes"]:
    """Greedy coloring in priority order, computed in rounds of local priority maxima."""
    n = csr.shape[0]
    colors = np.full(n, -1, dtype=np.int64)
    # only edges between uncolored nodes decide who goes next, so keep just those
    u, v = row_ids(csr), csr.indices.astype(np.int64)
    pending = np.arange(n)
    while pending.size:
        beaten = np.zeros(n, dtype=bool)
        beaten[u[priority[v] > priority[u]]] = True
        winners = pending[~beaten[pending]]
        colors[winners] = _smallest_free(csr, winners, colors)
        keep = (colors[u] < 0) & (colors[v] < 0)
        u, v = u[keep], v[keep]
        pending = pending[colors[pending] < 0]
    return colors


def _saturation_rounds(csr: sp.csr_matrix, rng: np.random.Generator) -> Int[np.ndarray, " nodes"]:
    """DSATUR in rounds: rank uncolored nodes by (saturation, uncolored degree, random), color
    every node that outranks its uncolored neighbors."""
    n = csr.shape[0]
    colors = np.full(n, -1, dtype=np.int64)
    tie = rng.permutation(n)
    u, v = row_ids(csr), csr.indices.astype(np.int64)  # entries of uncolored rows
    pending = np.arange(n)
    while pending.size:
        colored = colors[v] >= 0
        n_colors = int(colors.max()) + 2
        distinct = unique_sorted(u[colored] * n_colors + colors[v[colored]])
        saturation = np.bincount(distinct // n_colors, minlength=n)
        open_degree = np.bincount(u[~colored], minlength=n)
        rank = np.empty(n, dtype=np.int64)
        rank[np.lexsort((tie, open_degree, saturation))] = np.arange(n)
        uu, vv = u[~colored], v[~colored]
        beaten = np.zeros(n, dtype=bool)
        beaten[uu[rank[vv] > rank[uu]]] = True
        winners = pending[~beaten[pending]]
        colors[winners] = _smallest_free(csr, winners, colors)
        keep = colors[u] < 0
        u, v = u[keep], v[keep]
        pending = pending[colors[pending] < 0]
    return colors


def _iterated_greedy(
    csr: sp.csr_matrix, colors: np.ndarray, passes: int, rng: np.random.Generator
) -> Int[np.ndarray, " nodes"]:
    """Culberson's iterated greedy: recolor whole classes in a new order; never adds colors."""
    best, stale = colors, 0
    for index in range(passes):
        classes = [c for c in color_classes(best) if c.size]
        # alternate orders: reverse, biggest first, random (Culberson's good mix)
        if index % 3 == 0:
            classes = classes[::-1]
        elif index % 3 == 1:
            classes = sorted(classes, key=len, reverse=True)
        else:
            classes = [classes[i] for i in rng.permutation(len(classes))]
        recolored = np.full(csr.shape[0], -1, dtype=np.int64)
        for members in classes:  # one vectorised step per color class
            recolored[members] = _smallest_free(csr, members, recolored)
        improved = recolored.max() < best.max()
        best = recolored
        stale = 0 if improved else stale + 1
        if stale >= 2:
            break
    return best


def _smallest_free(
    csr: sp.csr_matrix, nodes: Int[np.ndarray, " k"], colors: Int[np.ndarray, " nodes"]
) -> Int[np.ndarray, " k"]:
    """For every node in `nodes`, the smallest color none of its colored neighbors has."""
    local, neighbor = gather_neighbors(csr, nodes)
    taken = colors[neighbor]
    mask = taken >= 0
    local, taken = local[mask], taken[mask]
    if taken.size == 0:
        return np.zeros(nodes.size, dtype=np.int64)
    n_colors = int(taken.max()) + 2  # the last column is always free
    if nodes.size * n_colors <= _BITMAP_CELLS:
        used = np.zeros((nodes.size, n_colors), dtype=bool)
        used[local, taken] = True
        return np.argmin(used, axis=1).astype(np.int64)
    # sort (node, color) pairs; a node's answer is the first color that breaks the run 0, 1, 2..
    pairs = unique_sorted(local * n_colors + taken)
    row, color = np.divmod(pairs, n_colors)
    start = np.searchsorted(row, row)
    gap = color != np.arange(pairs.size) - start
    counts = np.bincount(row, minlength=nodes.size)
    answer = counts.copy()  # no gap: the next color after 0..count-1
    gaps = np.flatnonzero(gap)  # ascending, so each row's first gap comes first
    gap_rows = row[gaps]
    first = np.r_[True, gap_rows[1:] != gap_rows[:-1]] if gaps.size else gaps.astype(bool)
    answer[gap_rows[first]] = (gaps - start[gaps])[first]
    return answer.astype(np.int64)
