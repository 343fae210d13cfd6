"""Observers: what a sampling run records after each sample.

Built-in observers also implement `observe_global`, which reads the sampler's global state
directly (no detour through per-block states); custom observers only need `__call__`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import equinox as eqx
import jax
import numpy as np
from jax import numpy as jnp
from jaxtyping import Array, Int, PyTree

from .block_management import Block, block_state_to_global, from_global_state
from .errors import BlockError
from .pgm import AbstractNode

if TYPE_CHECKING:
    from .block_sampling import BlockSamplingProgram

ObserveCarry = TypeVar("ObserveCarry", bound=PyTree)


class AbstractObserver(eqx.Module):
    """Inspects a running sampling program once per sample and carries a memory between calls."""

    @abc.abstractmethod
    def __call__(
        self,
        program: "BlockSamplingProgram",
        state_free: list[PyTree[Array]],
        state_clamped: list[PyTree[Array]],
        carry: ObserveCarry,
        iteration: Int[Array, ""],
    ) -> tuple[ObserveCarry, PyTree]:
        """Make an observation.

        **Arguments:**

        - `program`: the running program.
        - `state_free`: the free blocks' states.
        - `state_clamped`: the clamped blocks' states.
        - `carry`: the observer's memory.
        - `iteration`: the index of this sample.

        **Returns:** `(new carry, what to record for this sample)`.
        """

    def init(self) -> PyTree:
        """The initial memory (None by default)."""
        return None


def _read_blocks(program, global_state, blocks: Sequence[Block]) -> list:
    return from_global_state(global_state, program.gibbs_spec, list(blocks))


class StateObserver(AbstractObserver):
    """Records the states of some blocks.

    **Attributes:**

    - `blocks_to_sample`: the blocks whose states are recorded.
    """

    blocks_to_sample: list[Block]

    def __init__(self, blocks_to_sample: list[Block]):
        self.blocks_to_sample = list(blocks_to_sample)

    def __call__(self, program, state_free, state_clamped, carry, iteration):
        global_state = block_state_to_global(list(state_free) + list(state_clamped), program.gibbs_spec)
        return None, _read_blocks(program, global_state, self.blocks_to_sample)

    def observe_global(self, program, global_state, carry, iteration):
        return None, _read_blocks(program, global_state, self.blocks_to_sample)


def _f_identity(*x):
    return x[0]


def _moment_ids_from_nodes(moment_spec) -> tuple[list[np.ndarray], dict[int, type]]:
    """The one-time node -> id map of the object API."""
    per_type_ids, type_of = [], {}
    for i, moments in enumerate(moment_spec):
        moments = list(moments)
        order = len(moments[0]) if moments else 0
        ids = np.empty((len(moments), order), dtype=np.int64)
        for j, nodes in enumerate(moments):
            if len(nodes) != order:
                raise BlockError(f"moment type {i}: moment {j} has {len(nodes)} nodes, moment 0 has {order}")
            for k, node in enumerate(nodes):
                if not isinstance(node, AbstractNode):
                    raise BlockError(f"moment type {i}, moment {j}, entry {k} is not a node: {node!r}")
                ids[j, k] = node._id
                type_of[node._id] = type(node)
        per_type_ids.append(ids)
    return per_type_ids, type_of


class MomentAccumulatorObserver(AbstractObserver):
    r"""Accumulates running sums of products of (transformed) node states,
    $\sum_i f(x_1^i) f(x_2^i) \cdots f(x_N^i)$, one sum per moment. Sums are not divided by the
    number of samples.

    **Attributes:**

    - `blocks_to_sample`: one block per node type with the distinct nodes of the moments.
    - `flat_nodes_list`: the distinct nodes of the moments, in first-seen order (built on access).
    - `flat_to_type_slices_list`: per node type, positions of its nodes in the flat list.
    - `flat_to_full_moment_slices`: per moment type, int `[n_moments, order]` flat positions.
    - `f_transform`: `f(states, blocks) -> states`, applied before the products.
    """

    blocks_to_sample: list[Block]
    flat_node_ids: np.ndarray
    flat_to_type_slices_list: list[Array]
    flat_to_full_moment_slices: list[Array]
    f_transform: Callable

    def __init__(
        self,
        moment_spec: Sequence[Sequence[Sequence[AbstractNode]]] | None = None,
        f_transform: Callable = _f_identity,
        *,
        moment_blocks: Sequence[Sequence[Block]] | None = None,
    ):
        """**Arguments:**

        - `moment_spec`: per moment type, a sequence of moments, each a sequence of nodes (all
            moments of one type have the same number of nodes). E.g. `[[(a,), (b,)], [(a, b)]]`.
        - `f_transform`: `f(states, blocks)` returning states of the same structure.
        - `moment_blocks` (array-native alternative to `moment_spec`): per moment type, a list of
            parallel blocks; moment i of that type is `(blocks[0][i], blocks[1][i], ...)`.
        """
        if (moment_spec is None) == (moment_blocks is None):
            raise ValueError("give exactly one of moment_spec and moment_blocks")
        if moment_blocks is not None:
            per_type_ids, type_cols = [], []
            for i, blocks in enumerate(moment_blocks):
                lengths = {len(b) for b in blocks}
                if len(lengths) > 1:
                    raise BlockError(f"moment type {i}: parallel blocks have different lengths {sorted(lengths)}")
                n = lengths.pop() if lengths else 0
                per_type_ids.append(np.stack([b.ids for b in blocks], axis=1) if blocks else np.zeros((n, 0), np.int64))
                type_cols.append([b.node_type for b in blocks])
            all_ids = np.concatenate([ids.ravel() for ids in per_type_ids]) if per_type_ids else np.zeros(0, np.int64)
            type_code_cols = []
            type_list: list[type] = []
            for ids, cols in zip(per_type_ids, type_cols):
                codes = np.array([_code(type_list, t) for t in cols], dtype=np.int32)
                type_code_cols.append(np.broadcast_to(codes, ids.shape).ravel())
            all_codes = np.concatenate(type_code_cols) if type_code_cols else np.zeros(0, np.int32)
        else:
            per_type_ids, type_of = _moment_ids_from_nodes(moment_spec)
            all_ids = np.concatenate([ids.ravel() for ids in per_type_ids]) if per_type_ids else np.zeros(0, np.int64)
            type_list = []
            all_codes = np.array([_code(type_list, type_of[i]) for i in all_ids.tolist()], dtype=np.int32)

        flat_ids, first, inverse = np.unique(all_ids, return_index=True, return_inverse=True)
        # flat order = first appearance (as THRML), not sorted id order
        by_first = np.argsort(first, kind="stable")
        rank = np.empty_like(by_first)
        rank[by_first] = np.arange(len(by_first))
        flat_position = rank[inverse]
        self.flat_node_ids = flat_ids[by_first]
        flat_codes = all_codes[first[by_first]] if len(first) else np.zeros(0, np.int32)

        self.blocks_to_sample, slices = [], []
        # node types in order of first appearance in the flat list
        for code in dict.fromkeys(flat_codes.tolist()):
            members = np.flatnonzero(flat_codes == code)
            self.blocks_to_sample.append(Block.from_ids(type_list[code], self.flat_node_ids[members]))
            slices.append(jnp.asarray(members.astype(np.int32)))
        self.flat_to_type_slices_list = slices
        moment_slices, offset = [], 0
        for ids in per_type_ids:
            moment_slices.append(jnp.asarray(flat_position[offset : offset + ids.size].reshape(ids.shape).astype(np.int32)))
            offset += ids.size
        self.flat_to_full_moment_slices = moment_slices
        self.f_transform = f_transform

    @property
    def flat_nodes_list(self) -> list[AbstractNode]:
        out = [None] * len(self.flat_node_ids)
        for block, sl in zip(self.blocks_to_sample, self.flat_to_type_slices_list):
            for position, node in zip(np.asarray(sl).tolist(), block.nodes):
                out[position] = node
        return out

    def _accumulate(self, sampled_state, carry):
        sampled_state = list(self.f_transform(sampled_state, self.blocks_to_sample))
        leaves = jax.tree.leaves(sampled_state)
        with jax.numpy_dtype_promotion("standard"):
            dtype = jnp.result_type(*leaves) if leaves else jnp.float32
        flat = jnp.zeros(len(self.flat_node_ids), dtype=dtype)
        for state, sl in zip(sampled_state, self.flat_to_type_slices_list):
            flat = flat.at[sl].set(state.astype(dtype))

        def add(mem, sl):
            update = jnp.prod(flat[sl], axis=1)
            # THRML casts the sums to the samples' dtype, so int8 spins overflow after 127
            # observations; keep the wider of the two instead.
            with jax.numpy_dtype_promotion("standard"):
                wide = jnp.result_type(mem.dtype, update.dtype)
            return mem.astype(wide) + update.astype(wide)

        return jax.tree.map(add, carry, self.flat_to_full_moment_slices), None

    def __call__(self, program, state_free, state_clamped, carry, iteration):
        global_state = block_state_to_global(list(state_free) + list(state_clamped), program.gibbs_spec)
        return self._accumulate(_read_blocks(program, global_state, self.blocks_to_sample), carry)

    def observe_global(self, program, global_state, carry, iteration):
        return self._accumulate(_read_blocks(program, global_state, self.blocks_to_sample), carry)

    def init(self) -> list[Array]:
        """Zero sums, one float array per moment type."""
        return [jnp.zeros(sl.shape[:1], dtype=float) for sl in self.flat_to_full_moment_slices]


def _code(type_list: list, node_type: type) -> int:
    if node_type not in type_list:
        type_list.append(node_type)
    return type_list.index(node_type)
