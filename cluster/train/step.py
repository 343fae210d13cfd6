"""One KL-gradient training step with persistent negative chains.

`distthrml.models.estimate_kl_grad` returns moments but not the chains' final states, which
persistent contrastive divergence needs; the step therefore samples both phases with
`distthrml.sample_with_observation` and an observer that accumulates the same moments and keeps
the last state. Sharded programs (`distthrml.shard_training_spec`) take one key per chain and a
leading chain axis; unsharded ones are `jax.vmap`ped over chains: the two give the same bits.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import distthrml as dt
from distthrml.chains import map_chains
from distthrml.errors import DistThrmlError
from distthrml.observers import AbstractObserver, MomentAccumulatorObserver

from . import model as m


def _spins(state, _blocks):
    # float spins: the sums must not overflow a narrow integer type over many samples
    return [jnp.where(x, 1.0, -1.0).astype(jnp.float32) for x in state]


class MomentsAndLastState(AbstractObserver):
    """Sums of $s_i$ and $s_i s_j$ (as `MomentAccumulatorObserver`), plus the latest free state."""

    moments: MomentAccumulatorObserver

    def __init__(self, arch: m.Architecture):
        e = arch.edges
        self.moments = MomentAccumulatorObserver(
            moment_blocks=[[arch.nodes], [arch.nodes[e[:, 0]], arch.nodes[e[:, 1]]]], f_transform=_spins
        )

    def __call__(self, program, state_free, state_clamped, carry, iteration):
        sums, _ = self.moments(program, state_free, state_clamped, carry[0], iteration)
        return (sums, list(state_free)), None


def _sample(program, schedule, observer, keys, init, clamp, carry):
    """Run every chain (leading axis of `keys`, `init`, `clamp`) from the same initial `carry`
    and return the final carries."""
    run = lambda k, i, c: dt.sample_with_observation(k, program, schedule, i, c, carry, observer)[0]  # noqa: E731
    return map_chains(run, program, keys, init, clamp)


def make_train_step(arch: m.Architecture, sampling, optimizer: optax.GradientTransformation, template=None) -> Callable:
    """The jitted step `(params, opt_state, chains, key, batch) -> (params, opt_state, chains, stats)`.

    **Arguments:**

    - `arch`: the model's graph.
    - `sampling`: the `sampling` config section.
    - `optimizer`: the optax optimizer.
    - `template`: a sharded `IsingTrainingSpec` whose layouts to reuse, or None (unsharded).
    """
    observer = MomentsAndLastState(arch)

    def step(params, opt_state, chains, key, batch, template):
        spec = m.training_spec(arch, params, sampling)
        spec = spec if template is None else dt.shard_training_spec(spec, template)
        key_pos, key_neg, key_hid = jax.random.split(key, 3)
        n_batch, n_chains = batch.shape[0], chains[0].shape[0]
        hidden0 = jax.random.bernoulli(key_hid, 0.5, (n_batch, arch.n_hidden))
        carry_pos = (observer.moments.init(), [jnp.zeros((arch.n_hidden,), bool)])
        (pos_sums, _) = _sample(
            spec.program_positive, spec.schedule_positive, observer, jax.random.split(key_pos, n_batch),
            [hidden0], [batch], carry_pos,
        )
        carry_neg = (observer.moments.init(), [jnp.zeros((len(b),), bool) for b in arch.negative_blocks])
        (neg_sums, new_chains) = _sample(
            spec.program_negative, spec.schedule_negative, observer, jax.random.split(key_neg, n_chains),
            list(chains), [], carry_neg,
        )
        n_pos, n_neg = spec.schedule_positive.n_samples, spec.schedule_negative.n_samples
        pos_b, pos_w = (jnp.mean(x, axis=0) / n_pos for x in pos_sums)
        neg_b, neg_w = (jnp.mean(x, axis=0) / n_neg for x in neg_sums)
        beta = jnp.asarray(arch.beta, jnp.float32)
        grads = {"biases": -beta * (pos_b - neg_b), "weights": -beta * (pos_w - neg_w)}
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        # computed on device: the loop checks one flag instead of copying the parameters
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(params)]))
        stats = {"moment_gap": jnp.mean(jnp.abs(pos_w - neg_w)), "grad_norm": optax.tree.norm(grads),
                 "params_finite": finite.astype(jnp.float32)}
        return params, opt_state, new_chains, stats

    # the template is an argument, not a closure: in a multi-process run its tables are global
    # arrays, which jit may not close over
    jitted = eqx.filter_jit(step)
    return lambda params, opt_state, chains, key, batch: jitted(params, opt_state, chains, key, batch, template)


class TrainingDiverged(DistThrmlError):
    """The loss or the parameters became non-finite; the last finite state is saved."""


def check_finite(stats: dict, step: int, saved_step: int) -> None:
    """Raise `TrainingDiverged` if step `step`'s statistics or parameters are not finite.

    **Arguments:**

    - `stats`: the step's statistics as floats (with the `params_finite` flag).
    - `step`: the step that produced them.
    - `saved_step`: the last finite step, which the caller saves.
    """
    bad = [k for k, v in stats.items() if not math.isfinite(v)]
    if stats.get("params_finite", 1.0) != 1.0:
        bad.append("parameters")
    if bad:
        raise TrainingDiverged(
            f"training diverged at step {step} (non-finite {', '.join(bad)}); the checkpoint of step {saved_step} "
            "holds the last finite state: lower optim.learning_rate or model.beta"
        )


def make_optimizer(config) -> optax.GradientTransformation:
    """The optax optimizer of the `optim` config section."""
    if config.optimizer == "adam":
        return optax.adam(config.learning_rate)
    return optax.sgd(config.learning_rate)


def sharded_template(arch: m.Architecture, params: dict, sampling, parts: int, mesh=None):
    """Partition the model once (METIS over its coupling graph) and shard both phases' programs;
    the result is reused, under `jax.jit`, for every step's parameters."""
    return dt.shard_training_spec(m.training_spec(arch, params, sampling), parts, mesh)
