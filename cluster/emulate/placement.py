"""Placing parts onto chips.

Greedy: the part with the most traffic goes to the most central chip (least total hop distance);
then, one at a time, the unplaced part exchanging most with the placed ones goes to the free chip
that adds the least hop-weighted traffic, sum_pq traffic[p, q] * hops[chip p, chip q].
Refinement: swap the contents of two chips (a part and a part, or a part and an empty chip) while
the best swap lowers the cost. The cost is the hop-weighted traffic by default; the emulation
passes its projected sweep time (then bit-hops on ties), which also sees the longest route of
every colour step (latency) and the busiest link (bandwidth), not only the total.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def placement_cost(traffic: np.ndarray, hops: np.ndarray, placement: np.ndarray) -> int:
    """Sum over part pairs of traffic x hops between their chips.

    **Arguments:**

    - `traffic`: `[K, K]` traffic part p -> part q (any unit).
    - `hops`: `[C, C]` hop distances between chips.
    - `placement`: `[K]` chip of every part.
    """
    return int((traffic * hops[np.ix_(placement, placement)]).sum())


def greedy_placement(traffic: np.ndarray, hops: np.ndarray) -> np.ndarray:
    """Greedy placement of K parts on C >= K chips (see the module docstring).

    **Arguments:**

    - `traffic`: `[K, K]` traffic part p -> part q.
    - `hops`: `[C, C]` hop distances.
    """
    k, c = len(traffic), len(hops)
    if k > c:
        raise ValueError(f"{k} parts cannot be placed on {c} chips")
    both = traffic + traffic.T
    placement = np.full(k, -1, np.int64)
    free = np.ones(c, bool)
    first = int(np.argmax(both.sum(axis=1)))
    chip = int(np.argmin(hops.sum(axis=1)))
    placement[first], free[chip] = chip, False
    for _ in range(k - 1):
        placed = placement >= 0
        pull = np.where(placed, -1, both[:, placed].sum(axis=1))
        p = int(np.lexsort((-np.arange(k), pull))[-1])  # most traffic to placed parts; ties: lowest id
        added = hops[:, placement[placed]] @ both[p, placed]
        added = np.where(free, added, np.iinfo(np.int64).max)
        chip = int(np.argmin(added))
        placement[p], free[chip] = chip, False
    return placement


def refine_swaps(cost_of: Callable[[np.ndarray], object], n_chips: int, placement: np.ndarray,
                 max_passes: int = 100) -> np.ndarray:
    """Best-improvement pairwise swaps of chip contents until none lowers the cost.

    **Arguments:**

    - `cost_of`: placement `[K]` -> a comparable cost (a number or a tuple).
    - `n_chips`: C.
    - `placement`: the starting placement, `[K]`.
    - `max_passes`: an upper bound on swaps applied.
    """
    c = n_chips
    placement = np.array(placement, np.int64)
    cost = cost_of(placement)
    for _ in range(max_passes):
        best, best_pair = cost, None
        for a in range(c):  # loops over chip pairs, not nodes
            for b in range(a + 1, c):
                trial = np.where(placement == a, b, np.where(placement == b, a, placement))
                if np.array_equal(trial, placement):
                    continue
                value = cost_of(trial)
                if value < best:
                    best, best_pair = value, trial
        if best_pair is None:
            break
        placement, cost = best_pair, best
    return placement


def place_parts(traffic: np.ndarray, hops: np.ndarray, method: str = "greedy_swap",
                cost_of: Callable[[np.ndarray], object] | None = None) -> np.ndarray:
    """Chip of every part.

    **Arguments:**

    - `traffic`: `[K, K]` traffic part p -> part q.
    - `hops`: `[C, C]` hop distances.
    - `method`: `"greedy_swap"` (greedy, then swap refinement) or `"identity"` (part p on chip p).
    - `cost_of`: what the swaps lower (default: `placement_cost`, the hop-weighted traffic).
    """
    k, c = len(traffic), len(hops)
    if k > c:
        raise ValueError(f"{k} parts cannot be placed on {c} chips")
    if method == "identity":
        return np.arange(k, dtype=np.int64)
    if cost_of is None:
        def cost_of(placement):
            return placement_cost(traffic, hops, placement)
    return refine_swaps(cost_of, c, greedy_placement(traffic, hops))
