"""`run.png`: lattice snapshots (lattices only) above energy and |order parameter| traces."""

from __future__ import annotations

import pathlib

import numpy as np


def plot_run(
    path: pathlib.Path,
    *,
    title: str,
    sweep: np.ndarray,
    energy: np.ndarray,
    order: np.ndarray,
    warmup_sweeps: int,
    onsager: float | None,
    order_label: str,
    snapshots: np.ndarray | None = None,
    snapshot_sweep: np.ndarray | None = None,
    cmap: str = "gray",
) -> None:
    """Draw the run figure.

    **Arguments:**

    - `path`: the PNG to write.
    - `title`: figure title.
    - `sweep`: `[T]` sweep of every observation; `energy`, `order`: `[chains, T]`.
    - `warmup_sweeps`: where the warmup ends (shaded).
    - `onsager`: exact energy per site to draw, or None.
    - `order_label`: name of the order parameter.
    - `snapshots`, `snapshot_sweep`: `[S, rows, cols]` lattice states of chain 0, or None.
    - `cmap`: matplotlib colormap of the snapshots.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_snap = 0 if snapshots is None else len(snapshots)
    columns = max(2, n_snap)
    fig = plt.figure(figsize=(3.4 * columns, 3.6 * (2 if n_snap else 1) + 0.4), layout="constrained")
    grid = fig.add_gridspec(2 if n_snap else 1, 2 * columns)
    for i in range(n_snap):
        ax = fig.add_subplot(grid[0, 2 * i : 2 * i + 2])
        ax.imshow(snapshots[i], cmap=cmap, interpolation="nearest")
        ax.set_title(f"chain 0, sweep {snapshot_sweep[i]}", fontsize=9)
        ax.set_axis_off()
    row = 1 if n_snap else 0
    left = fig.add_subplot(grid[row, :columns])
    right = fig.add_subplot(grid[row, columns:])
    for ax, values, label in ((left, energy, "energy per site"), (right, np.abs(order), f"|{order_label}|")):
        for chain in values:
            ax.plot(sweep, chain, lw=0.7, alpha=0.6)
        if warmup_sweeps:
            ax.axvspan(0, warmup_sweeps, color="0.9", zorder=0, label="warmup")
        ax.set(xlabel="sweep", ylabel=label, title=label)
    if onsager is not None:
        left.axhline(onsager, color="k", ls="--", lw=1, label="Onsager (exact)")
    left.legend(fontsize=8, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=100)
    plt.close(fig)
