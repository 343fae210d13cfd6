"""PNG figures of a DTM run: generated images, the denoising strip from noise to x_0, FID against
epoch (with floor and ceiling), autocorrelation and penalty against epoch per step."""

from __future__ import annotations

import math
import pathlib

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _canvas(images: np.ndarray, shape: tuple[int, int], rows: int, cols: int) -> np.ndarray:
    """Images `[rows * cols, P]` tiled with a one-pixel grey border."""
    h, w = shape
    canvas = np.full((rows * (h + 1) + 1, cols * (w + 1) + 1), 0.5)
    for i, img in enumerate(images[: rows * cols]):
        r, c = divmod(i, cols)
        canvas[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + c * (w + 1): 1 + c * (w + 1) + w] = img.reshape(shape)
    return canvas


def image_grid(images: np.ndarray, shape: tuple[int, int], path: pathlib.Path, title: str, n: int = 64) -> None:
    """A square grid of binary images `[N, P]` (black = on)."""
    plt = _plt()
    images = np.asarray(images)[:n]
    side = math.ceil(math.sqrt(len(images)))
    fig, ax = plt.subplots(figsize=(6, 6.3))
    ax.imshow(_canvas(images, shape, math.ceil(len(images) / side), side), cmap="gray_r", interpolation="nearest",
              vmin=0, vmax=1)
    ax.set_title(title, fontsize=11)
    ax.set_axis_off()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def denoising_strip(chain: np.ndarray, shape: tuple[int, int], times: np.ndarray, path: pathlib.Path,
                    n: int) -> None:
    """Rows: `n` generation chains; columns: x_T (noise) ... x_0, labelled with their times.

    **Arguments:**

    - `chain`: bool `[T + 1, S, P]` (entry k is x_k).
    - `shape`: image rows and columns.
    - `times`: `[T + 1]` the schedule's times.
    - `path`: the PNG.
    - `n`: chains shown.
    """
    plt = _plt()
    T = chain.shape[0] - 1
    n = min(n, chain.shape[1])
    fig, axes = plt.subplots(n, T + 1, figsize=(1.1 * (T + 1) + 0.6, 1.1 * n + 0.8), squeeze=False)
    for col, k in enumerate(range(T, -1, -1)):
        for row in range(n):
            ax = axes[row, col]
            ax.imshow(chain[k, row].reshape(shape), cmap="gray_r", interpolation="nearest", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, col].set_title(f"x_{k}\nt={times[k]:.2f}", fontsize=9)
    fig.suptitle("denoising: noise x_T (left) to x_0 (right), one chain per row", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def fid_curve(rows: list[dict], path: pathlib.Path) -> None:
    """FID of the generated images against epoch, with the floor and ceiling as lines."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = np.array([r["epoch"] for r in rows])
    ax.plot(epochs, [r["fid"] for r in rows], "o-", label="generated vs held-out (FID)")
    if rows:
        ax.axhline(rows[-1]["fid_floor"], color="tab:green", ls="--", label="floor: training vs held-out")
        ax.axhline(rows[-1]["fid_ceiling"], color="tab:red", ls=":", label="ceiling: noise vs held-out")
    ax.set_yscale("log")
    from matplotlib.ticker import LogFormatter

    ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))  # 2, 5, 10, 20, 50: no powers of ten
    ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    ax.set(xlabel="epoch", ylabel="classifier-FID (log scale)", title="classifier-FID against epoch")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def mixing_curves(rows: list[dict], path: pathlib.Path, target: float, lag: int) -> None:
    """Autocorrelation (left) and penalty strength (right) against epoch, one line per step.

    **Arguments:**

    - `rows`: the steps' epoch rows (`t`, `epoch`, `autocorrelation`, `penalty`).
    - `path`: the PNG.
    - `target`: the penalty's target autocorrelation.
    - `lag`: the measurement's lag in sweeps.
    """
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for t in sorted({int(r["t"]) for r in rows}):
        mine = [r for r in rows if int(r["t"]) == t]
        epochs = [r["epoch"] for r in mine]
        axes[0].plot(epochs, [r["autocorrelation"] for r in mine], "o-", ms=3, label=f"step {t}")
        axes[1].plot(epochs, [r["penalty"] for r in mine], "o-", ms=3, label=f"step {t}")
    axes[0].axhline(target, color="k", ls="--", lw=0.8, label="target")
    axes[0].set(xlabel="epoch", ylabel=f"autocorrelation of the outputs, lag {lag} sweeps",
                title="chain autocorrelation (mean over the epoch)")
    axes[1].set(xlabel="epoch", ylabel="lambda", title="correlation penalty strength (end of epoch)")
    if all(r["penalty"] > 0 for r in rows):
        axes[1].set_yscale("log")
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
