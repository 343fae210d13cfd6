"""Graph coloring for block Gibbs sampling, vectorised for graphs of millions of nodes.

Nodes of one color share no edge, so a sampler may update them all at once. Sequential greedy
coloring (networkx's DSATUR) is far too slow at this scale; instead:

1. Bipartite graphs (grids, tori with even sides, RBMs) get their optimal 2-coloring from BFS
   depth parity over a spanning forest.
2. Otherwise Jones-Plassmann rounds color, all at once, every uncolored node whose priority
   beats all of its uncolored neighbors, with the smallest color its colored neighbors leave
   free. This equals sequential greedy coloring in priority order, at a cost proportional to
   the edges plus one cheap vectorised step per round. Priorities: smallest-last (degeneracy)
   or largest-first, then BFS depth from a hub so that colors spread as a wave (which is what
   makes DSATUR good on lattices), then random.
3. Iterated greedy passes (Culberson) recolor class by class: a class is independent, so it
   is recolored in one vectorised step, and the number of colors never grows.
4. Local moves then try to empty the top color class: a node moves to a free lower color, or
   swaps with its only neighbor of some color; non-overlapping moves go in parallel.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from jaxtyping import Int
from scipy.sparse.csgraph import breadth_first_order, connected_components

from .arrays import contains, first_occurrence, unique_counts, unique_sorted
from .errors import PartitionError
from .graph import Graph, as_csr, degrees, gather_neighbors, row_ids

STRATEGIES = ("smallest_last", "largest_first", "random", "dsatur")

# above this many (rows x colors) cells, the smallest free color is found by sorting instead
_BITMAP_CELLS = 50_000_000


def greedy_color(
    graph: Graph,
    strategy: str = "smallest_last",
    *,
    seed: int = 0,
    improve_passes: int = 8,
    exact_bipartite: bool = True,
) -> Int[np.ndarray, " nodes"]:
    """Color the nodes so that no edge joins two nodes of the same color.

    **Arguments:**

    - `graph`: a symmetric sparse matrix without self loops, or a networkx graph.
    - `strategy`: the greedy order. `"smallest_last"` (degeneracy order, the best in general),
      `"largest_first"` (high degree first), `"random"`, or `"dsatur"` (saturation, re-ranked
      every round along a growing frontier). Ties go to BFS depth, then random.
    - `seed`: random seed for tie breaking; the result is deterministic for a given seed.
    - `improve_passes`: at most this many iterated-greedy passes (stops early when two passes
      in a row do not reduce the number of colors), followed by local moves that try to empty
      the top color; 0 turns all improvement off.
    - `exact_bipartite`: return the 2-coloring when the graph is bipartite.

    **Returns:** colors `0..k-1`, one per node (every color used).
    """
    if strategy not in STRATEGIES:
        raise PartitionError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if improve_passes < 0:
        raise PartitionError(f"improve_passes must be non-negative, got {improve_passes}")
    csr = as_csr(graph)
    if csr.nnz == 0:
        return np.zeros(csr.shape[0], dtype=np.int64)
    needs_depth = exact_bipartite or strategy in ("smallest_last", "largest_first")
    depth = bfs_depth(csr) if needs_depth else None
    if exact_bipartite:
        parity = depth % 2
        if is_valid_coloring(csr, parity):
            return parity
    rng = np.random.default_rng(seed)
    if strategy == "dsatur":
        colors = _saturation_rounds(csr, rng)
    else:
        colors = _jones_plassmann(csr, _priority(csr, strategy, depth, rng))
    colors = _iterated_greedy(csr, colors, improve_passes, rng)
    return _empty_top_colors(csr, colors, rng) if improve_passes else colors


def is_valid_coloring(graph: Graph, colors: Int[np.ndarray, " nodes"]) -> bool:
    """Whether every node has a color >= 0 and no edge joins two nodes of one color.

    **Arguments:**

    - `graph`: a sparse matrix or networkx graph (its stored entries are the edges).
    - `colors`: one integer color per node.
    """
    csr = graph if isinstance(graph, sp.csr_matrix) else as_csr(graph)
    colors = np.asarray(colors)
    if colors.shape != (csr.shape[0],):
        raise PartitionError(f"colors must have shape ({csr.shape[0]},) (one per node), got {colors.shape}")
    if not np.issubdtype(colors.dtype, np.integer):
        raise PartitionError(f"colors must be integers, got dtype {colors.dtype}")
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
        raise PartitionError(f"colors must be a 1-D integer array, got shape {colors.shape}, dtype {colors.dtype}")
    if colors.size == 0:
        return []
    if colors.min() < 0:
        raise PartitionError(f"colors must be non-negative, node {int(np.argmin(colors))} has {colors.min()}")
    n_colors = int(colors.max()) + 1
    order = np.argsort(colors, kind="stable")  # stable: ids stay ascending within a class
    bounds = np.searchsorted(colors[order], np.arange(n_colors + 1))
    if node_types is None:
        return [order[bounds[c] : bounds[c + 1]] for c in range(n_colors)]

    node_types = np.asarray(node_types)
    if node_types.shape != colors.shape:
        raise PartitionError(f"node_types must have shape {colors.shape}, got {node_types.shape}")
    if not np.issubdtype(node_types.dtype, np.integer):
        raise PartitionError(f"node_types must be integers, got dtype {node_types.dtype}")
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
    csr = as_csr(graph)
    parity = bfs_depth(csr) % 2
    return parity if is_valid_coloring(csr, parity) else None


def bfs_depth(csr: sp.csr_matrix) -> Int[np.ndarray, " nodes"]:
    """Breadth-first depth of every node from the highest-degree node of its component.

    **Arguments:**

    - `csr`: canonical adjacency structure.
    """
    n = csr.shape[0]
    _, labels = connected_components(csr, directed=False)
    by_degree = np.lexsort((-degrees(csr), labels))
    roots = by_degree[first_occurrence(labels[by_degree])]
    # one BFS from a virtual node linked to the root of every component spans the whole forest
    link = sp.csr_matrix(
        (np.ones(roots.size, dtype=np.int8), (roots, np.zeros(roots.size, dtype=np.int64))),
        shape=(n, 1),
    )
    forest = sp.bmat([[csr, link], [link.T, None]], format="csr")
    _, predecessor = breadth_first_order(forest, n, directed=True, return_predecessors=True)
    pointer = predecessor[:n].astype(np.int64)
    depth = np.ones(n, dtype=np.int64)
    depth[roots], pointer[roots] = 0, roots
    # pointer jumping: log2(depth) vectorised rounds instead of a walk down the tree
    while True:
        jumped = pointer[pointer]
        if np.array_equal(jumped, pointer):
            return depth
        depth += depth[pointer]
        pointer = jumped


def _priority(
    csr: sp.csr_matrix, strategy: str, depth: np.ndarray | None, rng: np.random.Generator
) -> Int[np.ndarray, " nodes"]:
    """A unique rank per node: higher ranks are colored first."""
    n = csr.shape[0]
    tie = rng.permutation(n)
    if strategy == "random":
        return tie
    primary = degrees(csr) if strategy == "largest_first" else _peel_rounds(csr)
    rank = np.empty(n, dtype=np.int64)
    # shallow nodes first: colors then spread from the hub like a wave
    rank[np.lexsort((tie, -depth, primary))] = np.arange(n)
    return rank


def _peel_rounds(csr: sp.csr_matrix) -> Int[np.ndarray, " nodes"]:
    """Smallest-last (degeneracy) order in batches: every round removes all nodes whose degree
    is within one of the current minimum; nodes removed later are colored first.

    The slack of one keeps the number of rounds small (a path peels in one round, not n / 2)
    at no measurable cost in colors."""
    n = csr.shape[0]
    degree = degrees(csr)
    removed_at = np.full(n, -1, dtype=np.int64)
    alive = np.arange(n)
    step = 0
    while alive.size:
        low = alive[degree[alive] <= degree[alive].min() + 1]
        removed_at[low] = step
        _, neighbor = gather_neighbors(csr, low)
        degree -= np.bincount(neighbor, minlength=n)
        alive = alive[removed_at[alive] < 0]
        step += 1
    return removed_at


def _jones_plassmann(csr: sp.csr_matrix, priority: Int[np.ndarray, " nodes"]) -> Int[np.ndarray, " nodes"]:
    """Greedy coloring in priority order, computed in rounds of ready nodes.

    A node is ready once all its higher-priority neighbors are colored; counting those down
    makes every round cost only the edges of the nodes it colors."""
    n = csr.shape[0]
    u, v = row_ids(csr), csr.indices
    waiting_on = np.bincount(u[priority[v] > priority[u]], minlength=n)
    del u, v
    colors = np.full(n, -1, dtype=np.int64)
    ready = np.flatnonzero(waiting_on == 0)
    while ready.size:
        local, neighbor = gather_neighbors(csr, ready)
        colors[ready] = _smallest_free(ready.size, local, colors[neighbor])
        released = neighbor[priority[neighbor] < priority[ready][local]]
        waiting_on -= np.bincount(released, minlength=n)
        ready = unique_sorted(released[waiting_on[released] == 0])
    return colors


def _saturation_rounds(csr: sp.csr_matrix, rng: np.random.Generator) -> Int[np.ndarray, " nodes"]:
    """DSATUR in rounds: colors grow from the highest-degree node of every component; each
    round colors the frontier nodes that outrank their frontier neighbors by (saturation,
    uncolored degree, random) and whose saturation is within one of the frontier's maximum."""
    n = csr.shape[0]
    tie = rng.permutation(n).astype(np.int64)
    open_degree = degrees(csr)
    colors = np.full(n, -1, dtype=np.int64)
    seen = np.zeros(n, dtype=np.uint64)  # bit c: a neighbor has color c (colors >= 63 share bit 63)
    _, labels = connected_components(csr, directed=False)
    by_degree = np.lexsort((-tie, -open_degree, labels))
    frontier = by_degree[first_occurrence(labels[by_degree])]
    in_frontier = np.zeros(n, dtype=bool)
    in_frontier[frontier] = True
    key = np.full(n, -1, dtype=np.int64)
    while frontier.size:
        saturation = np.bitwise_count(seen[frontier]).astype(np.int64)
        # one int64 key: saturation, then uncolored degree (capped), then the random tie
        key[frontier] = (saturation << 56) | (np.minimum(open_degree[frontier], 2**20 - 1) << 36) | tie[frontier]
        local, neighbor = gather_neighbors(csr, frontier)
        beaten = np.zeros(frontier.size, dtype=bool)
        beaten[local[key[neighbor] > key[frontier][local]]] = True
        beaten |= saturation < saturation.max() - 1
        winners = frontier[~beaten]
        key[winners] = -1
        local, neighbor = gather_neighbors(csr, winners)
        colors[winners] = _smallest_free(winners.size, local, colors[neighbor])
        bits = np.left_shift(np.uint64(1), np.minimum(colors[winners][local], 63).astype(np.uint64))
        np.bitwise_or.at(seen, neighbor, bits)
        open_degree -= np.bincount(neighbor, minlength=n)
        in_frontier[winners] = False
        reached = neighbor[(colors[neighbor] < 0) & ~in_frontier[neighbor]]
        reached = unique_sorted(reached)
        in_frontier[reached] = True
        frontier = np.concatenate([frontier[beaten], reached])
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
            local, neighbor = gather_neighbors(csr, members)
            recolored[members] = _smallest_free(members.size, local, recolored[neighbor])
        improved = recolored.max() < best.max()
        best = recolored
        stale = 0 if improved else stale + 1
        if stale >= 2:
            break
    return best


