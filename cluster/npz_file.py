"""Reading the npz files a config names (a training graph, a dataset): any damage ends in one
`ConfigError` naming the config key and the file, never a zip, pickle or header traceback."""

from __future__ import annotations

import pathlib

import numpy as np

from .config_file import ConfigError


def read_npz(path: str | pathlib.Path, key: str, what: str) -> dict[str, np.ndarray]:
    """Every array of an npz archive, read eagerly.

    **Arguments:**

    - `path`: the file.
    - `key`: the config key that names it (for the messages).
    - `what`: what the file holds (e.g. "dataset"), for the messages.

    **Returns:** `{name: array}`.
    """
    p = pathlib.Path(path)
    if not p.is_file():
        raise ConfigError(f"{key}: {what} file not found: {p}")
    try:
        loaded = np.load(p, allow_pickle=False)
    except Exception as err:  # numpy raises zip, header, pickle and value errors for damaged files
        raise ConfigError(f"{key}: {p} is not a readable npz file ({type(err).__name__}: {err})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ConfigError(f"{key}: {p} is a single .npy array, not an npz archive of named arrays")
    try:
        with loaded:
            return {name: np.asarray(loaded[name]) for name in loaded.files}
    except Exception as err:
        raise ConfigError(f"{key}: {p} is damaged ({type(err).__name__}: {err})") from None


def integer_array(a: np.ndarray, key: str, what: str) -> np.ndarray:
    """`a` as int64, refusing other dtypes: a float id would be truncated silently.

    **Arguments:**

    - `a`: the array read from a file.
    - `key`: the config key and file, for the message.
    - `what`: what `a` holds (e.g. "'edges'").
    """
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        raise ConfigError(f"{key}: {what} must hold integers, got dtype {a.dtype}")
    return a.astype(np.int64)
