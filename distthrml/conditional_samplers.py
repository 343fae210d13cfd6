"""Conditional samplers: the update rule of one block given its neighbours' states.

THRML's interface (`sample`, `compute_parameters`, `sample_given_parameters`) is kept as is.
distthrml adds one method the engine prefers, `sample_per_node`, which also receives the
program indices of the nodes being updated: built-in samplers draw their randomness per node
from it (see `distthrml.node_rng`), which makes sharded runs reproduce unsharded ones bit for
bit. A custom sampler that only implements `sample` still works; its randomness then depends on
how nodes are grouped.
"""

from __future__ import annotations

import abc
from typing import Any, Callable, TypeVar

import equinox as eqx
import jax
from jax import numpy as jnp
from jaxtyping import Array, Bool, Float, Int, Key, PyTree, Shaped, UInt32

from . import node_rng

_State = PyTree[Shaped[Array, "nodes ?*state"], "State"]
_SamplerState = TypeVar("_SamplerState", bound=PyTree)


class AbstractConditionalSampler(eqx.Module):
    """Base class of the update rules that sample a block of nodes given the states they read."""

    @abc.abstractmethod
    def sample(
        self,
        key: Key,
        interactions: list[PyTree],
        active_flags: list[Array],
        states: list[list[_State]],
        sampler_state: _SamplerState,
        output_sd: PyTree[jax.ShapeDtypeStruct],
    ) -> tuple[_State, _SamplerState]:
        """Draw a new state for a block of n nodes.

        **Arguments:**

        - `key`: a JAX PRNG key.
        - `interactions`: one pytree per interaction type, arrays of shape `[n, k, ...]` (k: the most
            times any node of the block is the head of that interaction).
        - `active_flags`: parallel to `interactions`, bool `[n, k]`; False marks padding.
        - `states`: parallel to `interactions`, per interaction the list of tail states `[n, k, ...]`.
        - `sampler_state`: this sampler's carried state.
        - `output_sd`: the shape/dtype pytree of the block's new state.

        **Returns:** `(new_block_state, new_sampler_state)`.
        """

    def sample_per_node(
        self,
        key: Key,
        node_index: Int[Array, " n"],
        interactions: list[PyTree],
        active_flags: list[Array],
        states: list[list[_State]],
        sampler_state: _SamplerState,
        output_sd: PyTree[jax.ShapeDtypeStruct],
    ) -> tuple[_State, _SamplerState]:
        """Like `sample`, given also the program indices of the n nodes. Override it (drawing with
        `distthrml.node_rng` from `key` and `node_index`) to make a custom sampler's chains
        independent of how nodes are grouped into blocks and shards. The default ignores the
        indices and calls `sample` with a key folded with the block's first node index, so that
        blocks updated in the same sweep get different keys.

        **Arguments:** as `sample`, plus `node_index`: int array `[n]`.
        """
        block_key = jax.random.fold_in(key, node_index[0])
        return self.sample(block_key, interactions, active_flags, states, sampler_state, output_sd)

    def init(self) -> _SamplerState:
        """The sampler state before the first update (None by default)."""
        return None

    def has_chains_kernel(self, interactions: list[PyTree]) -> bool:
        """Whether `sample_chains` handles these interactions (False by default: the engine then
        batches chains with `jax.vmap` of `sample_per_node`)."""
        return False

    def chains_tables(self, interactions: list[PyTree], active_flags: list[Array]) -> tuple[list[PyTree], list]:
        """Loop-invariant preprocessing of a block's tables for `sample_chains`, done once per run
        of sweeps rather than per sweep (identity by default).

        **Arguments:** the block's `interactions` and `active_flags`.

        **Returns:** the `(interactions, active_flags)` that `sample_chains` receives.
        """
        return interactions, active_flags

    def sample_chains(
        self,
        k0: UInt32[Array, "1 chains"],
        k1: UInt32[Array, "1 chains"],
        node_index: Int[Array, " n"],
        interactions: list[PyTree],
        active_flags: list[Array],
        column: Callable[[int, Any], list[_State]],
        sampler_state: _SamplerState,
        output_sd: PyTree[jax.ShapeDtypeStruct],
    ) -> tuple[_State, _SamplerState]:
        """The update of a block in every chain at once, in the chains-innermost layout of
        `distthrml.engine.sweep`; must equal `sample_per_node` under `jax.vmap` bit for bit.

        **Arguments:**

        - `k0`, `k1`: every chain's key words of this sweep (`node_rng.key_words`), `[1, chains]`.
        - `node_index`: program indices of the n nodes.
        - `interactions`, `active_flags`: as in `sample`, after `chains_tables`.
        - `column`: `column(i, j)` gives, for interaction i and slot j (an int or a traced int),
            the tail states `[n, chains, ...]` of slot j of every node (one per tail block).
        - `sampler_state`: this sampler's carried state.
        - `output_sd`: shape/dtype of the new state, `[n, chains, ...]`.
        """
        raise NotImplementedError(f"{type(self).__name__} has no chains-innermost kernel")