def _empty_top_colors(
    csr: sp.csr_matrix, colors: np.ndarray, rng: np.random.Generator, rounds: int = 30
) -> Int[np.ndarray, " nodes"]:
    """Try to empty the highest color class, again and again, by local moves.

    A node v of the top color moves to a lower color that none of its neighbors has, or, where
    its neighbors of some color c are a single node w that has another free color c' < top, w
    moves to c' and v to c. Moves whose closed neighborhoods overlap are never applied in the
    same round, so every round keeps the coloring valid."""
    colors = colors.copy()
    while (top_color := int(colors.max())) >= 2:
        for _ in range(rounds):
            top = np.flatnonzero(colors == top_color)
            if top.size == 0:
                break
            free = _free_colors(csr, top, colors, top_color)
            direct = free.any(axis=1)
            if direct.any():  # the top class is independent: all may move at once
                colors[top[direct]] = np.argmax(free[direct], axis=1)
                continue
            if not _swap_round(csr, colors, top, top_color, rng):
                break
        if (colors == top_color).any():
            break
    return colors


def _swap_round(
    csr: sp.csr_matrix, colors: np.ndarray, top: np.ndarray, top_color: int, rng: np.random.Generator
) -> bool:
    """One round of (w -> c', v -> c) moves for top-color nodes v; False when none applies."""
    width = top_color + 1
    local, neighbor = gather_neighbors(csr, top)
    keys = local * width + colors[neighbor]
    distinct, counts = unique_counts(keys)
    single = distinct[(counts == 1) & (distinct % width < top_color)]
    if single.size == 0:
        return False
    # the single neighbor w of every (v, c); sorting by key aligns it with `single`
    hit = np.flatnonzero(contains(single, keys))
    hit = hit[np.argsort(keys[hit], kind="stable")]
    v_local, c = np.divmod(single, width)
    v, w = top[v_local], neighbor[hit]
    w_free = _free_colors(csr, w, colors, top_color)
    w_free[np.arange(w.size), c] = False
    movable = w_free.any(axis=1)
    if not movable.any():
        return False
    v, w, c, c_w = v[movable], w[movable], c[movable], np.argmax(w_free[movable], axis=1)
    # a move claims N[v] and N[w]; only moves that outrank every other claimant of their nodes go
    priority = rng.permutation(v.size)
    lv, nv = gather_neighbors(csr, v)
    lw, nw = gather_neighbors(csr, w)
    move = np.concatenate([lv, lw, np.arange(v.size), np.arange(v.size)])
    node = np.concatenate([nv, nw, v, w])
    best = np.full(colors.size, -1, dtype=np.int64)
    np.maximum.at(best, node, priority[move])
    loses = np.zeros(v.size, dtype=bool)
    loses[move[best[node] != priority[move]]] = True
    wins = ~loses
    colors[w[wins]] = c_w[wins]
    colors[v[wins]] = c[wins]
    return True


