"""Host values in a multi-process (`jax.distributed`) run: read a global array on every process,
and hand the primary process's values (a resume decision) to the others bit for bit."""

from __future__ import annotations

import json

import jax
import numpy as np


def to_host(x) -> np.ndarray:
    """A numpy copy of `x`, also when `x` is a global array of a multi-process run (replicated
    results are read from a local shard).

    **Arguments:**

    - `x`: a numpy or JAX array.
    """
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def _as_bytes(a: np.ndarray) -> np.ndarray:
    # the broadcast sums the source's values with the others' zeros: exact on bytes, while a float
    # sum would turn -0.0 into +0.0 and 64-bit values would be narrowed without jax_enable_x64
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


def _broadcast_bytes(data: list[np.ndarray]) -> list[np.ndarray]:
    from jax.experimental import multihost_utils

    sent = multihost_utils.broadcast_one_to_all([_as_bytes(a) for a in data], is_source=jax.process_index() == 0)
    return [np.asarray(b) for b in sent]


def broadcast_tree(tree: dict | None) -> dict | None:
    """Process 0's `tree` on every process, bit for bit: nested dicts (string keys) of numpy
    arrays, or None. Every process must call it; what the others pass is ignored, so they need
    not know the shapes (a resumed run's checkpoint is read by process 0 alone).

    **Arguments:**

    - `tree`: on process 0, the value to send.
    """
    if jax.process_count() == 1:
        return tree
    paths, leaves = [], []
    if jax.process_index() == 0 and tree is not None:
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            paths.append([k.key for k in path])
            leaves.append(np.asarray(leaf))
    manifest = json.dumps(None if tree is None else [[p, a.dtype.str, a.shape] for p, a in zip(paths, leaves)])
    size = _broadcast_bytes([np.array([len(manifest.encode())], np.int64)])[0].view(np.int64)[0]
    text = np.frombuffer(manifest.encode(), np.uint8) if jax.process_index() == 0 else np.zeros(size, np.uint8)
    manifest = json.loads(_broadcast_bytes([text])[0].tobytes().decode())
    if manifest is None:
        return None
    if jax.process_index() != 0:
        leaves = [np.zeros(shape, np.dtype(dtype)) for _, dtype, shape in manifest]
    received = _broadcast_bytes(leaves)
    out: dict = {}
    for (path, dtype, shape), data in zip(manifest, received):
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = data.view(np.dtype(dtype)).reshape(shape)
    return out
