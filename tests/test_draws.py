"""The built-in draws (`distthrml.draws`): exact inverse CDFs at 24-bit resolution, and the same
bits in every layout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from distthrml.draws import bernoulli_draw, categorical_draw, categorical_draw_split

ALL_U = jnp.arange(1 << 24, dtype=jnp.float32) * jnp.float32(2.0**-24)  # every 24-bit uniform


@pytest.mark.parametrize(
    "theta",
    [[0.0, 0.0, 0.0, 0.0], [1.3, -0.2, 0.7, -2.5], [-30.0, 0.0, 4.0], [0.1, 0.2], [2.0, -1.0, 0.5, 0.0, 3.0, -4.0, 1.0]],
)
def test_categorical_frequencies_over_every_uniform_are_the_softmax(theta):
    """Over all 2^24 uniforms, category k comes up for a fraction p_k of them, to the rounding
    of the running sums (a few 2^-24): the draw is the inverse CDF, not an approximation of it.
    A draw that skipped a category, shifted a boundary by one category or normalised wrongly
    misses by orders of magnitude more."""
    k = len(theta)
    th = [jnp.full(ALL_U.shape, t, jnp.float32) for t in theta]
    counts = np.bincount(np.asarray(categorical_draw_split(ALL_U, th, jnp.int32)), minlength=k)
    p = np.exp(np.asarray(theta, np.float64) - max(theta))
    p /= p.sum()
    np.testing.assert_allclose(counts / 2.0**24, p, rtol=0, atol=k * 2.0**-22)


@pytest.mark.parametrize("gamma", [0.0, 0.3, -1.7, 6.0])
def test_bernoulli_frequency_over_every_uniform_is_the_sigmoid(gamma):
    ones = int(np.asarray(bernoulli_draw(ALL_U, jnp.full(ALL_U.shape, gamma, jnp.float32))).sum())
    assert abs(ones / 2.0**24 - 1.0 / (1.0 + np.exp(-2.0 * gamma))) <= 2.0**-23


@pytest.mark.parametrize("k", [2, 3, 4, 5, 9])
def test_categorical_same_bits_in_every_layout(k):
    """One chain `[n, K]`, chains innermost `[n, chains]` (K separate arrays), odd sizes and a
    transposed copy: the same categories for the same (u, theta), also where logits nearly tie."""
    rng = np.random.default_rng(k)
    n, chains = 257, 5
    theta = rng.normal(size=(n, chains, k)).astype(np.float32) * np.float32(3.0)
    theta[:, :, -1] = theta[:, :, 0] + np.float32(1e-6)  # near ties between categories
    u = rng.integers(0, 1 << 24, size=(n, chains)).astype(np.float32) * np.float32(2.0**-24)
    draw = jax.jit(lambda u, t: categorical_draw(u, t, jnp.uint8))
    whole = np.asarray(draw(u, theta))
    per_chain = np.stack([np.asarray(draw(u[:, c], theta[:, c])) for c in range(chains)], axis=1)
    outer = jnp.asarray(np.ascontiguousarray(np.moveaxis(theta, -1, 0)))
    split = np.asarray(jax.jit(lambda u, t: categorical_draw_split(u, list(t), jnp.uint8))(u, outer))
    flat = np.asarray(draw(u.reshape(-1), theta.reshape(-1, k))).reshape(n, chains)
    for other in (per_chain, split, flat):
        np.testing.assert_array_equal(whole, other)
    assert whole.max() == k - 1 and whole.min() == 0