def _free_colors(
    csr: sp.csr_matrix, nodes: np.ndarray, colors: np.ndarray, limit: int
) -> np.ndarray:
    """Boolean `[len(nodes), limit]`: color c < limit is used by no neighbor of the node."""
    local, neighbor = gather_neighbors(csr, nodes)
    used = np.zeros((nodes.size, limit + 1), dtype=bool)
    used[local, np.minimum(colors[neighbor], limit)] = True
    return ~used[:, :limit]


def _smallest_free(
    n_rows: int, local: Int[np.ndarray, " m"], taken: Int[np.ndarray, " m"]
) -> Int[np.ndarray, " rows"]:
    """Per row, the smallest color >= 0 absent from its neighbors' colors `taken`.

    **Arguments:**

    - `n_rows`: number of rows (nodes being colored).
    - `local`: the row of every neighbor entry.
    - `taken`: the color of every neighbor entry (-1: uncolored, ignored).
    """
    mask = taken >= 0
    local, taken = local[mask], taken[mask]
    if taken.size == 0:
        return np.zeros(n_rows, dtype=np.int64)
    n_colors = int(taken.max()) + 2  # the last column is always free
    if n_rows * n_colors <= _BITMAP_CELLS:
        used = np.zeros((n_rows, n_colors), dtype=bool)
        used[local, taken] = True
        return np.argmin(used, axis=1).astype(np.int64)
    # sort (row, color) pairs; a row's answer is the first color that breaks the run 0, 1, 2..
    pairs = unique_sorted(local * n_colors + taken)
    row, color = np.divmod(pairs, n_colors)
    start = np.searchsorted(row, row)
    gap = color != np.arange(pairs.size) - start
    answer = np.bincount(row, minlength=n_rows)  # no gap: the color after 0..count-1
    gaps = np.flatnonzero(gap)  # ascending, so each row's first gap comes first
    gap_rows = row[gaps]
    first = np.r_[True, gap_rows[1:] != gap_rows[:-1]] if gaps.size else gaps.astype(bool)
    answer[gap_rows[first]] = (gaps - start[gaps])[first]
    return answer.astype(np.int64)
