"""The per-node counter-based generator: uniformity, resolution, independence, determinism."""

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from distthrml import node_rng

N = 1 << 18


def _u(key, ids):
    return np.asarray(node_rng.uniform(key, jnp.asarray(ids, jnp.int32)), dtype=np.float64)


def test_uniform_is_uniform_with_24_bit_resolution():
    u = _u(jax.random.key(0), np.arange(N))
    assert u.min() >= 0.0 and u.max() < 1.0
    assert np.all(np.round(u * 2**24) == u * 2**24)  # multiples of 2^-24: 24-bit resolution
    assert len(np.unique(u)) > 0.99 * N
    # KS against U[0,1): a broken generator (e.g. fewer bits, a bias) fails by orders of magnitude
    assert scipy.stats.kstest(u, "uniform").pvalue > 1e-4
    # chi-square on 256 bins
    counts = np.bincount((u * 256).astype(int), minlength=256)
    assert scipy.stats.chisquare(counts).pvalue > 1e-4


def test_independence_across_nodes_steps_and_words():
    key = jax.random.key(1)
    ids = np.arange(N)
    a = _u(node_rng.step_key(key, 0), ids)
    b = _u(node_rng.step_key(key, 1), ids)
    words = np.asarray(node_rng.bits(key, jnp.asarray(ids, jnp.int32), 3), dtype=np.float64) / 2**32
    z = 5 / np.sqrt(N)  # 5 standard errors of a correlation coefficient
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < z  # neighbouring nodes
    assert abs(np.corrcoef(a, b)[0, 1]) < z  # consecutive sweeps
    assert abs(np.corrcoef(words[:, 0], words[:, 1])[0, 1]) < z  # words of one node
    assert abs(np.corrcoef(words[:, 1], words[:, 2])[0, 1]) < z


def test_same_node_same_numbers_whatever_the_grouping():
    key = jax.random.key(7)
    ids = np.array([5, 17, 3, 1000, 2])
    whole = _u(key, ids)
    parts = np.concatenate([_u(key, ids[:2]), _u(key, ids[2:])])
    np.testing.assert_array_equal(whole, parts)
    np.testing.assert_array_equal(_u(key, ids[::-1]), whole[::-1])


def test_normal_moments():
    z = np.asarray(node_rng.normal(jax.random.key(3), jnp.arange(N, dtype=jnp.int32)), np.float64)
    assert abs(z.mean()) < 5 / np.sqrt(N)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / N)
    assert scipy.stats.kstest(z, "norm").pvalue > 1e-4
