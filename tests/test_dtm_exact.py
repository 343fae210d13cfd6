"""DTM steps against exact enumeration on a tiny step graph (3 x 3 grid, 2 pixels): the training
iteration's gradient is the exact conditional KL gradient in expectation, the penalty adds
lambda times the exact connected correlations, and the generation step samples the exact
conditional distribution of the outputs given x_t."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cluster.dtm import generate as gen
from cluster.dtm import step as step_lib
from cluster.dtm.config import config_from_dict
from cluster.dtm.graph import build_step_graph

from exact import assert_samples_match

SHAPE = (1, 2)  # two pixels: outputs on grid nodes 3 and 5 of a 3 x 3 grid
BETA = 0.9


def _config(**sections):
    raw = {"model": {"kind": "dtm", "grid_side": 3, "offsets": [[0, 1], [1, 2]], "beta": BETA},
           "optim": {"optimizer": "sgd", "learning_rate": 1.0, "ema": 0.0},
           "sampling": {"positive_warmup": 25, "positive_samples": 8, "positive_steps_per_sample": 2,
                        "negative_warmup": 25, "negative_samples": 8, "negative_steps_per_sample": 2}}
    for k, v in sections.items():
        raw.setdefault(k, {}).update(v)
    return config_from_dict(raw)


def _graph(config):
    return build_step_graph(SHAPE, config.model.grid_side, config.offsets(), config.model.placement, 0)


def _params(graph, seed=0):
    rng = np.random.default_rng(seed)
    return {"biases": jnp.asarray(rng.normal(0, 0.4, graph.n_grid), jnp.float32),
            "weights": jnp.asarray(rng.normal(0, 0.6, len(graph.grid_edges)), jnp.float32),
            "inputs": jnp.asarray([0.8, -0.5], jnp.float32)}


class Exact:
    """The conditional Boltzmann distribution of the grid given x_t, by enumeration."""

    def __init__(self, graph, params):
        self.states = np.array(list(itertools.product([-1.0, 1.0], repeat=graph.n_grid)))  # [2^9, 9]
        e = graph.grid_edges
        self.pairs = self.states[:, e[:, 0]] * self.states[:, e[:, 1]]
        p = {k: np.asarray(v, np.float64) for k, v in params.items()}
        self.base = self.states @ p["biases"] + self.pairs @ p["weights"]
        self.sites, self.inputs = graph.sites, p["inputs"]

    def weights(self, x_t, x_prev=None):
        """Boltzmann weights given the inputs (and, in the positive phase, the outputs)."""
        s_t = np.where(x_t, 1.0, -1.0)
        logw = BETA * (self.base + self.states[:, self.sites] @ (self.inputs * s_t))
        if x_prev is not None:
            match = np.all(self.states[:, self.sites] == np.where(x_prev, 1.0, -1.0), axis=1)
            logw = np.where(match, logw, -np.inf)
        w = np.exp(logw - logw.max())
        return w / w.sum()

    def moments(self, w, x_t):
        s_t = np.where(x_t, 1.0, -1.0)
        return w @ self.states, w @ self.pairs, w @ (self.states[:, self.sites] * s_t)


def test_iteration_gradient_is_the_exact_kl_gradient_in_expectation():
    config = _config()
    graph = _graph(config)
    params = _params(graph)
    exact = Exact(graph, params)
    iteration = step_lib.make_iteration(graph, config)
    batch = 32
    x0 = jnp.asarray(np.array([[True, False], [False, True], [True, True], [False, False]] * (batch // 4)))
    q_prev, p_step = jnp.float32(0.2), jnp.float32(0.3)
    zeros = jnp.zeros((batch, graph.n_grid), bool)
    chains = {"positive": zeros, "negative": zeros}
    opt_state = step_lib.make_optimizer(config).init(params)
    flat = lambda p: np.concatenate([np.asarray(p[k], np.float64) for k in ("biases", "weights", "inputs")])  # noqa: E731
    mc, ex = [], []
    for i in range(150):
        key = jax.random.key(i)
        new, _, _, chains, stats, x_t = iteration(params, params, opt_state, chains, jnp.float32(0.0), key, x0, q_prev, p_step)
        mc.append(flat(params) - flat(new))  # SGD with rate 1: the step is minus the gradient
        x_prev, x_t2 = step_lib.noisy_pair(jax.random.split(key, 3)[0], x0, q_prev, p_step)
        np.testing.assert_array_equal(np.asarray(x_t), np.asarray(x_t2))
        pos = neg = 0.0
        for a, b in zip(np.asarray(x_prev), np.asarray(x_t)):
            pos = pos + np.concatenate(exact.moments(exact.weights(b, a), b))
            neg = neg + np.concatenate(exact.moments(exact.weights(b), b))
        ex.append(-BETA * (pos - neg) / batch)
    mc, ex = np.array(mc), np.array(ex)
    diff = mc - ex
    se = diff.std(0, ddof=1) / np.sqrt(len(diff))
    assert np.all(se > 0), "the estimate has no noise: the test could not fail"
    z = diff.mean(0) / se
    assert np.max(np.abs(z)) < 4.5, (np.abs(z).max(), np.argmax(np.abs(z)))
    # and the gradient is not trivially small: the exact one is far from zero
    assert np.abs(ex.mean(0)).max() > 10 * se.max()


def test_penalty_adds_lambda_times_the_connected_correlation():
    config = _config(sampling={"negative_samples": 64, "negative_steps_per_sample": 6})
    graph = _graph(config)
    params = _params(graph, seed=1)
    exact = Exact(graph, params)
    iteration = step_lib.make_iteration(graph, config)
    x0 = jnp.asarray(np.array([[True, False], [False, True]] * 8))
    zeros = jnp.zeros((16, graph.n_grid), bool)
    chains = {"positive": zeros, "negative": zeros}
    opt_state = step_lib.make_optimizer(config).init(params)
    got, want = [], []
    E = len(graph.grid_edges)
    u, v = graph.grid_edges[:, 0], graph.grid_edges[:, 1]
    for i in range(30):
        key = jax.random.key(100 + i)
        args = (opt_state, chains, None, key, x0, jnp.float32(0.1), jnp.float32(0.2))
        a = iteration(params, params, *args[:2], jnp.float32(0.0), *args[3:])[0]
        b = iteration(params, params, *args[:2], jnp.float32(2.0), *args[3:])
        chains = b[3]
        got.append((np.asarray(a["weights"]) - np.asarray(b[0]["weights"])) / 2.0)  # = C (minus the minus of SGD)
        _, x_t = step_lib.noisy_pair(jax.random.split(key, 3)[0], x0, jnp.float32(0.1), jnp.float32(0.2))
        c = 0.0
        for xt in np.asarray(x_t):
            w = exact.weights(xt)
            mean = w @ exact.states
            c = c + w @ exact.pairs - mean[u] * mean[v]
        want.append(c / len(x_t))
    got, want = np.mean(got, 0), np.mean(want, 0)
    assert got.shape == (E,)
    # samples 6 sweeps apart are nearly independent, so the corrected estimate is nearly unbiased
    np.testing.assert_allclose(got, want, atol=0.03)
    assert np.abs(want).max() > 0.1


@pytest.mark.parametrize("stages", [1, 3])
def test_generation_step_samples_the_exact_conditional(stages):
    config = _config(generation={"sweeps": 30, "anneal_stages": stages, "beta_start": 0.5 if stages > 1 else 1.0})
    graph = _graph(config)
    params = _params(graph, seed=2)
    exact = Exact(graph, params)
    denoise = gen.make_denoiser(graph, config)
    x_t = np.array([True, False])
    n = 4000
    out = np.asarray(denoise(params, jax.random.key(5), jnp.asarray(np.tile(x_t, (n, 1)))))
    w = exact.weights(x_t)
    outputs = (exact.states[:, graph.sites] > 0).astype(int) @ np.array([2, 1])
    probs = np.bincount(outputs, weights=w, minlength=4)
    assert probs.min() > 0.02  # every cell is visited: the test has power
    assert_samples_match(out.astype(int), [2, 2], probs, label=f"generation, {stages} stage(s)")
