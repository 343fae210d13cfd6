"""Training data: binary images as bool arrays `[N, pixels]`, a fixed held-out split, and a
deterministic batch order (the batch of step t is a function of the seed and t only, so a resumed
run reads exactly the batches an uninterrupted run reads)."""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from ..npz_file import integer_array, read_npz
from .config import ConfigError, DataConfig


@dataclasses.dataclass(frozen=True)
class Dataset:
    train: np.ndarray  # bool [N_train, pixels]
    heldout: np.ndarray  # bool [N_heldout, pixels]
    shape: tuple[int, int]  # image rows, cols
    name: str


def binarise(x: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels above `threshold` times the largest value as True (bool images are kept)."""
    if x.dtype == bool:
        return x
    x = x.astype(np.float64)
    top = x.max() if x.size else 1.0
    return x > threshold * (top if top > 0 else 1.0)


def _load_npz(path: str) -> tuple[np.ndarray, tuple[int, int]]:
    p = pathlib.Path(path)
    arrays = read_npz(p, "data.path", "dataset")
    if "data" not in arrays:
        raise ConfigError(f"data.path: {p} has no array named 'data' (it has {sorted(arrays)})")
    x = arrays["data"]
    if not (x.dtype == bool or np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ConfigError(f"data.path: {p}: 'data' must hold numbers, got dtype {x.dtype}")
    shape = None
    if "shape" in arrays:
        shape = tuple(int(s) for s in integer_array(arrays["shape"], f"data.path: {p}", "'shape'").reshape(-1))
    if x.ndim == 3:
        shape = shape or x.shape[1:]
        x = x.reshape(len(x), -1)
    elif x.ndim == 2:
        if shape is None:
            side = int(round(np.sqrt(x.shape[1])))
            shape = (side, side) if side * side == x.shape[1] else (1, x.shape[1])
    else:
        raise ConfigError(f"data.path: {p}: 'data' must be [N, rows, cols] or [N, pixels], got shape {x.shape}")
    if len(shape) != 2 or shape[0] * shape[1] != x.shape[1]:
        raise ConfigError(f"data.path: {p}: 'shape' {shape} does not match {x.shape[1]} pixels")
    if len(x) < 2:
        raise ConfigError(f"data.path: {p} holds {len(x)} example(s); at least 2 are needed")
    return x, (int(shape[0]), int(shape[1]))


def load_dataset(config: DataConfig) -> Dataset:
    """Load, binarise and split the dataset of `config`.

    **Arguments:**

    - `config`: the `data` section.
    """
    if config.source == "digits":
        from sklearn.datasets import load_digits

        x, shape, name = load_digits().images.reshape(-1, 64), (8, 8), "sklearn digits 8x8"
    else:
        (x, shape), name = _load_npz(config.path), pathlib.Path(config.path).name
    if not np.all(np.isfinite(x)):
        raise ConfigError(f"data.path: {name} holds NaN or infinite values")
    x = binarise(x, config.threshold)
    order = np.random.default_rng(config.seed).permutation(len(x))
    n_held = max(1, int(round(config.holdout_fraction * len(x))))
    if n_held >= len(x):
        raise ConfigError(f"data.holdout_fraction {config.holdout_fraction} leaves no training examples of {len(x)}")
    return Dataset(x[order[n_held:]], x[order[:n_held]], shape, name)


def batch_at(data: np.ndarray, step: int, batch_size: int, seed: int) -> tuple[np.ndarray, int, int]:
    """The batch of training step `step` (epochs are fresh permutations of the training set).

    **Arguments:**

    - `data`: the training set.
    - `step`: the step number (0-based).
    - `batch_size`: examples per batch.
    - `seed`: the shuffling seed.

    **Returns:** `(batch, epoch, offset)`: the examples and where in the data order they start.
    """
    n = len(data)
    start = step * batch_size
    idx = []
    epoch, offset = divmod(start, n)
    e, o = epoch, offset
    while len(idx) < batch_size:
        perm = np.random.default_rng([seed, e]).permutation(n)
        take = perm[o : o + batch_size - len(idx)]
        idx.extend(take.tolist())
        e, o = e + 1, 0
    return data[np.asarray(idx)], epoch, offset
