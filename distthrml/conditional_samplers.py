"""Conditional samplers: the update rule of one block given its neighbours' states.

THRML's interface (`sample`, `compute_parameters`, `sample_given_parameters`) is kept as is, and
under a program's THRML stream (`distthrml.rng`) the engine calls `sample` with THRML's block
key, exactly as THRML does. distthrml adds two entry points for the two shard-invariant streams:

- `sample_per_node` (per-node stream) also receives the program indices of the nodes being
  updated; built-in samplers draw each node's numbers from them (`distthrml.node_rng`).
- `sample_rows` (THRML stream on a shard) receives the positions of the rows in their block and
  the block's size, and returns what `sample` would return at those rows for the whole block;
  built-in samplers draw only those rows (`distthrml.thrml_rng`).

A custom sampler that only implements `sample` works in both: `sample_rows` then runs it on the
whole block (exact for any row-wise update), `sample_per_node` on a block key.
"""

from __future__ import annotations

import abc
from typing import Any, Callable, TypeVar

import equinox as eqx
import jax
from jax import numpy as jnp
from jaxtyping import Array, Bool, Float, Int, Key, PyTree, Shaped, UInt32

from . import node_rng, thrml_rng
from .draws import bernoulli_draw as bernoulli_draw
from .draws import categorical_draw as categorical_draw
from .errors import ProgramError, StateError

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

    def sample_rows(
        self,
        key: Key,
        rows: Int[Array, " n"],
        block_size: int,
        interactions: list[PyTree],
        active_flags: list[Array],
        states: list[list[_State]],
        sampler_state: _SamplerState,
        output_sd: PyTree[jax.ShapeDtypeStruct],
    ) -> tuple[_State, _SamplerState]:
        """THRML's stream on part of a block: what `sample(key, ...)` returns for the whole block
        of `block_size` rows, at the n rows given (positions `rows`; a position outside the block
        marks a padding row). The default places the rows into a whole block (the other rows
        inactive), calls `sample` and takes the rows back: exact for every sampler whose rows
        depend only on their own inputs, at the cost of a whole-block update. Override it to draw
        only the given rows (see `distthrml.thrml_rng`).

        **Arguments:** as `sample`, plus `rows`: int `[n]` and `block_size`: the block's length.
        """
        whole = lambda x: _into_block(x, rows, block_size)  # noqa: E731
        out, sampler_state = self.sample(
            key,
            jax.tree.map(lambda x: whole(x) if eqx.is_array(x) else x, interactions),
            [whole(a) for a in active_flags],
            jax.tree.map(whole, states),
            sampler_state,
            _resized(output_sd, block_size),
        )
        return jax.tree.map(lambda x: _rows_of(x, rows, block_size), out), sampler_state

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

    def multispin_tables(self, interactions: list[PyTree], active_flags: list[Array]):
        """The block's `distthrml.multispin.MultispinTables` (host work, concrete parameters), or a
        `ProgramError` saying why the multispin stream cannot sample it (the default: no
        multispin kernel).

        **Arguments:** the block's `interactions` and `active_flags`.
        """
        raise ProgramError(f"{type(self).__name__} has no multispin kernel (the multispin stream samples SpinGibbsConditional blocks)")

    def sample_packed(self, g0, g1, node_index: Int[Array, " n"], tables, column: Callable[[int, Any], list]):
        """The block's new words `[W, n]` under the multispin stream (`distthrml.multispin`).

        **Arguments:**

        - `g0`, `g1`: the chain groups' words of this sweep, `[W, 1]`.
        - `node_index`: program indices of the n nodes.
        - `tables`: from `multispin_tables`.
        - `column`: `column(i, j)`, interaction i's tail words at slot j, `[W, n]` each.
        """
        raise NotImplementedError(f"{type(self).__name__} has no multispin kernel")

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

    def sample_given_parameters_rows(
        self,
        key: Key,
        rows: Int[Array, " n"],
        block_size: int,
        parameters: PyTree,
        sampler_state: _SamplerState,
        output_sd: PyTree[jax.ShapeDtypeStruct],
    ) -> tuple[_State, _SamplerState]:
        """THRML-stream version of `sample_given_parameters` for some rows of a block (see
        `sample_rows`). The default places the parameters into a whole block and takes the rows
        of `sample_given_parameters` back."""
        out, sampler_state = self.sample_given_parameters(
            key,
            jax.tree.map(lambda x: _into_block(x, rows, block_size), parameters),
            sampler_state,
            _resized(output_sd, block_size),
        )
        return jax.tree.map(lambda x: _rows_of(x, rows, block_size), out), sampler_state

    def sample_per_node(self, key, node_index, interactions, active_flags, states, sampler_state, output_sd):
        # compute_parameters gets a key of its own, distinct from the per-node sampling key
        parameters, sampler_state = self.compute_parameters(
            jax.random.fold_in(key, 0x5EED), interactions, active_flags, states, sampler_state, output_sd
        )
        return self.sample_given_parameters_per_node(key, node_index, parameters, sampler_state, output_sd)

    def sample_rows(self, key, rows, block_size, interactions, active_flags, states, sampler_state, output_sd):
        # THRML's split: compute_parameters gets the second key, the draw the first
        key, subkey = jax.random.split(key, 2)
        parameters, sampler_state = self.compute_parameters(
            subkey, interactions, active_flags, states, sampler_state, output_sd
        )
        return self.sample_given_parameters_rows(key, rows, block_size, parameters, sampler_state, output_sd)


