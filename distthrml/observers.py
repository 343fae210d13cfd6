"""Observers: what a sampling run records after each sample.

Built-in observers also implement `observe_global`, which reads the sampler's global state
directly (no detour through per-block states), and `for_shard`, which observes each shard of a
sharded run where it is (`distthrml.shard_view`); custom observers only need `__call__`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import TypeVar

import equinox as eqx
import jax
import numpy as np
from jax import numpy as jnp
from jaxtyping import Array, Int, PyTree

from ._arrays import Frozen
from .block_management import Block, block_state_to_global, from_global_state, global_to_block_state
from .errors import BlockError
from .pgm import AbstractNode
from .shard_view import LocalRows, ShardObservation, ShardView

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

    def for_shard(self, program: "BlockSamplingProgram", view: ShardView) -> ShardObservation | None:
        """How to observe one shard of a sharded run of `program` without reassembling the
        state, or None (the default: the observer then sees the whole state, reassembled at
        every observation). Both must give the same carry and observations.

        **Arguments:**

        - `program`: the unsharded program.
        - `view`: the shard's `ShardView`.
        """
        return None


def observe_global_state(observer: AbstractObserver, program, global_state: list, carry, iteration):
    """Call `observer` on a program's global state (`observe_global` when it has one, else
    `__call__` with the free and clamped block states)."""
    observe_global = getattr(observer, "observe_global", None)
    if observe_global is not None:
        return observe_global(program, global_state, carry, iteration)
    states = global_to_block_state(global_state, program.gibbs_spec)
    n_free = len(program.gibbs_spec.free_blocks)
    return observer(program, states[:n_free], states[n_free:], carry, iteration)


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

    def for_shard(self, program, view):
        return _ShardStates([view.rows([b]) for b in self.blocks_to_sample], view)


class _ShardStates(ShardObservation):
    """Each shard records the observed nodes it owns; the records are gathered after the last sample."""

    rows: list[LocalRows]
    view: ShardView

    def init(self, carry):
        return carry

    def observe(self, state, carry, iteration):
        return carry, [r.take(state, 0) for r in self.rows]

    def finalize(self, carry, observations):
        return carry, [jax.tree.map(lambda x, r=r: self.view.gather(x, r, axis=1), o) for o, r in zip(observations, self.rows)]


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
    - `elementwise_transform`: whether `f_transform` maps every node's state on its own (it may
        look at the blocks' node types, not at other nodes), so sharded runs can accumulate the
        moments on the shards (distthrml).
    """

    blocks_to_sample: list[Block]
    flat_node_ids: np.ndarray
    flat_to_type_slices_list: list[Array]
    flat_to_full_moment_slices: list[Array]
    f_transform: Callable
    elementwise_transform: bool = eqx.field(static=True)
    moment_index: Frozen = eqx.field(static=True)  # numpy copies of the slices (for sharded runs)

    def __init__(
        self,
        moment_spec: Sequence[Sequence[Sequence[AbstractNode]]] | None = None,
        f_transform: Callable = _f_identity,
        *,
        moment_blocks: Sequence[Sequence[Block]] | None = None,
        elementwise_transform: bool | None = None,
    ):
        """**Arguments:**

        - `moment_spec`: per moment type, a sequence of moments, each a sequence of nodes (all
            moments of one type have the same number of nodes). E.g. `[[(a,), (b,)], [(a, b)]]`.
        - `f_transform`: `f(states, blocks)` returning states of the same structure.
        - `moment_blocks` (array-native alternative to `moment_spec`): per moment type, a list of
            parallel blocks; moment i of that type is `(blocks[0][i], blocks[1][i], ...)`.
        - `elementwise_transform`: declare `f_transform` elementwise (see the attribute); default:
            True for the identity only. A sharded run of a non-elementwise transform reassembles
            the state at every observation instead.
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
            slices.append(members.astype(np.int32))
        moment_slices, offset = [], 0
        for ids in per_type_ids:
            moment_slices.append(flat_position[offset : offset + ids.size].reshape(ids.shape).astype(np.int32))
            offset += ids.size
        self.flat_to_type_slices_list = [jnp.asarray(x) for x in slices]
        self.flat_to_full_moment_slices = [jnp.asarray(x) for x in moment_slices]
        self.moment_index = Frozen((slices, moment_slices, self.flat_node_ids))
        self.f_transform = f_transform
        self.elementwise_transform = f_transform is _f_identity if elementwise_transform is None else bool(elementwise_transform)

    @property
    def flat_nodes_list(self) -> list[AbstractNode]:
        out = [None] * len(self.flat_node_ids)
        for block, sl in zip(self.blocks_to_sample, self.flat_to_type_slices_list):
            for position, node in zip(np.asarray(sl).tolist(), block.nodes):
                out[position] = node
        return out

    def _accumulate(self, sampled_state, carry):
        sampled_state = list(self.f_transform(sampled_state, self.blocks_to_sample))
        dtype = _common_dtype(sampled_state)
        flat = jnp.zeros(len(self.flat_node_ids), dtype=dtype)
        for state, sl in zip(sampled_state, self.flat_to_type_slices_list):
            flat = flat.at[sl].set(state.astype(dtype))
        updates = [_product([flat[sl[:, k]] for k in range(sl.shape[1])], sl.shape[0], dtype) for sl in self.flat_to_full_moment_slices]
        return [_add_sums(mem, u) for mem, u in zip(carry, updates)], None

    def __call__(self, program, state_free, state_clamped, carry, iteration):
        global_state = block_state_to_global(list(state_free) + list(state_clamped), program.gibbs_spec)
        return self._accumulate(_read_blocks(program, global_state, self.blocks_to_sample), carry)

    def observe_global(self, program, global_state, carry, iteration):
        return self._accumulate(_read_blocks(program, global_state, self.blocks_to_sample), carry)

    def init(self) -> list[Array]:
        """Zero sums, one float array per moment type."""
        return [jnp.zeros(sl.shape[:1], dtype=float) for sl in self.flat_to_full_moment_slices]

    def for_shard(self, program, view):
        if not self.elementwise_transform:
            return None
        type_slices, moment_slices, flat_ids = self.moment_index.value
        codes = np.zeros(len(flat_ids), np.int64)
        for t, sl in enumerate(type_slices):
            codes[sl] = t
        rows, columns = [], []
        for sl in moment_slices:
            if sl.shape[0] == 0:  # no moments of this type: its sums stay as they are
                rows.append(None)
                columns.append([])
                continue
            cols = []
            for k in range(sl.shape[1]):
                types = np.unique(codes[sl[:, k]])
                if len(types) != 1:
                    return None  # a column mixing node types has no single state entry
                cols.append((int(types[0]), Block.from_ids(self.blocks_to_sample[types[0]].node_type, flat_ids[sl[:, k]])))
            local = view.rows([b for _, b in cols]) if cols else None
            if local is None:
                return None  # a moment whose nodes no single shard holds
            rows.append(local)
            columns.append([t for t, _ in cols])
        spec = program.gibbs_spec
        shapes = [
            jax.tree.map(lambda sd, n=len(b): jax.ShapeDtypeStruct((n, *sd.shape), sd.dtype), spec.node_shape_struct[b.node_type])
            for b in self.blocks_to_sample
        ]
        dtype = _common_dtype(jax.eval_shape(lambda states: self.f_transform(states, self.blocks_to_sample), shapes))
        return _ShardMoments(rows, columns, self.blocks_to_sample, shapes, self.f_transform, dtype, view)


class _ShardMoments(ShardObservation):
    """Each moment is accumulated on one shard that holds all its nodes; the sums are gathered
    after the last sample. The transform is applied node by node (it is elementwise), to the
    same states in the same dtype, and products are left folds, so the sums are the unsharded ones."""

    rows: list
    columns: list = eqx.field(static=True)  # per moment type, the node-type position of each column
    blocks: list
    shapes: list
    f_transform: Callable
    dtype: object = eqx.field(static=True)
    view: ShardView

    def init(self, carry):
        return [c if r is None else r.localize(c) for r, c in zip(self.rows, carry)]

    def _transformed(self, values, t: int):
        # the transform sees its usual argument list: this column at its node type's position
        states = [jax.tree.map(lambda sd: jnp.zeros((0, *sd.shape[1:]), sd.dtype), s) for s in self.shapes]
        states[t] = values
        return self.f_transform(states, self.blocks)[t].astype(self.dtype)

    def observe(self, state, carry, iteration):
        out = []
        for r, cols, mem in zip(self.rows, self.columns, carry):
            if r is None:
                out.append(mem)
                continue
            values = [self._transformed(r.take(state, k), t) for k, t in enumerate(cols)]
            out.append(_add_sums(mem, _product(values, r.index.shape[0], self.dtype)))
        return out, None

    def finalize(self, carry, observations):
        return [c if r is None else self.view.gather(c, r) for r, c in zip(self.rows, carry)], observations


def _common_dtype(states) -> jnp.dtype:
    leaves = jax.tree.leaves(states)
    with jax.numpy_dtype_promotion("standard"):
        return jnp.result_type(*leaves) if leaves else jnp.dtype(jnp.float32)


def _product(columns: list[Array], n: int, dtype) -> Array:
    """Row-wise product of the columns, as a left fold (one rounding order wherever it runs)."""
    if not columns:
        return jnp.ones((n,), dtype)
    out = columns[0]
    for c in columns[1:]:
        out = out * c
    return out


def _add_sums(mem: Array, update: Array) -> Array:
    # THRML casts the sums to the samples' dtype, so int8 spins overflow after 127
    # observations; keep the wider of the two instead.
    with jax.numpy_dtype_promotion("standard"):
        wide = jnp.result_type(mem.dtype, update.dtype)
    return mem.astype(wide) + update.astype(wide)


def _code(type_list: list, node_type: type) -> int:
    if node_type not in type_list:
        type_list.append(node_type)
    return type_list.index(node_type)
