"""Generation: x_T is uniform noise; step T samples x_{T-1} given it, step T-1 samples x_{T-2}
given that, and so on down to x_0. Each step runs `generation.sweeps` Gibbs sweeps from
noise latents and outputs at x_t. The annealed steps (`generation.anneal`: the last one, x_1 to
x_0, or all) run them in `anneal_stages` stages whose beta goes linearly from `beta_start` to
`beta_end` (times `model.beta`): ending colder than the model removes the last step's isolated
flipped pixels; the other steps sample at the model's beta."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import numpy as np

import distthrml as dt
from distthrml.models import IsingSamplingProgram

from . import model as m
from .config import DTMConfig
from .graph import StepGraph


def stages(config: DTMConfig, annealed: bool = True) -> list[tuple[float, int]]:
    """(beta, sweeps) of every annealing stage; the sweeps add up to `generation.sweeps`.

    **Arguments:**

    - `config`: the validated config.
    - `annealed`: the annealed plan, else one stage at `model.beta`.
    """
    g = config.generation
    if not annealed:
        return [(float(config.model.beta), int(g.sweeps))]
    bounds = np.round(np.linspace(0, g.sweeps, g.anneal_stages + 1)).astype(int)
    betas = np.linspace(g.beta_start, g.beta_end, g.anneal_stages) * config.model.beta
    return [(float(b), int(n)) for b, n in zip(betas, np.diff(bounds)) if n > 0]


def make_denoiser(graph: StepGraph, config: DTMConfig, annealed: bool = True) -> Callable:
    """The jitted step `(params, key, x_t [S, P]) -> x_{t-1} [S, P]` (bool).

    **Arguments:**

    - `graph`: the step graph.
    - `config`: the validated config.
    - `annealed`: run the annealing stages (else all sweeps at `model.beta`).
    """
    plan = stages(config, annealed)

    def denoise(params, key, x_t):
        n = x_t.shape[0]
        k_init, k_run = jax.random.split(key)
        state = jax.random.bernoulli(k_init, 0.5, (n, graph.n_grid)).at[:, graph.sites].set(x_t)
        for i, (beta, sweeps) in enumerate(plan):
            program = IsingSamplingProgram(m.ebm(graph, params, beta), graph.negative_blocks, [graph.inputs])
            schedule = dt.SamplingSchedule(sweeps, 1, 1)  # `sweeps` sweeps, then one observation
            run = lambda k, s, c, p=program, sc=schedule: dt.sample_states(  # noqa: E731
                k, p, sc, m.to_blocks(s, graph.negative_index), [c], [graph.grid])[0][0]
            state = jax.vmap(run)(jax.random.split(jax.random.fold_in(k_run, i), n), state, x_t)
        return state[:, graph.sites]

    return eqx.filter_jit(denoise)


def generate(denoisers: dict[int, Callable], params: list[dict], key: jax.Array, n: int) -> np.ndarray:
    """Run the chain from noise to x_0.

    **Arguments:**

    - `denoisers`: step t -> its denoiser (`make_denoiser`).
    - `params`: the T steps' parameters, step 1 first.
    - `key`: the PRNG key.
    - `n`: chains (images).

    **Returns:** bool `[T + 1, n, P]`: entry k is x_k (entry T the noise, entry 0 the images).
    """
    T = len(params)
    P = int(np.asarray(params[0]["inputs"]).shape[0])
    x = jax.random.bernoulli(jax.random.fold_in(key, 0), 0.5, (n, P))
    out = [np.asarray(x)]
    for t in range(T, 0, -1):
        x = denoisers[t](params[t - 1], jax.random.fold_in(key, t), x)
        out.append(np.asarray(x))
    return np.stack(out[::-1])


def denoisers(graph: StepGraph, config: DTMConfig) -> dict[int, Callable]:
    """Step t -> its denoiser: annealed for the last step (or every step, `generation.anneal: all`).

    **Arguments:**

    - `graph`: the step graph.
    - `config`: the validated config.
    """
    plain = make_denoiser(graph, config, False)
    annealed = plain if stages(config, True) == stages(config, False) else make_denoiser(graph, config, True)
    every = config.generation.anneal == "all"
    return {t: annealed if (every or t == 1) else plain for t in range(1, config.diffusion.steps + 1)}