class AbstractParametricConditionalSampler(AbstractConditionalSampler):
    """A sampler that first computes a distribution's parameters, then samples from it."""

    @abc.abstractmethod
    def compute_parameters(
        self,
        key: Key,
        interactions: list[PyTree],
        active_flags: list[Array],
        states: list[list[_State]],
        sampler_state: PyTree,
        output_sd: PyTree[jax.ShapeDtypeStruct],
    ) -> PyTree:
        """Return `(parameters, sampler_state)`; arguments as in `AbstractConditionalSampler.sample`."""

    @abc.abstractmethod
    def sample_given_parameters(
        self, key: Key, parameters: PyTree, sampler_state: _SamplerState, output_sd: PyTree[jax.ShapeDtypeStruct]
    ) -> tuple[_State, _SamplerState]:
        """Sample given the distribution's parameters."""

    def sample_given_parameters_per_node(
        self,
        key: Key,
        node_index: Int[Array, " n"],
        parameters: PyTree,
        sampler_state: _SamplerState,
        output_sd: PyTree[jax.ShapeDtypeStruct],
    ) -> tuple[_State, _SamplerState]:
        """Per-node-randomness version of `sample_given_parameters` (defaults to it, with a key
        folded with the block's first node index)."""
        block_key = jax.random.fold_in(key, node_index[0])
        return self.sample_given_parameters(block_key, parameters, sampler_state, output_sd)

    def sample(self, key, interactions, active_flags, states, sampler_state, output_sd):
        key, subkey = jax.random.split(key, 2)
        parameters, sampler_state = self.compute_parameters(
            subkey, interactions, active_flags, states, sampler_state, output_sd
        )
        return self.sample_given_parameters(key, parameters, sampler_state, output_sd)

    def sample_per_node(self, key, node_index, interactions, active_flags, states, sampler_state, output_sd):
        # compute_parameters gets a key of its own, distinct from the per-node sampling key
        parameters, sampler_state = self.compute_parameters(
            jax.random.fold_in(key, 0x5EED), interactions, active_flags, states, sampler_state, output_sd
        )
        return self.sample_given_parameters_per_node(key, node_index, parameters, sampler_state, output_sd)


class BernoulliConditional(AbstractParametricConditionalSampler):
    r"""Samples a spin s in {-1, 1} with $P(s) \propto e^{\gamma s}$, i.e. $P(s=1) = \sigma(2\gamma)$.
    `compute_parameters` must return $\gamma$ with shape `[n]`. +1 is stored as True."""

    def sample_given_parameters(self, key, parameters, sampler_state, output_sd):
        return jax.random.bernoulli(key, jax.nn.sigmoid(2 * parameters)), sampler_state

    def sample_given_parameters_per_node(self, key, node_index, parameters, sampler_state, output_sd):
        return bernoulli_draw(node_rng.uniform(key, node_index), parameters), sampler_state


def bernoulli_draw(u: Float[Array, "..."], gamma: Float[Array, "..."]) -> Bool[Array, "..."]:
    r"""True (spin +1) with probability $\sigma(2\gamma)$, given 24-bit uniforms `u` of the same shape.
    Shared by the per-node and the batched kernels so that both round identically."""
    return u < jax.nn.sigmoid(2 * gamma).astype(jnp.float32)


def _check_categories(n_categories: int, dtype) -> None:
    if jnp.issubdtype(dtype, jnp.integer) and n_categories > int(jnp.iinfo(dtype).max) + 1:
        raise ValueError(
            f"n_categories={n_categories} exceeds what dtype {dtype} can represent; "
            "pass a wider integer dtype via node_shape_dtypes."
        )


class SoftmaxConditional(AbstractParametricConditionalSampler):
    r"""Samples a category X with $P(X=k) \propto e^{\theta_k}$; `compute_parameters` must return
    $\theta$ with shape `[n, K]`."""

    def sample_given_parameters(self, key, parameters, sampler_state, output_sd):
        _check_categories(parameters.shape[-1], output_sd.dtype)
        return jax.random.categorical(key, parameters, axis=-1).astype(output_sd.dtype), sampler_state

    def sample_given_parameters_per_node(self, key, node_index, parameters, sampler_state, output_sd):
        _check_categories(parameters.shape[-1], output_sd.dtype)
        return categorical_draw(node_rng.uniform(key, node_index), parameters, output_sd.dtype), sampler_state


def categorical_draw(u: Float[Array, "..."], theta: Float[Array, "... K"], dtype) -> Array:
    r"""Category k with probability $\propto e^{\theta_k}$ by inverse-CDF sampling, one 24-bit uniform
    per draw (`u` has `theta`'s shape without its last axis). Shared by the per-node and the
    batched kernels."""
    n_categories = theta.shape[-1]
    probs = jax.nn.softmax(theta.astype(jnp.float32), axis=-1)
    cdf = jnp.cumsum(probs, axis=-1)
    threshold = u[..., None] * cdf[..., -1:]
    choice = jnp.sum((cdf <= threshold).astype(jnp.int32), axis=-1)
    return jnp.minimum(choice, n_categories - 1).astype(dtype)
