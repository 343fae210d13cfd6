"""One training iteration of one diffusion step, jitted.

x_{t-1} and x_t are drawn from the forward process around a batch of data x_0; the positive
phase samples the latents with x_{t-1} (outputs) and x_t (inputs) clamped, the negative phase
samples outputs and latents with x_t clamped; the KL gradient is
-beta (<s s>_+ - <s s>_-) per coupling (and per bias), averaged over the batch. Both phases
keep persistent chains (one per batch slot); the negative chains' outputs restart from x_t,
where generation starts too.

The mixing penalty adds lambda * C_ij to each grid coupling's gradient, where C_ij is the
connected correlation <s_i s_j> - <s_i><s_j> of the coupled pair under the model (the negative
phase, per chain, averaged over chains): the diagonal approximation of the gradient of
(lambda / 2) * sum C_ij^2 up to a positive factor per coupling, it pulls every coupling towards
the value at which its pair is uncorrelated, so the chain does not freeze.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import distthrml as dt
from distthrml.chains import map_chains

from . import model as m
from .config import DTMConfig
from .graph import StepGraph
from .observe import MomentsAndLastState


def schedules(config: DTMConfig) -> tuple[dt.SamplingSchedule, dt.SamplingSchedule]:
    """The (positive, negative) phase schedules of the `sampling` section."""
    s = config.sampling
    return (dt.SamplingSchedule(s.positive_warmup, s.positive_samples, s.positive_steps_per_sample),
            dt.SamplingSchedule(s.negative_warmup, s.negative_samples, s.negative_steps_per_sample))


def make_optimizer(config: DTMConfig) -> optax.GradientTransformation:
    """The optax optimizer of the `optim` section (one per diffusion step)."""
    if config.optim.optimizer == "adam":
        return optax.adam(config.optim.learning_rate)
    return optax.sgd(config.optim.learning_rate)


def noisy_pair(key: jax.Array, x0: jax.Array, q_prev, p_step) -> tuple[jax.Array, jax.Array]:
    """(x_{t-1}, x_t) from data `x0` `[B, P]` (bool): x_{t-1} differs from x_0 at each pixel with
    probability `q_prev`, x_t from x_{t-1} with probability `p_step`."""
    k1, k2 = jax.random.split(key)
    x_prev = jnp.logical_xor(x0, jax.random.bernoulli(k1, q_prev, x0.shape))
    return x_prev, jnp.logical_xor(x_prev, jax.random.bernoulli(k2, p_step, x0.shape))


def _run(program, schedule, observer, keys, init, clamp):
    carry = observer.init()
    run = lambda k, i, c: dt.sample_with_observation(k, program, schedule, i, c, carry, observer)[0]  # noqa: E731
    return map_chains(run, program, keys, init, clamp)


def make_iteration(graph: StepGraph, config: DTMConfig, template=None) -> Callable:
    """The jitted iteration
    `(params, ema, opt_state, chains, lam, key, x0, q_prev, p_step) -> (params, ema, opt_state, chains, stats, x_t)`;
    `ema` is the moving average of the parameters (`optim.ema`) that generation uses.

    **Arguments:**

    - `graph`: the step graph (the same for every diffusion step).
    - `config`: the validated config.
    - `template`: a sharded training spec whose layouts to reuse (`sharding.parts > 1`), or None.
    """
    observer = MomentsAndLastState(graph)
    positive, negative = schedules(config)
    optimizer = make_optimizer(config)
    beta = config.model.beta
    n_grid_edges = len(graph.grid_edges)
    u, v = graph.grid_edges[:, 0], graph.grid_edges[:, 1]
    learn_inputs = config.model.learn_input_coupling
    decay = config.optim.ema

    def iteration(params, ema, opt_state, chains, lam, key, x0, q_prev, p_step, template):
        spec = m.training_spec(graph, params, beta, positive, negative)
        spec = spec if template is None else dt.shard_training_spec(spec, template)
        k_noise, k_pos, k_neg = jax.random.split(key, 3)
        x_prev, x_t = noisy_pair(k_noise, x0, q_prev, p_step)
        n = x0.shape[0]
        pos_sums, pos_last = _run(spec.program_positive, positive, observer, jax.random.split(k_pos, n),
                                  m.to_blocks(chains["positive"], graph.positive_index), [x_prev, x_t])
        neg_start = chains["negative"].at[:, graph.sites].set(x_t)
        neg_sums, neg_last = _run(spec.program_negative, negative, observer, jax.random.split(k_neg, n),
                                  m.to_blocks(neg_start, graph.negative_index), [x_t])
        pos_b, pos_w = (s / positive.n_samples for s in pos_sums)
        neg_b, neg_w = (s / negative.n_samples for s in neg_sums)
        b = jnp.asarray(beta, jnp.float32)
        grad_b = -b * (jnp.mean(pos_b, 0) - jnp.mean(neg_b, 0))
        grad_w = -b * (jnp.mean(pos_w, 0) - jnp.mean(neg_w, 0))
        # connected correlation of each grid coupling under the model, per chain (its own x_t);
        # n / (n - 1): the sample covariance's correction for the means estimated from the same samples
        correction = negative.n_samples / max(negative.n_samples - 1, 1)
        corr = correction * jnp.mean(neg_w[:, :n_grid_edges] - neg_b[:, u] * neg_b[:, v], 0)
        grads = {
            "biases": grad_b,
            "weights": grad_w[:n_grid_edges] + lam * corr,
            "inputs": grad_w[n_grid_edges:] if learn_inputs else jnp.zeros_like(params["inputs"]),
        }
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        ema = jax.tree.map(lambda a, p: decay * a + (1.0 - decay) * p, ema, params) if decay else params
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(params)]))
        stats = {
            "moment_gap": jnp.mean(jnp.abs(jnp.mean(pos_w - neg_w, 0)[:n_grid_edges])),
            "grad_norm": optax.tree.norm(grads),
            "correlation": jnp.mean(jnp.abs(corr)),
            "params_finite": finite.astype(jnp.float32),
        }
        return params, ema, opt_state, {"positive": pos_last, "negative": neg_last}, stats, x_t

    jitted = eqx.filter_jit(iteration)
    # the template is an argument, not a closure: jit may not close over global arrays
    return lambda *args: jitted(*args, template)


def make_measure(graph: StepGraph, config: DTMConfig, template=None) -> Callable:
    """The jitted mixing measurement `(params, key, x_cond [G, P]) -> rho`.

    For each of the G inputs, `penalty.replicas` chains start from noise (outputs at the input,
    as in generation), run `penalty.warmup` sweeps, record the outputs y(0), run `penalty.lag`
    more sweeps and record y(lag). rho is the covariance across replicas of every output between
    the two times, pooled over outputs and inputs, over the pooled standard deviations: 0 when
    the chain forgets where it was within `lag` sweeps, 1 when it is frozen.

    **Arguments:**

    - `graph`: the step graph.
    - `config`: the validated config.
    - `template`: a sharded training spec, or None.
    """
    p = config.penalty
    schedule = dt.SamplingSchedule(p.warmup, 2, p.lag)
    positive, negative = schedules(config)

    def measure(params, key, x_cond, template):
        spec = m.training_spec(graph, params, config.model.beta, positive, negative)
        program = spec.program_negative if template is None else template.program_negative.with_program(spec.program_negative)
        g, r = x_cond.shape[0], p.replicas
        clamp = jnp.repeat(x_cond, r, axis=0)
        k_init, k_run = jax.random.split(key)
        start = jax.random.bernoulli(k_init, 0.5, (g * r, graph.n_grid)).at[:, graph.sites].set(clamp)
        run = lambda k, i, c: dt.sample_states(k, program, schedule, i, [c], [graph.outputs])[0]  # noqa: E731
        y = m.spins(map_chains(run, program, jax.random.split(k_run, g * r), m.to_blocks(start, graph.negative_index), clamp))
        y = y.reshape(g, r, 2, -1)
        d = y - jnp.mean(y, axis=1, keepdims=True)
        cov = jnp.sum(jnp.mean(d[:, :, 0] * d[:, :, 1], axis=1))
        scale = jnp.sum(jnp.sqrt(jnp.mean(d[:, :, 0] ** 2, axis=1) * jnp.mean(d[:, :, 1] ** 2, axis=1)))
        return jnp.where(scale > 0, cov / jnp.where(scale > 0, scale, 1.0), 0.0)

    jitted = eqx.filter_jit(measure)
    return lambda params, key, x_cond: jitted(params, key, x_cond, template)


def update_penalty(penalty: np.ndarray, rho: float, config: DTMConfig) -> np.ndarray:
    """The controller: `penalty` is `[lambda, smoothed autocorrelation]`. The measurement `rho`
    enters a moving average (`penalty.smoothing`; the first one is taken as it is), and lambda
    grows by `penalty.increase` while that average is above `penalty.target` and shrinks by
    `penalty.decrease` below it, within [minimum, maximum]; lambda is 0 when the penalty is off.

    **Arguments:**

    - `penalty`: the current `[lambda, smoothed rho]` (NaN before the first measurement).
    - `rho`: the latest measurement.
    - `config`: the validated config.

    **Returns:** the new `[lambda, smoothed rho]` (float64).
    """
    p = config.penalty
    lam, smooth = float(penalty[0]), float(penalty[1])
    smooth = rho if math.isnan(smooth) else p.smoothing * smooth + (1.0 - p.smoothing) * rho
    if p.enabled:
        lam = lam * p.increase if smooth > p.target else lam * p.decrease
        lam = min(max(lam, p.minimum), p.maximum)
    else:
        lam = 0.0
    return np.array([lam, smooth], np.float64)
