"""The colours node states are drawn in by every figure (`run.png`, the emulation's
`samples.png`): spins black (-1) and white (+1), Potts categories qualitative colours."""

from __future__ import annotations

import numpy as np


def state_colors(categories: int | None) -> np.ndarray:
    """RGB colours `[k, 3]` of the node states, state index i (spin -1 / +1 as 0 / 1, or the
    category) in row i.

    **Arguments:**

    - `categories`: the number of Potts categories, or None for spins.
    """
    import matplotlib

    if categories is None:
        return np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    if categories <= 20:
        cmap = matplotlib.colormaps["tab10" if categories <= 10 else "tab20"]
        return np.array([cmap(i)[:3] for i in range(categories)])
    cmap = matplotlib.colormaps["turbo"]
    return np.array([cmap(i / (categories - 1))[:3] for i in range(categories)])


def state_labels(categories: int | None) -> list[str]:
    """The names of the states of `state_colors`, for a colour key.

    **Arguments:**

    - `categories`: the number of Potts categories, or None for spins.
    """
    return ["-1 (down)", "+1 (up)"] if categories is None else [f"category {c}" for c in range(categories)]
