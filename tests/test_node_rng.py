"""The per-node counter-based generator: uniformity, resolution, independence, determinism.

Thresholds are at p > 1e-4 (or 5 standard errors): a sound generator fails one of these tests
about once in ten thousand runs, a broken one (fewer bits, a bias, correlated neighbours) by
orders of magnitude.
"""

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from distthrml import node_rng

N = 1 << 18
Z = 5 / np.sqrt(N)  # 5 standard errors of a correlation coefficient


def _u(key, ids):
    return np.asarray(node_rng.uniform(key, jnp.asarray(ids, jnp.int32)), dtype=np.float64)


def _pair_chi2(a, b, bins=32):
    """p-value of independence of two uniform samples: chi-square on a bins x bins grid."""
    counts = np.histogram2d(a, b, bins=bins, range=[[0, 1], [0, 1]])[0].ravel()
    return scipy.stats.chisquare(counts).pvalue


def test_uniform_is_uniform_with_24_bit_resolution():
    u = _u(jax.random.key(0), np.arange(N))
    assert u.min() >= 0.0 and u.max() < 1.0
    assert np.all(np.round(u * 2**24) == u * 2**24)  # multiples of 2^-24: 24-bit resolution
    assert len(np.unique(u)) > 0.99 * N
    assert scipy.stats.kstest(u, "uniform").pvalue > 1e-4
    counts = np.bincount((u * 256).astype(int), minlength=256)
    assert scipy.stats.chisquare(counts).pvalue > 1e-4
    # the low bits a 24-bit uniform uses are as good as the high ones
    low = (u * 2**24).astype(np.int64) & 0xFF
    assert scipy.stats.chisquare(np.bincount(low, minlength=256)).pvalue > 1e-4


def test_every_bit_is_fair():
    words = np.asarray(node_rng.bits(jax.random.key(11), jnp.arange(N, dtype=jnp.int32), 2), dtype=np.uint64)
    ones = np.array([((words >> b) & 1).sum() for b in range(32)], dtype=np.float64) / words.size
    assert np.all(np.abs(ones - 0.5) < 5 * 0.5 / np.sqrt(words.size))


def test_independence_across_nodes_steps_words_and_chains():
    key = jax.random.key(1)
    ids = np.arange(N)
    a = _u(node_rng.step_key(key, 0), ids)
    b = _u(node_rng.step_key(key, 1), ids)
    other_chain = _u(jax.random.key(2), ids)
    words = np.asarray(node_rng.bits(key, jnp.asarray(ids, jnp.int32), 3), dtype=np.float64) / 2**32
    pairs = {
        "neighbouring nodes": (a[:-1], a[1:]),
        "nodes 2^k apart": (a[:-1024], a[1024:]),
        "consecutive sweeps": (a, b),
        "two chains": (a, other_chain),
        "words 0 and 1": (words[:, 0], words[:, 1]),
        "words 1 and 2": (words[:, 1], words[:, 2]),
    }
    for name, (x, y) in pairs.items():
        assert abs(np.corrcoef(x, y)[0, 1]) < Z, name
        assert _pair_chi2(x, y) > 1e-4, name


def test_sequential_keys_are_independent():
    # chains are often keyed by split(key, n): adjacent chains see unrelated words at every node
    keys = jax.random.split(jax.random.key(3), 64)
    u = np.stack([_u(k, np.arange(N // 64)) for k in keys])
    assert abs(np.corrcoef(u[:-1].ravel(), u[1:].ravel())[0, 1]) < Z
    assert scipy.stats.kstest(u.ravel(), "uniform").pvalue > 1e-4


def test_same_node_same_numbers_whatever_the_grouping():
    key = jax.random.key(7)
    ids = np.array([5, 17, 3, 1000, 2])
    whole = _u(key, ids)
    parts = np.concatenate([_u(key, ids[:2]), _u(key, ids[2:])])
    np.testing.assert_array_equal(whole, parts)
    np.testing.assert_array_equal(_u(key, ids[::-1]), whole[::-1])
    # word 0 of `bits` is the word `uniform` uses
    np.testing.assert_array_equal(
        np.asarray(node_rng.bits(key, jnp.asarray(ids, jnp.int32), 2))[:, 0] >> 8, (whole * 2**24).astype(np.uint32)
    )


def test_chains_layout_draws_the_same_words():
    # the batched kernel broadcasts [1, chains] key words against [n, 1] node indices
    keys = jax.random.split(jax.random.key(9), 8)
    ids = jnp.arange(1000, dtype=jnp.int32)
    words = jax.vmap(node_rng.key_words, out_axes=1)(keys)
    batched = node_rng.hash_words(words[0:1], words[1:2], ids[:, None])
    per_chain = jnp.stack([node_rng.bits(k, ids, 1)[:, 0] for k in keys], axis=1)
    np.testing.assert_array_equal(np.asarray(batched), np.asarray(per_chain))


def test_normal_moments():
    z = np.asarray(node_rng.normal(jax.random.key(3), jnp.arange(N, dtype=jnp.int32)), np.float64)
    assert abs(z.mean()) < 5 / np.sqrt(N)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / N)
    assert scipy.stats.kstest(z, "norm").pvalue > 1e-4
