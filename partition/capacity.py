"""Enforce a hard limit on part sizes by moving nodes out of overfull parts.

METIS balances loads only up to a tolerance, so a capacity that must hold exactly (a chip has C
slots, not C * 1.001) is enforced afterwards: overfull parts hand nodes to neighboring parts
with room, preferring moves that cut the fewest edges, and, where no neighbor has room, to any
part with room.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from jaxtyping import Int

from .arrays import unique_counts
from .errors import PartitionError
from .graph import gather_neighbors


def enforce_capacity(
    csr: sp.csr_matrix, assignment: Int[np.ndarray, " nodes"], n_parts: int, capacity: int
) -> Int[np.ndarray, " nodes"]:
    """A copy of `assignment` in which every part holds at most `capacity` nodes.

    **Arguments:**

    - `csr`: canonical adjacency structure.
    - `assignment`: part id of every node.
    - `n_parts`: number of parts; `n_parts * capacity` must be at least the number of nodes.
    - `capacity`: the most nodes a part may hold.
    """
    n = assignment.size
    if n_parts * capacity < n:
        raise PartitionError(
            f"capacity too small: {n_parts} parts of at most {capacity} nodes hold "
            f"{n_parts * capacity} < {n} nodes"
        )
    assignment = assignment.copy()
    sizes = np.bincount(assignment, minlength=n_parts)
    for _ in range(32):  # rounds of neighbor moves; each round is vectorised
        if sizes.max() <= capacity:
            return assignment
        moved = _move_to_neighbors(csr, assignment, sizes, n_parts, capacity)
        if moved == 0:
            break
    _move_anywhere(assignment, sizes, n_parts, capacity)
    return assignment


def _move_to_neighbors(
    csr: sp.csr_matrix, assignment: np.ndarray, sizes: np.ndarray, n_parts: int, capacity: int
) -> int:
    """One round of moves from overfull parts to adjacent parts with room; returns the count."""
    room = capacity - sizes
    candidates = np.flatnonzero(room[assignment] < 0)
    local, neighbor = gather_neighbors(csr, candidates)
    # edges from each candidate into every part it touches
    keys, links = unique_counts(local * n_parts + assignment[neighbor])
    cand_local, part = np.divmod(keys, n_parts)
    own = assignment[candidates[cand_local]]
    stay = np.zeros(candidates.size, dtype=np.int64)
    stay[cand_local[part == own]] = links[part == own]
    gain = links - stay[cand_local]  # cut edges saved by the move (negative: added)
    ok = (part != own) & (room[part] > 0)
    cand_local, part, gain = cand_local[ok], part[ok], gain[ok]
    if cand_local.size == 0:
        return 0
    # best target per candidate, then best candidates first
    order = np.lexsort((-gain, cand_local))
    first = np.r_[True, cand_local[order][1:] != cand_local[order][:-1]]
    best = order[first]
    best = best[np.argsort(-gain[best], kind="stable")]
    node, target = candidates[cand_local[best]], part[best]
    # each target takes at most its room, then each source gives at most its excess
    keep = _rank_within(target) < room[target]
    node, target = node[keep], target[keep]
    source = assignment[node]
    keep = _rank_within(source) < -room[source]
    node, target, source = node[keep], target[keep], source[keep]
    assignment[node] = target
    np.add.at(sizes, target, 1)
    np.subtract.at(sizes, source, 1)
    return int(node.size)


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """For every item, how many earlier items share its group (order = array order)."""
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.searchsorted(sorted_groups, sorted_groups, side="left")
    rank = np.empty(groups.size, dtype=np.int64)
    rank[order] = np.arange(groups.size) - starts
    return rank


def _move_anywhere(assignment: np.ndarray, sizes: np.ndarray, n_parts: int, capacity: int) -> None:
    """Move the excess of overfull parts into the free slots of other parts, in order."""
    excess = np.maximum(sizes - capacity, 0)
    if not excess.any():
        return
    room = np.maximum(capacity - sizes, 0)
    order = np.argsort(assignment, kind="stable")
    bounds = np.searchsorted(assignment[order], np.arange(n_parts + 1))
    # the last `excess[p]` nodes of every overfull part p leave it
    leaving = np.concatenate(
        [order[bounds[p + 1] - excess[p] : bounds[p + 1]] for p in np.flatnonzero(excess)]
    )
    slots = np.repeat(np.arange(n_parts, dtype=np.int64), room)
    assignment[leaving] = slots[: leaving.size]
    np.subtract.at(sizes, np.flatnonzero(excess), excess[excess > 0])
    np.add.at(sizes, slots[: leaving.size], 1)