class BernoulliConditional(AbstractParametricConditionalSampler):
    r"""Samples a spin s in {-1, 1} with $P(s) \propto e^{\gamma s}$, i.e. $P(s=1) = \sigma(2\gamma)$.
    `compute_parameters` must return $\gamma$ with shape `[n]`. +1 is stored as True."""

    def sample_given_parameters(self, key, parameters, sampler_state, output_sd):
        return jax.random.bernoulli(key, jax.nn.sigmoid(2 * parameters)), sampler_state

    def sample_given_parameters_per_node(self, key, node_index, parameters, sampler_state, output_sd):
        return bernoulli_draw(node_rng.uniform(key, node_index), parameters), sampler_state

    def sample_given_parameters_rows(self, key, rows, block_size, parameters, sampler_state, output_sd):
        return thrml_rng.bernoulli(key, rows, block_size, jax.nn.sigmoid(2 * parameters)), sampler_state


def _check_categories(n_categories: int, dtype) -> None:
    if jnp.issubdtype(dtype, jnp.integer) and n_categories > int(jnp.iinfo(dtype).max) + 1:
        # THRML's wording and class (RuntimeError; StateError is one)
        raise StateError(
            f"n_categories={n_categories} exceeds what dtype {dtype} can represent "
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

    def sample_given_parameters_rows(self, key, rows, block_size, parameters, sampler_state, output_sd):
        _check_categories(parameters.shape[-1], output_sd.dtype)
        return thrml_rng.categorical(key, rows, block_size, parameters).astype(output_sd.dtype), sampler_state


def _resized(output_sd: PyTree[jax.ShapeDtypeStruct], n: int) -> PyTree[jax.ShapeDtypeStruct]:
    """`output_sd` with its leading (row) axis of length n."""
    return jax.tree.map(
        lambda sd: jax.ShapeDtypeStruct((n, *sd.shape[1:]), sd.dtype) if isinstance(sd, jax.ShapeDtypeStruct) else sd,
        output_sd,
    )


def _into_block(x: Array, rows: Int[Array, " n"], block_size: int) -> Array:
    """Rows `[n, ...]` placed at `rows` of a zero (False) `[block_size, ...]` array; padding
    rows (positions outside the block) are dropped."""
    return jnp.zeros((block_size, *x.shape[1:]), x.dtype).at[rows].set(x, mode="drop")


def _rows_of(x: Array, rows: Int[Array, " n"], block_size: int) -> Array:
    return jnp.take(x, jnp.clip(rows, 0, block_size - 1), axis=0)
