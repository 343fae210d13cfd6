"""`run.png`: lattice snapshots (lattices only) above energy and |order parameter| traces.

The snapshots are drawn pixel for pixel (`figimage`, an integer number of pixels per site, no
resampling), so that a lattice never turns into moiré; lattices larger than `MAX_SITES` a side
show their top-left `MAX_SITES` x `MAX_SITES` window.
"""

from __future__ import annotations

import pathlib

import numpy as np

from ..palette import state_colors, state_labels

MAX_SITES = 256  # sites a side a snapshot shows
PANEL_PIXELS = 256  # a snapshot's side on screen: the largest whole number of pixels per site up to this
DPI = 100


def snapshot_pixels(snapshot: np.ndarray, categories: int | None) -> np.ndarray:
    """The RGB image `[rows * z, cols * z, 3]` of a lattice state (spins +-1, or categories), `z`
    pixels per site, cropped to `MAX_SITES` a side.

    **Arguments:**

    - `snapshot`: `[rows, cols]` states.
    - `categories`: as for `state_colors`.
    """
    shown = np.asarray(snapshot)[:MAX_SITES, :MAX_SITES]
    zoom = max(1, PANEL_PIXELS // max(shown.shape))
    index = (shown > 0).astype(np.int64) if categories is None else shown.astype(np.int64)
    image = state_colors(categories)[index]
    return np.repeat(np.repeat(image, zoom, axis=0), zoom, axis=1)


def plot_run(
    path: pathlib.Path,
    *,
    title: str,
    beta: float,
    sweep: np.ndarray,
    energy: np.ndarray,
    order: np.ndarray,
    warmup_sweeps: int,
    onsager: float | None,
    order_label: str,
    snapshots: np.ndarray | None = None,
    snapshot_sweep: np.ndarray | None = None,
    categories: int | None = None,
) -> list[tuple[int, int, int, int]]:
    """Draw the run figure.

    **Arguments:**

    - `path`: the PNG to write.
    - `title`: figure title (the model); `beta` is added to it.
    - `beta`: the inverse temperature.
    - `sweep`: `[T]` sweep of every observation; `energy`, `order`: `[chains, T]`.
    - `warmup_sweeps`: where the warmup ends (shaded).
    - `onsager`: exact energy per site to draw, or None.
    - `order_label`: name of the order parameter.
    - `snapshots`, `snapshot_sweep`: `[S, rows, cols]` lattice states of chain 0 (spins as
        +-1, Potts as categories), or None.
    - `categories`: Potts categories, or None for spins.

    **Returns:** where every snapshot lies in the PNG, `(top, left, height, width)` in pixels.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    images = [] if snapshots is None else [snapshot_pixels(s, categories) for s in snapshots]
    margin, gap, key_width, title_height, label_height = 70, 24, 150, 56, 22
    trace_height, trace_bottom = 300, 56
    snaps_height = max((i.shape[0] for i in images), default=0)
    snaps_width = sum(i.shape[1] + gap for i in images)
    width = max(margin + snaps_width + key_width, 1100)
    height = title_height + (snaps_height + label_height + 30 if images else 0) + trace_height + trace_bottom
    fig = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    fig.suptitle(f"{title}; beta = {beta:g}", fontsize=11, y=1 - 14 / height, va="top")

    boxes = []
    x = margin
    top = title_height + label_height  # from the top of the figure
    for image, at in zip(images, snapshot_sweep if snapshot_sweep is not None else [None] * len(images)):
        h, w = image.shape[:2]
        # figimage: whole pixels, no resampling (offsets from the bottom left)
        fig.figimage(image, xo=x, yo=height - top - h, origin="upper")
        fig.text(x / width, 1 - (top - 6) / height, f"chain 0, sweep {at}", fontsize=9, va="bottom")
        boxes.append((top, x, h, w))
        x += w + gap
    if images:
        colors, names = state_colors(categories), state_labels(categories)
        handles = [Patch(facecolor=c, edgecolor="0.3", label=n) for c, n in zip(colors, names)][:12]
        rows, cols = snapshots.shape[1:]
        shown = "" if max(rows, cols) <= MAX_SITES else f"\n(top-left {MAX_SITES}x{MAX_SITES} of {rows}x{cols})"
        fig.legend(handles=handles, title="spin" if categories is None else "state", fontsize=8, title_fontsize=9,
                   loc="upper left", bbox_to_anchor=((x + 4) / width, 1 - top / height), frameon=False)
        if shown:
            fig.text((x + 8) / width, 1 - (top + snaps_height) / height, shown.strip(), fontsize=8, va="bottom")

    axis_margin = 100  # room for the tick labels and the axis label left of each trace panel
    axes_width = (width - 2 * axis_margin - 40) / 2
    for i, (values, label) in enumerate(((energy, "energy per site (H/N)"), (np.abs(order), f"|{order_label}|"))):
        ax = fig.add_axes([(axis_margin + i * (axes_width + axis_margin)) / width, trace_bottom / height,
                           axes_width / width, (trace_height - 40) / height])
        if warmup_sweeps:
            ax.axvspan(0, warmup_sweeps, color="0.92", zorder=0, label="warmup")
        for c, chain in enumerate(values):
            ax.plot(sweep, chain, lw=0.6, alpha=0.35, color="tab:blue", label=f"{len(values)} chains" if c == 0 else None)
        ax.plot(sweep, values.mean(axis=0), lw=1.8, color="black", label=f"mean of {len(values)} chains")
        if i == 0 and onsager is not None:
            ax.axhline(onsager, color="tab:red", ls="--", lw=1.2, label="Onsager (exact, infinite lattice)")
        ax.set(xlabel="sweep", ylabel=label, title=label)
        ax.legend(fontsize=8, loc="best", framealpha=0.85)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return boxes
