"""PNG figures of a training run: curves, data and model samples, chain autocorrelation."""

from __future__ import annotations

import math
import pathlib

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(rows: list[dict], path: pathlib.Path) -> None:
    """Moment gap (the loss proxy) and held-out pseudo-log-likelihood against step."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    steps = np.array([r["step"] for r in rows])
    gap = np.array([r["moment_gap"] for r in rows])
    axes[0].plot(steps, gap, lw=0.8)
    axes[0].set(title="moment gap |<ss>+ - <ss>-| (loss proxy)", xlabel="step")
    pll = np.array([r.get("heldout_pll", math.nan) for r in rows])
    ok = ~np.isnan(pll)
    axes[1].plot(steps[ok], pll[ok], "o-", ms=3, label="held-out")
    tr = np.array([r.get("train_pll", math.nan) for r in rows])
    axes[1].plot(steps[~np.isnan(tr)], tr[~np.isnan(tr)], "s--", ms=3, label="train batch")
    axes[1].axhline(math.log(0.5), color="k", ls=":", label="untrained (log 1/2)")
    axes[1].set(title="pseudo-log-likelihood per pixel", xlabel="step")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def image_grid(images: np.ndarray, shape: tuple[int, int], path: pathlib.Path, title: str, n: int = 64) -> None:
    """A square grid of binary images `[N, pixels]`."""
    plt = _plt()
    images = np.asarray(images)[:n]
    side = math.ceil(math.sqrt(len(images)))
    canvas = np.full((side * (shape[0] + 1), side * (shape[1] + 1)), 0.5)
    for i, img in enumerate(images):
        r, c = divmod(i, side)
        canvas[r * (shape[0] + 1) : r * (shape[0] + 1) + shape[0], c * (shape[1] + 1) : c * (shape[1] + 1) + shape[1]] = img.reshape(shape)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(canvas, cmap="gray_r", interpolation="nearest", vmin=0, vmax=1)
    ax.set_title(title)
    ax.set_axis_off()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def autocorrelation(series: np.ndarray, max_lag: int) -> np.ndarray:
    """Normalised autocorrelation of `[chains, T]` series, averaged over chains, lags 0..max_lag."""
    x = series - series.mean(axis=1, keepdims=True)
    var = (x * x).mean(axis=1)
    out = []
    for lag in range(max_lag + 1):
        c = (x[:, : x.shape[1] - lag] * x[:, lag:]).mean(axis=1)
        out.append(np.mean(np.where(var > 0, c / np.where(var > 0, var, 1), 0.0)))
    return np.array(out)


def autocorrelation_plot(acf: np.ndarray, path: pathlib.Path, what: str) -> None:
    """The autocorrelation function of a chain observable, with its integrated time."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(np.arange(len(acf)), acf, "o-", ms=2)
    ax.axhline(0, color="k", lw=0.5)
    tau = 1 + 2 * np.sum(acf[1:][np.cumprod(acf[1:] > 0) > 0])
    ax.set(title=f"autocorrelation of {what} (tau_int ~ {tau:.1f} sweeps)", xlabel="lag (sweeps)", ylabel="ACF")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
