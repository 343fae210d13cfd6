"""Graph generators that return edge arrays (array-native, no per-node Python objects)."""

from __future__ import annotations

import numpy as np
from jaxtyping import Int


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
        raise ValueError(f"grid sides must be positive, got rows={rows}, cols={cols}")
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
