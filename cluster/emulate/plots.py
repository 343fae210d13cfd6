"""PNG figures of an emulation: chip map (load colours, link widths), traffic heatmap, sweep
curve, and a snapshot of the emulated samples."""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch

from ..palette import state_colors, state_labels


def plot_chip_map(report: dict, topology, path: pathlib.Path) -> None:
    """Chips coloured by load (nodes / capacity), links as lines whose width is the bits per sweep
    both directions carry together; links slower than `links.bandwidth` / `links.latency` dashed.

    **Arguments:**

    - `report`: a `build_report` dict.
    - `topology`: the `Topology` (positions, wrap links).
    - `path`: the PNG to write.
    """
    pos = topology.positions
    load = np.array([c["load"] for c in report["chips"]])
    both: dict = {}
    system = report["system"]
    slow = {tuple(sorted(x["link"])) for x in report["links"]
            if x["bandwidth_bits_per_s"] < system["bandwidth_bits_per_s"] or x["latency_s"] > system["latency_s"]}
    for x in report["links"]:
        key = tuple(sorted(x["link"]))
        both[key] = both.get(key, 0) + x["bits_per_sweep"]
    peak = max(both.values()) or 1
    n = topology.n_chips
    size = min(12, 3 + 0.9 * np.sqrt(n) * 1.6)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    cmap = plt.get_cmap("viridis")
    for (a, b), bits in both.items():
        width = 0.6 + 9 * bits / peak
        color = "tab:red" if bits else "0.8"
        curved = (a, b) in topology.wraps
        arrow = FancyArrowPatch(pos[a], pos[b], arrowstyle="-", linewidth=width, color=color, alpha=0.75,
                                connectionstyle=f"arc3,rad={0.35 if curved else 0.0}", zorder=1,
                                linestyle="--" if (a, b) in slow else "-")
        ax.add_patch(arrow)
        if bits and n <= 36:
            mx, my = (pos[a][0] + pos[b][0]) / 2, (pos[a][1] + pos[b][1]) / 2
            if not curved:
                ax.text(mx, my, f"{bits / 1e3:.0f}k" if bits >= 1e3 else str(bits), fontsize=7, ha="center", va="center",
                        bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8}, zorder=3)
    xy = np.array([pos[i] for i in range(n)])
    sc = ax.scatter(xy[:, 0], xy[:, 1], s=1400 if n <= 36 else 300, c=load, cmap=cmap, vmin=0, vmax=1,
                    edgecolors="black", zorder=2)
    for c in report["chips"]:
        label = f"chip {c['chip']}\npart {c['part']}" if c["part"] is not None else f"chip {c['chip']}\nidle"
        ax.text(*pos[c["chip"]], label, fontsize=7 if n <= 36 else 5, ha="center", va="center", zorder=4,
                color="white" if c["load"] < 0.6 else "black")
    fig.colorbar(sc, ax=ax, label="load (nodes / capacity)", shrink=0.8)
    pad = 0.6
    ax.set_xlim(xy[:, 0].min() - pad, xy[:, 0].max() + pad)
    ax.set_ylim(xy[:, 1].min() - pad, xy[:, 1].max() + pad)
    ax.set_aspect("equal")
    ax.axis("off")
    p = report["projection"]
    ax.set_title(f"{report['system']['chips']} chips ({report['system']['topology']}), {report['n_nodes']} nodes\n"
                 f"link width = bits/sweep both ways (max {peak:.3g}); projected sweep {p['sweep_time_s']:.3g} s"
                 + ("\ndashed: slower links (see the link table)" if slow else ""),
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_heatmap(report: dict, path: pathlib.Path) -> None:
    """Bits per sweep from chip (row) to chip (column), end to end (before routing).

    **Arguments:**

    - `report`: a `build_report` dict.
    - `path`: the PNG to write.
    """
    m = np.array(report["traffic"]["chip_bits_per_sweep"], dtype=np.float64)
    n = len(m)
    fig, ax = plt.subplots(figsize=(min(11, 3 + 0.45 * n), min(9.5, 2.5 + 0.4 * n)))
    im = ax.imshow(np.ma.masked_equal(m, 0), cmap="magma_r", vmin=0)
    fig.colorbar(im, ax=ax, label="bits per sweep (blank: none)")
    if n <= 24:
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        for (i, j), v in np.ndenumerate(m):
            if v:
                ax.text(j, i, f"{v / 1e3:.0f}k" if v >= 1e4 else f"{v:.0f}", fontsize=8 if n <= 8 else 6, ha="center", va="center",
                        color="white" if v > 0.6 * m.max() else "black")
    ax.set_xlabel("receiving chip")
    ax.set_ylabel("sending chip")
    ax.set_title("chip-to-chip traffic per sweep (end to end)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sweep(report: dict, path: pathlib.Path) -> None:
    """Projected sweep time (compute and communication stacked) against the swept quantity.

    **Arguments:**

    - `report`: a `build_report` dict with a `sweep` entry.
    - `path`: the PNG to write.
    """
    sw = report["sweep"]
    x = np.array([r["value"] for r in sw["rows"]], dtype=np.float64)
    order = np.argsort(x)
    x = x[order]
    total = np.array([r["sweep_time_s"] for r in sw["rows"]])[order]
    compute = np.array([r["compute_s"] for r in sw["rows"]])[order]
    comm = np.array([r["communication_s"] for r in sw["rows"]])[order]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.plot(x, total * 1e6, "o-", color="black", label="sweep time")
    ax.plot(x, compute * 1e6, "s--", color="tab:blue", label="compute")
    ax.plot(x, comm * 1e6, "^--", color="tab:red", label="communication (latency + link)")
    if sw["over"] == "bandwidth":
        ax.set_xscale("log")
        ax.minorticks_off()  # minor log labels collide; label the swept values only
        ax.set_xticks(x)
        ax.set_xticklabels([_rate(v) for v in x])
        ax.set_xlabel("link bandwidth (bits/s per direction)")
    else:
        ax.set_xlabel("parts K (chips used)")
        ax.set_xticks(x)
    ax.set_ylabel("projected time per sweep (us)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{report['model']}\nprojected sweep time vs {sw['over']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _rate(v: float) -> str:
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= scale:
            return f"{v / scale:g}{prefix}"
    return f"{v:g}"


def chip_of_site(model, mapping) -> np.ndarray:
    """The chip of every lattice site, `[rows, cols]`: the partition assigns program indices
    (colour class by colour class), so each is mapped to its node number (site `r * cols + c`).

    **Arguments:**

    - `model`: the built lattice model (`lattice` and `node_of_index`).
    - `mapping`: its `Mapping` (partition and placement).
    """
    chip_of_index = np.asarray(mapping.placement)[np.asarray(mapping.partition.assignment)]
    chips = np.empty(model.n_nodes, np.int64)
    chips[np.asarray(model.node_of_index)] = chip_of_index
    return chips.reshape(model.lattice)


def chip_colors(n_chips: int):
    """A colour map with one distinct colour per chip, and the norm that puts chip c on colour c.

    **Arguments:**

    - `n_chips`: chips of the system.
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap

    base = plt.get_cmap("tab10" if n_chips <= 10 else "tab20" if n_chips <= 20 else "turbo")
    colors = [base(c) for c in range(n_chips)] if n_chips <= 20 else [base(c / (n_chips - 1)) for c in range(n_chips)]
    return ListedColormap(colors), BoundaryNorm(np.arange(n_chips + 1) - 0.5, n_chips)


def plot_samples(state: np.ndarray, chips: np.ndarray, n_chips: int, path: pathlib.Path,
                 categories: int | None = None) -> np.ndarray:
    """The last emulated sample of chain 0 beside the chip of every site, in equal panels, each
    with its colour key.

    **Arguments:**

    - `state`: `[n_nodes]` a sample in node order (spins as bools, or categories).
    - `chips`: `[rows, cols]` chip of every site (`chip_of_site`).
    - `n_chips`: chips of the system (one colour each).
    - `path`: the PNG to write.
    - `categories`: Potts categories, or None for spins.

    **Returns:** the chip image as drawn (`[rows, cols]`, every `stride`-th site a side).
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    rows, cols = chips.shape
    stride = max(1, max(rows, cols) // 1024)  # keep the image to ~1k pixels a side
    img = np.asarray(state).reshape(rows, cols)[::stride, ::stride].astype(np.int64)
    shown = chips[::stride, ::stride]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 5))
    # each key beside its image and as tall as it, so that both panels have the same size
    keys = [make_axes_locatable(a).append_axes("right", size="4%", pad=0.08) for a in (left, right)]
    sub = "" if stride == 1 else f", 1 in {stride} sites per axis"
    colors, labels = state_colors(categories), state_labels(categories)
    states = left.imshow(img, cmap=ListedColormap(colors), norm=BoundaryNorm(np.arange(len(colors) + 1) - 0.5, len(colors)),
                            interpolation="nearest")
    left.set_title(f"emulated sample (chain 0){sub}", fontsize=9)
    key = fig.colorbar(states, cax=keys[0], ticks=range(len(colors)) if len(colors) <= 32 else None)
    if len(colors) <= 32:
        key.ax.set_yticklabels(labels)
    key.set_label("spin" if categories is None else "state")
    cmap, norm = chip_colors(n_chips)
    im = right.imshow(shown, cmap=cmap, norm=norm, interpolation="nearest")
    right.set_title(f"chip of every site{sub}", fontsize=9)
    key = fig.colorbar(im, cax=keys[1], ticks=range(n_chips) if n_chips <= 32 else None)
    key.set_label("chip")
    for a in (left, right):
        a.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return np.asarray(im.get_array())
