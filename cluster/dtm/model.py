"""The conditional Boltzmann machine of one diffusion step, p(x_{t-1} | x_t), built with
distthrml's `IsingEBM` on the blocks of a `StepGraph`.

Parameters: a bias per grid node, a coupling per grid edge (learned), and a coupling per pixel
between input x_t and output x_{t-1}, initialised at the forward process's
Gamma_t / beta (the exact posterior's x_t term), learned unless `model.learn_input_coupling` is
off. The inputs carry no bias (they are clamped in both phases: a bias would be a constant).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import distthrml as dt
from distthrml.models import IsingEBM, IsingTrainingSpec

from .graph import StepGraph


def init_params(key: jax.Array, graph: StepGraph, scale: float, input_coupling: float) -> dict:
    """Small random grid couplings, zero biases, input couplings at `input_coupling`.

    **Arguments:**

    - `key`: the PRNG key of the random couplings.
    - `graph`: the step graph.
    - `scale`: standard deviation of the grid couplings.
    - `input_coupling`: Gamma_t / beta.
    """
    return {
        "biases": jnp.zeros(graph.n_grid, jnp.float32),
        "weights": scale * jax.random.normal(key, (len(graph.grid_edges),), jnp.float32),
        "inputs": jnp.full((graph.n_pixels,), input_coupling, jnp.float32),
    }


def ebm(graph: StepGraph, params: dict, beta) -> IsingEBM:
    """The step's `IsingEBM` over grid and input nodes (traceable: `params` and `beta` may be
    tracers; the graph's index arrays are fixed).

    **Arguments:**

    - `graph`: the step graph.
    - `params`: `biases`, `weights`, `inputs`.
    - `beta`: the inverse temperature.
    """
    e = graph.edges
    biases = jnp.concatenate([params["biases"], jnp.zeros(graph.n_pixels, jnp.float32)])
    weights = jnp.concatenate([params["weights"], params["inputs"]])
    return IsingEBM(graph.nodes, (graph.nodes[e[:, 0]], graph.nodes[e[:, 1]]), biases, weights,
                    jnp.asarray(beta, jnp.float32))


def training_spec(graph: StepGraph, params: dict, beta, positive: dt.SamplingSchedule,
                  negative: dt.SamplingSchedule) -> IsingTrainingSpec:
    """Positive phase: outputs (x_{t-1}) and inputs (x_t) clamped, latents free. Negative phase:
    inputs clamped, outputs and latents free. Clamped blocks: `[outputs, inputs]` and `[inputs]`.

    **Arguments:**

    - `graph`: the step graph.
    - `params`: the parameters (may be tracers).
    - `beta`: the inverse temperature.
    - `positive`, `negative`: the phases' schedules.
    """
    return IsingTrainingSpec(ebm(graph, params, beta), [graph.outputs], [graph.inputs], graph.positive_blocks,
                             graph.negative_blocks, positive, negative)


def to_blocks(grid_state: jax.Array, index: list) -> list:
    """Per-block states `[..., len(block)]` from grid states `[..., side**2]`."""
    return [jnp.take(grid_state, jnp.asarray(i), axis=-1) for i in index]


def from_blocks(grid_state: jax.Array, blocks: list, index: list) -> jax.Array:
    """Grid states with the nodes of `blocks` (per-block states) written in."""
    for x, i in zip(blocks, index):
        grid_state = grid_state.at[..., jnp.asarray(i)].set(x)
    return grid_state


def spins(x: jax.Array) -> jax.Array:
    """Bool states as float32 spins +-1."""
    return jnp.where(x, 1.0, -1.0).astype(jnp.float32)


def n_params(graph: StepGraph) -> int:
    return int(graph.n_grid + len(graph.grid_edges) + graph.n_pixels)


def as_numpy(params: dict) -> dict:
    return {k: np.asarray(v) for k, v in params.items()}
