"""Draw a partition of a graph that has node coordinates (matplotlib, imported lazily)."""

from __future__ import annotations

import os

import numpy as np
from jaxtyping import Float

from .errors import PartitionError
from .result import Partition

# beyond this many edges, drawing them only hides the nodes
_MAX_DRAWN_EDGES = 20_000


def plot_partition(
    partition: Partition,
    coordinates: Float[np.ndarray, "nodes 2"],
    path: str | os.PathLike,
    *,
    title: str | None = None,
) -> None:
    """Save a picture of the graph: nodes colored by part, halo nodes (states some other part
    reads) ringed in black, edges drawn for small graphs.

    **Arguments:**

    - `partition`: the partition to draw.
    - `coordinates`: `(x, y)` of every node.
    - `path`: the image file to write (format from its suffix, e.g. `.png`).
    - `title`: optional title; defaults to a summary of the report.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    coordinates = np.asarray(coordinates, dtype=np.float64)
    n = partition.n_nodes
    if coordinates.shape != (n, 2):
        raise PartitionError(f"coordinates must have shape ({n}, 2), got {coordinates.shape}")
    plan = partition.halo_plan()
    boundary = np.zeros(n, dtype=bool)
    for nodes in plan.halo:
        boundary[nodes] = True
    report = partition.report()

    fig, ax = plt.subplots(figsize=(8, 8), dpi=120)
    size = float(np.clip(4e4 / n, 0.05, 40))
    csr = partition.csr
    if csr.nnz // 2 <= _MAX_DRAWN_EDGES:
        rows = np.repeat(np.arange(n), np.diff(csr.indptr))
        upper = rows < csr.indices
        segments = np.stack([coordinates[rows[upper]], coordinates[csr.indices[upper]]], axis=1)
        ax.add_collection(LineCollection(segments, colors="0.8", linewidths=0.4, zorder=0))
    palette = "tab10" if partition.n_parts <= 10 else "tab20" if partition.n_parts <= 20 else "turbo"
    cmap = plt.get_cmap(palette, partition.n_parts)
    ax.scatter(
        coordinates[:, 0],
        coordinates[:, 1],
        c=partition.assignment,
        cmap=cmap,
        vmin=-0.5,
        vmax=partition.n_parts - 0.5,
        s=size,
        linewidths=0,
        zorder=1,
    )
    ax.scatter(
        coordinates[boundary, 0],
        coordinates[boundary, 1],
        facecolors="none",
        edgecolors="black",
        s=size * 2.5,
        linewidths=max(0.2, min(1.0, size / 10)),
        zorder=2,
        label=f"halo nodes ({int(boundary.sum())})",
    )
    if partition.n_parts <= 10:  # a legend entry per part stays readable up to ~10
        for part in range(partition.n_parts):
            ax.scatter([], [], color=cmap(part), s=20, label=f"part {part}")
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(
        title
        or (
            f"{partition.method}: {n} nodes, {partition.n_parts} parts, "
            f"cut {report['edge_cut']} edges ({100 * report['edge_cut_fraction']:.2f}%), "
            f"max halo {report['max_halo']}"
        ),
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(os.fspath(path))
    plt.close(fig)
