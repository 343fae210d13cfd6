"""Host values in a multi-process (`jax.distributed`) run: read a global array on every process,
and hand the primary process's resume decision to the others bit for bit."""

from __future__ import annotations

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


def broadcast_from_primary(restored: tuple[dict, int] | None, target: dict) -> tuple[dict, int, bool]:
    """The state and step every process resumes from: process 0's `restored`, bit for bit.

    **Arguments:**

    - `restored`: on process 0, `(state, step)` or None (start from scratch); ignored elsewhere.
    - `target`: the fresh state (same structure, shapes and dtypes on every process).

    **Returns:** `(state, step, resuming)`; `state` is `target` when not resuming.
    """
    tree, step = restored if restored is not None else (target, 0)
    if jax.process_count() == 1:
        return tree, step, restored is not None
    from jax.experimental import multihost_utils

    leaves, treedef = jax.tree.flatten(jax.tree.map(np.asarray, tree))
    header = np.array([step, restored is not None], np.int64)
    sent = multihost_utils.broadcast_one_to_all([_as_bytes(header)] + [_as_bytes(a) for a in leaves],
                                                is_source=jax.process_index() == 0)
    header = np.asarray(sent[0]).view(np.int64)
    if not header[1]:
        return target, 0, False
    leaves = [np.asarray(b).view(a.dtype).reshape(a.shape) for a, b in zip(leaves, sent[1:])]
    return jax.tree.unflatten(treedef, leaves), int(header[0]), True
