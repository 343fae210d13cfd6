"""Sorting-based set operations on integer keys.

numpy >= 2.3 answers a bare `np.unique(keys)` with a hash table that is ~100x slower than a
sort on millions of int64 keys, so the hot paths use these sort-based versions instead.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Bool, Int


def unique_sorted(keys: Int[np.ndarray, " n"]) -> Int[np.ndarray, " k"]:
    """The distinct values of `keys`, ascending.

    **Arguments:**

    - `keys`: a 1-D integer array.
    """
    ordered = np.sort(keys, kind="stable")
    return ordered[_run_starts(ordered)]


def unique_counts(keys: Int[np.ndarray, " n"]) -> tuple[Int[np.ndarray, " k"], Int[np.ndarray, " k"]]:
    """The distinct values of `keys`, ascending, and how often each occurs.

    **Arguments:**

    - `keys`: a 1-D integer array.
    """
    ordered = np.sort(keys, kind="stable")
    starts = np.flatnonzero(_run_starts(ordered))
    counts = np.diff(np.append(starts, ordered.size))
    return ordered[starts], counts


def first_occurrence(keys: Int[np.ndarray, " n"]) -> Bool[np.ndarray, " n"]:
    """A mask that is True at the first position of every distinct value of `keys`.

    **Arguments:**

    - `keys`: a 1-D integer array.
    """
    order = np.argsort(keys, kind="stable")
    mask = np.zeros(keys.size, dtype=bool)
    mask[order[_run_starts(keys[order])]] = True
    return mask


def contains(sorted_keys: Int[np.ndarray, " k"], queries: Int[np.ndarray, " q"]) -> Bool[np.ndarray, " q"]:
    """Membership of each of `queries` in the ascending array `sorted_keys`.

    **Arguments:**

    - `sorted_keys`: ascending 1-D array.
    - `queries`: values to look up.
    """
    if sorted_keys.size == 0:
        return np.zeros(np.shape(queries), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, queries), sorted_keys.size - 1)
    return sorted_keys[pos] == queries


def _run_starts(ordered: np.ndarray) -> Bool[np.ndarray, " n"]:
    """True where a sorted array starts a new run of equal values."""
    mask = np.ones(ordered.size, dtype=bool)
    if ordered.size > 1:
        np.not_equal(ordered[1:], ordered[:-1], out=mask[1:])
    return mask
