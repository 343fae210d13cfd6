"""Per-node random numbers: a cheap counter-based generator keyed by (key, node index, word).

**The generator.** An update's key (the chain key folded with the sweep number) gives two
uint32 key words `k0, k1` (one threefry call per chain and sweep, not per node). Word `w` of the
node with program index `i` is

    x = mix(i ^ k0)
    word(i, w) = mix((x + w * 0x9E3779B9) ^ k1)

where `mix` is Chris Wellons' `lowbias32` integer hash (xor-shift 16, multiply 0x21F0AAAD,
xor-shift 15, multiply 0x735A2D97, xor-shift 15), a bijection of uint32 with near-ideal
avalanche. The first round is a keyed permutation of node indices (distinct nodes never share
`x`), the second mixes in the word counter and the second key word. Two rounds cost about 16
integer operations per word, which vectorise; a per-element threefry2x32 costs about 100.
`tests/test_node_rng.py` checks uniformity (KS, chi-square, every bit's frequency) and
independence across adjacent node indices, words, sweeps and chains (correlations and 2D
chi-square on pairs).

**The contract.** Every word depends only on (chain key, sweep number, program index, word
number): never on the node's position in a block, shard or padded table, nor on the chain's
position in a batch. Two runs that update the same node in the same sweep with the same key draw
the same numbers, however the nodes are split across blocks, shards or hosts, and whether the
chains are `jax.vmap`ped or laid out chains-innermost by the batched kernel.

**Uniforms** take the top 24 bits of a word: `(word >> 8) * 2^-24`, exactly representable in
float32, so `u < p` has probability `p` rounded up to a multiple of 2^-24.

Custom samplers opt in by implementing `sample_per_node` with these functions.
"""

from __future__ import annotations

import jax
import numpy as np
from jax import numpy as jnp
from jaxtyping import Array, Float, Int, Key, UInt32

_TWO_POW_MINUS_24 = np.float32(2.0**-24)
_GOLDEN = np.uint32(0x9E3779B9)
_M1 = np.uint32(0x21F0AAAD)
_M2 = np.uint32(0x735A2D97)


def key_words(key: Key[Array, ""]) -> UInt32[Array, "2"]:
    """Two uint32 words derived from a JAX key of any implementation (typed or raw)."""
    return jax.random.bits(key, (2,), jnp.uint32)


def step_key(key: Key[Array, ""], step: Int[Array, ""]) -> Key[Array, ""]:
    """The key of sweep `step` of the chain whose key is `key`."""
    return jax.random.fold_in(key, step)


def mix(x: UInt32[Array, "..."]) -> UInt32[Array, "..."]:
    """Wellons' lowbias32 hash: a uint32 bijection with low avalanche bias."""
    x = x ^ (x >> 16)
    x = x * _M1
    x = x ^ (x >> 15)
    x = x * _M2
    return x ^ (x >> 15)


def hash_words(
    k0: UInt32[Array, "..."], k1: UInt32[Array, "..."], node_index: Int[Array, "..."], word: Int[Array, "..."] | int = 0
) -> UInt32[Array, "..."]:
    """The generator's word for (key words, node index, word number), broadcasting all four.

    The batched kernel calls it with `k0, k1` of shape `[1, chains]` and `node_index` of shape
    `[n, 1]`; `bits` with scalars and `[n, 1]`: the same element-wise arithmetic either way.

    **Arguments:**

    - `k0`, `k1`: the update's key words (`key_words`).
    - `node_index`: program indices of the nodes.
    - `word`: word numbers within one node's update.
    """
    x = mix(node_index.astype(jnp.uint32) ^ k0)
    if not (isinstance(word, int) and word == 0):
        x = x + jnp.asarray(word).astype(jnp.uint32) * _GOLDEN
    return mix(x ^ k1)


def words_to_uniform(words: UInt32[Array, "..."]) -> Float[Array, "..."]:
    """float32 uniforms on [0, 1) with 24-bit resolution from the top 24 bits of each word."""
    return (words >> 8).astype(jnp.float32) * _TWO_POW_MINUS_24


def word(key: Key[Array, ""], node_index: Int[Array, " n"]) -> UInt32[Array, " n"]:
    """Word 0 of every node: the word behind `uniform(key, node_index)`.

    **Arguments:**

    - `key`: the key of this update.
    - `node_index`: program indices of the nodes, shape `[n]`.
    """
    k = key_words(key)
    return hash_words(k[0], k[1], node_index)


def bits(key: Key[Array, ""], node_index: Int[Array, " n"], n_words: int) -> UInt32[Array, "n words"]:
    """`n_words` independent uint32 words per node.

    **Arguments:**

    - `key`: the key of this update (all nodes of one sweep may share it).
    - `node_index`: program indices of the nodes, shape `[n]`.
    - `n_words`: words per node.
    """
    k = key_words(key)
    word = jnp.arange(n_words, dtype=jnp.uint32)[None, :]
    return hash_words(k[0], k[1], node_index[:, None], word)


def uniform(key: Key[Array, ""], node_index: Int[Array, " n"], shape: tuple[int, ...] = ()) -> Float[Array, "n ..."]:
    """Uniform float32 numbers in [0, 1) with 24-bit resolution, `shape` per node.

    **Arguments:**

    - `key`: the key of this update.
    - `node_index`: program indices of the nodes, shape `[n]`.
    - `shape`: per-node shape.
    """
    size = int(np.prod(shape, dtype=np.int64))
    if shape == ():
        return words_to_uniform(word(key, node_index))
    return words_to_uniform(bits(key, node_index, size)).reshape(node_index.shape[0], *shape)


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
