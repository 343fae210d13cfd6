"""DTM datasets: binary images `[N, pixels]` with labels where known, a fixed held-out split.

Sources: scikit-learn's 8x8 digits (`digits`) and the same upsampled to 16x16 (`digits16`,
bilinear, then binarised), both shipped with scikit-learn; MNIST-format IDX files (`idx`,
optionally gzipped, e.g. MNIST or Fashion-MNIST brought by the user) and npz arrays (`npz`).
Nothing is downloaded."""

from __future__ import annotations

import dataclasses
import gzip
import pathlib

import numpy as np

from ..config_file import ConfigError
from ..train.data import binarise
from .config import DataConfig

# IDX element types: the third byte of the magic number
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclasses.dataclass(frozen=True)
class Dataset:
    train: np.ndarray  # bool [N_train, pixels]
    heldout: np.ndarray  # bool [N_heldout, pixels]
    train_labels: np.ndarray | None  # int [N_train], or None
    heldout_labels: np.ndarray | None
    shape: tuple[int, int]  # image rows, cols
    name: str


def read_idx(path: str | pathlib.Path, key: str = "data.path") -> np.ndarray:
    """The array of an IDX file (MNIST's format), gzipped or not.

    **Arguments:**

    - `path`: the file (`.idx`, `-ubyte`, `.gz`).
    - `key`: the config key named in errors.
    """
    p = pathlib.Path(path)
    if not p.is_file():
        raise ConfigError(f"{key}: IDX file not found: {p}")
    try:
        raw = p.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise ConfigError(f"{key}: {p} is not a readable (gzipped) IDX file ({err})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or raw[3] == 0:
        raise ConfigError(f"{key}: {p} is not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ConfigError(f"{key}: {p} is truncated (its header lists {ndim} dimensions)")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    need = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != need:
        raise ConfigError(f"{key}: {p} holds {len(raw)} bytes, its header {dims} of {dtype.name} needs {need}")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims)


def _load_npz(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    p = pathlib.Path(path)
    if not p.is_file():
        raise ConfigError(f"data.path: dataset file not found: {p}")
    try:
        with np.load(p) as f:
            if "data" not in f:
                raise ConfigError(f"data.path: {p} has no array named 'data' (it has {sorted(f.files)})")
            return np.asarray(f["data"]), (np.asarray(f["labels"]) if "labels" in f else None)
    except (OSError, ValueError) as err:
        raise ConfigError(f"data.path: {p} is not a readable npz file ({err})") from None


def _digits(size: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float64)
    if size != 8:
        from scipy.ndimage import zoom

        images = zoom(images, (1, size / 8, size / 8), order=1)
    return images, digits.target.astype(np.int64)


def load_images(config: DataConfig) -> tuple[np.ndarray, np.ndarray | None, str]:
    """The raw images `[N, rows, cols]`, their labels (or None) and the dataset's name."""
    if config.source in ("digits", "digits16"):
        size = 8 if config.source == "digits" else 16
        x, y = _digits(size)
        return x, y, f"sklearn digits {size}x{size}"
    if config.source == "idx":
        x = read_idx(config.path)
        y = read_idx(config.labels_path, "data.labels_path") if config.labels_path else None
        name = pathlib.Path(config.path).name
    else:
        x, y = _load_npz(config.path)
        name = pathlib.Path(config.path).name
    if x.ndim != 3 or x.shape[1] < 2 or x.shape[2] < 2:
        raise ConfigError(f"data.path: {name}: images must be [N, rows, cols], got shape {x.shape}")
    if x.dtype.kind not in "biuf":
        raise ConfigError(f"data.path: {name}: images must be numbers, got dtype {x.dtype}")
    if y is not None and (y.shape != (len(x),) or y.dtype.kind not in "iu"):
        raise ConfigError(f"data: the labels of {name} must be integers [N] = [{len(x)}], got {y.dtype} {y.shape}")
    return x, (None if y is None else y.astype(np.int64)), name


def load_dataset(config: DataConfig) -> Dataset:
    """Load, binarise and split the dataset of `config` (the split is a function of `data.seed`).

    **Arguments:**

    - `config`: the `data` section.
    """
    x, y, name = load_images(config)
    if not np.all(np.isfinite(x)):
        raise ConfigError(f"data.path: {name} holds NaN or infinite values")
    shape = (int(x.shape[1]), int(x.shape[2]))
    x = binarise(x.reshape(len(x), -1), config.threshold)
    order = np.random.default_rng(config.seed).permutation(len(x))
    if config.limit:
        order = order[: config.limit]
    n_held = max(1, int(round(config.holdout_fraction * len(order))))
    if len(order) < 4 or n_held >= len(order) - 1:
        raise ConfigError(f"data: {len(order)} examples with holdout_fraction {config.holdout_fraction} leave too few to "
                          "train on (at least 2 training and 1 held-out example)")
    train, held = order[n_held:], order[:n_held]
    labels = (None, None) if y is None else (y[train], y[held])
    return Dataset(x[train], x[held], labels[0], labels[1], shape, name)
