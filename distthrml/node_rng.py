"""Per-node random numbers: a counter-based generator keyed by (key, node index).

Every random word a built-in sampler uses is `threefry2x32(k, (node, word))`, where `k` is
derived from the chain key and the sweep number, `node` is the node's index in the program
(never its position inside a shard or a padded block) and `word` counts the words one node needs
within one update. Two runs that update the same node in the same sweep with the same key
therefore draw the same numbers, however the nodes are split across blocks, shards or hosts.

Custom samplers opt in by implementing `sample_per_node` with these functions.
"""

from __future__ import annotations

import jax
import numpy as np
from jax import numpy as jnp
from jax.extend.random import threefry_2x32
from jaxtyping import Array, Float, Int, Key, UInt32

_TWO_POW_MINUS_24 = np.float32(2.0**-24)


def key_words(key: Key[Array, ""]) -> UInt32[Array, "2"]:
    """Two uint32 words derived from a JAX key of any implementation (typed or raw)."""
    return jax.random.bits(key, (2,), jnp.uint32)


def step_key(key: Key[Array, ""], step: Int[Array, ""]) -> Key[Array, ""]:
    """The key of sweep `step` of the chain whose key is `key`."""
    return jax.random.fold_in(key, step)


def bits(key: Key[Array, ""], node_index: Int[Array, " n"], n_words: int) -> UInt32[Array, "n words"]:
    """`n_words` independent uint32 words per node.

    **Arguments:**

    - `key`: the key of this update (all nodes of one sweep may share it).
    - `node_index`: program indices of the nodes, shape `[n]`.
    - `n_words`: words per node.
    """
    k = key_words(key)
    ids = node_index.astype(jnp.uint32)
    n = ids.shape[0]
    pairs = []
    for j in range((n_words + 1) // 2):
        counter = jnp.concatenate([ids, jnp.full((n,), j, jnp.uint32)])
        out = threefry_2x32((k[0], k[1]), counter)
        pairs.append(jnp.stack([out[:n], out[n:]], axis=-1))
    if not pairs:
        return jnp.zeros((n, 0), jnp.uint32)
    return jnp.concatenate(pairs, axis=-1)[:, :n_words]


def uniform(key: Key[Array, ""], node_index: Int[Array, " n"], shape: tuple[int, ...] = ()) -> Float[Array, "n ..."]:
    """Uniform float32 numbers in [0, 1) with 24-bit resolution, `shape` per node.

    **Arguments:**

    - `key`: the key of this update.
    - `node_index`: program indices of the nodes, shape `[n]`.
    - `shape`: per-node shape.
    """
    size = int(np.prod(shape, dtype=np.int64))
    words = bits(key, node_index, size)
    u = (words >> 8).astype(jnp.float32) * _TWO_POW_MINUS_24
    return u.reshape(node_index.shape[0], *shape)


def normal(key: Key[Array, ""], node_index: Int[Array, " n"], shape: tuple[int, ...] = ()) -> Float[Array, "n ..."]:
    """Standard normal float32 numbers, `shape` per node (Box-Muller on per-node uniforms).

    **Arguments:**

    - `key`: the key of this update.
    - `node_index`: program indices of the nodes, shape `[n]`.
    - `shape`: per-node shape.
    """
    size = int(np.prod(shape, dtype=np.int64))
    words = bits(key, node_index, 2 * size)
    u = ((words >> 8).astype(jnp.float32) + 0.5) * _TWO_POW_MINUS_24
    u1, u2 = u[:, :size], u[:, size:]
    z = jnp.sqrt(-2.0 * jnp.log(u1)) * jnp.cos(jnp.float32(2 * np.pi) * u2)
    return z.reshape(node_index.shape[0], *shape)
