"""Blocks of nodes, block specifications and conversions between block and global states.

A *block state* is a list with one pytree per block (leaves: `[..., len(block), *node_shape]`).
The *global state* is a list with one pytree per distinct node shape/dtype ("SD"), in which the
blocks sharing that SD are concatenated along the node axis, in block order. Both layouts and
their order follow THRML; the bookkeeping behind them is arrays, not per-node dictionaries.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Generic, Optional, Type, TypeAlias, TypeVar

import equinox as eqx
import jax
import numpy as np
from jax import numpy as jnp
from jaxtyping import Array, Int, PyTree, Shaped

from .errors import BlockError, StateCountError, StateError
from .pgm import AbstractNode, reserve_node_ids

_Node = TypeVar("_Node", bound=AbstractNode)
_PyTreeStruct: TypeAlias = tuple[PyTree, tuple[jax.ShapeDtypeStruct, ...]]
_GlobalState: TypeAlias = PyTree[Shaped[Array, "nodes_global ?*state"], "_GlobalState"]
_State: TypeAlias = PyTree[Shaped[Array, "nodes ?*state"], "State"]
_Node_SD: TypeAlias = Mapping[Type[AbstractNode], PyTree[jax.ShapeDtypeStruct]]

_SMALL_REPR = 8


class Block(Generic[_Node]):
    """An ordered collection of nodes of one type, sampled together (SIMD) in block Gibbs.

    Build it from node objects (`Block(nodes)`, THRML's API) or from ids without any per-node
    Python object (`Block.from_ids(SpinNode, ids)`, `make_block(SpinNode, n)`, `block[index_array]`).

    **Attributes:**

    - `nodes`: the tuple of nodes (made on first access for id-built blocks).
    - `ids`: the nodes' integer ids, an int64 numpy array.
    """

    __slots__ = ("_ids", "_node_type", "_nodes")

    def __init__(self, nodes: Sequence[_Node]) -> None:
        if isinstance(nodes, Block):
            self._ids, self._node_type, self._nodes = nodes._ids, nodes._node_type, nodes._nodes
            return
        nodes = tuple(nodes)
        node_type = None
        if nodes:
            node_type = type(nodes[0])
            if not isinstance(nodes[0], AbstractNode):
                raise BlockError(f"Block entries must be AbstractNode instances; entry 0 is {nodes[0]!r}")
            for position, node in enumerate(nodes):
                if type(node) is not node_type:
                    raise BlockError(
                        "All nodes in a block must be of the same type: node 0 is a "
                        f"{node_type.__name__} but node {position} is a {type(node).__name__} ({node!r}). "
                        "Put nodes of different types in different blocks (a tuple of blocks, a "
                        "superblock, samples them at the same algorithmic time)."
                    )
        self._ids = np.fromiter((n._id for n in nodes), dtype=np.int64, count=len(nodes))
        self._ids.setflags(write=False)
        self._node_type = node_type
        self._nodes = nodes

    @classmethod
    def from_ids(cls, node_type: Type[_Node], ids) -> "Block[_Node]":
        """A block of `node_type` nodes with the given ids, made without node objects.

        **Arguments:**

        - `node_type`: the nodes' class (a subclass of `AbstractNode`).
        - `ids`: a 1D integer array of node ids.
        """
        if not (isinstance(node_type, type) and issubclass(node_type, AbstractNode)):
            raise BlockError(f"node_type must be a subclass of AbstractNode, got {node_type!r}")
        ids = np.asarray(ids)
        if ids.ndim != 1 or not (np.issubdtype(ids.dtype, np.integer) or ids.size == 0):
            raise BlockError(f"node ids must be a 1D integer array, got shape {ids.shape} dtype {ids.dtype}")
        owned = ids.astype(np.int64, copy=False)
        return cls._wrap(node_type, owned.copy() if owned is ids else owned)

    @classmethod
    def _wrap(cls, node_type, ids: np.ndarray) -> "Block":
        """A block around a fresh int64 id array that nothing else holds (no copy, no checks)."""
        block = object.__new__(cls)
        ids.setflags(write=False)
        block._ids, block._node_type, block._nodes = ids, node_type, None
        return block

    @property
    def ids(self) -> Int[np.ndarray, " nodes"]:
        return self._ids

    @property
    def nodes(self) -> tuple[_Node, ...]:
        if self._nodes is None:
            make = self._node_type._from_id
            self._nodes = tuple(make(i) for i in self._ids.tolist())
        return self._nodes

    @property
    def node_type(self) -> Type[_Node]:
        if self._node_type is None or len(self._ids) == 0:
            raise BlockError(
                "Block is empty and doesn't have a node type. Most methods in thrml do not support empty blocks "
                "(nor in distthrml)."
            )
        return self._node_type

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            if self._nodes is not None:
                return self._nodes[index]
            return self._node_type._from_id(self._ids[index])
        sub = self._ids[index]
        if sub.ndim != 1:
            raise BlockError("indexing a Block must give a 1D selection of nodes")
        # a view is safe to share: the parent's ids are read-only and never change
        return Block._wrap(self._node_type, sub.astype(np.int64, copy=False))

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[_Node]:
        return iter(self.nodes)

    def __contains__(self, item) -> bool:
        return isinstance(item, AbstractNode) and bool(np.any(self._ids == item._id))

    def __add__(self, other):
        if isinstance(other, Block):
            if len(self) and len(other) and self._node_type is not other._node_type:
                raise BlockError(
                    f"Cannot add Blocks of different node types ({self._node_type.__name__} and "
                    f"{other._node_type.__name__})"
                )
            return concat_blocks([self, other])
        raise NotImplementedError(f"a Block can only be added to a Block, not a {type(other).__name__}")

    def __repr__(self) -> str:
        if self._nodes is not None and len(self) <= _SMALL_REPR:
            return f"{type(self).__name__}(nodes={self._nodes!r})"
        name = self._node_type.__name__ if self._node_type is not None else "?"
        return f"{type(self).__name__}({len(self)} x {name}, ids={np.array2string(self._ids, threshold=6)})"


def make_block(node_type: Type[_Node], n: int) -> Block[_Node]:
    """A block of `n` new nodes of `node_type` with consecutive fresh ids (no node objects made).

    **Arguments:**

    - `node_type`: the nodes' class.
    - `n`: the number of nodes.
    """
    if not (isinstance(node_type, type) and issubclass(node_type, AbstractNode)):
        raise BlockError(f"node_type must be a subclass of AbstractNode, got {node_type!r}")
    return Block._wrap(node_type, reserve_node_ids(n))


def concat_blocks(blocks: Sequence[Block]) -> Block:
    """Concatenate blocks of one node type into one block (array-native).

    **Arguments:**

    - `blocks`: the blocks, in order.
    """
    types = {b._node_type for b in blocks if len(b)}
    if len(types) > 1:
        names = sorted(t.__name__ for t in types)
        raise BlockError(f"Cannot concatenate blocks of different node types: {names}")
    if all(b._nodes is not None for b in blocks):
        return Block(tuple(n for b in blocks for n in b._nodes))
    node_type = types.pop() if types else next((b._node_type for b in blocks if b._node_type), None)
    ids = np.concatenate([b._ids for b in blocks]) if blocks else np.zeros(0, np.int64)
    if node_type is None:
        return Block(())
    return Block._wrap(node_type, ids)


class NodeIndex:
    """Maps node ids to their positions in an id array, vectorised.

    A dense table is used when the ids span a range not much larger than their count (the usual
    case: ids are handed out consecutively); otherwise a sorted copy and binary search.
    """

    def __init__(self, ids: Int[np.ndarray, " n"]):
        self.size = len(ids)
        self._dense = None
        if self.size == 0:
            self._lo = 0
            self._sorted = np.zeros(0, np.int64)
            self._order = np.zeros(0, np.int64)
            return
        lo, hi = int(ids.min()), int(ids.max())
        span = hi - lo + 1
        index_dtype = np.int32 if self.size < 2**31 - 1 else np.int64
        if span <= 4 * self.size + 1024:
            table = np.full(span, -1, dtype=index_dtype)
            table[ids - lo] = np.arange(self.size, dtype=index_dtype)
            self._dense, self._lo = table, lo
        else:
            order = np.argsort(ids, kind="stable")
            self._sorted, self._order, self._lo = ids[order], order, lo

    def duplicates(self, ids: Int[np.ndarray, " n"]) -> Int[np.ndarray, " k"]:
        """Positions (into the id array this index was built from) of repeated ids."""
        if self._dense is not None:
            return np.flatnonzero(self._dense[ids - self._lo] != np.arange(len(ids)))
        repeated = np.flatnonzero(np.diff(self._sorted) == 0) + 1
        return np.sort(self._order[repeated])

    def lookup(self, ids) -> Int[np.ndarray, "..."]:
        """Positions of `ids`; -1 where an id is not present."""
        ids = np.asarray(ids, dtype=np.int64)
        if self.size == 0:
            return np.full(ids.shape, -1, np.int64)
        if self._dense is not None:
            rel = ids - self._lo
            if len(rel) and (rel.min() < 0 or rel.max() >= len(self._dense)):
                inside = (rel >= 0) & (rel < len(self._dense))
                return np.where(inside, self._dense[np.where(inside, rel, 0)], -1)
            return self._dense[rel]
        where = np.searchsorted(self._sorted, ids)
        where = np.minimum(where, len(self._sorted) - 1)
        found = self._sorted[where] == ids
        return np.where(found, self._order[where], -1)


def _hash_pytree(x: PyTree[jax.ShapeDtypeStruct]) -> _PyTreeStruct:
    return (jax.tree.structure(x), tuple(jax.tree.leaves(x)))


class _NodeLocationMap(Mapping):
    """Read-only `node -> (sd_index, position)` view computed from the spec's arrays."""

    def __init__(self, spec: "BlockSpec"):
        self._spec = spec

    def __getitem__(self, node):
        if not isinstance(node, AbstractNode):
            raise KeyError(node)
        p = int(self._spec.node_index.lookup(np.array([node._id]))[0])
        if p < 0:
            raise KeyError(node)
        return int(self._spec.node_sd[p]), int(self._spec.node_sd_position[p])

    def __contains__(self, node) -> bool:
        return isinstance(node, AbstractNode) and self._spec.node_index.lookup(np.array([node._id]))[0] >= 0

    def __iter__(self):
        for block in self._spec.blocks:
            yield from block.nodes

    def __len__(self) -> int:
        return self._spec.node_index.size


class BlockSpec:
    """The layout of a list of blocks in the global state.

    **Attributes:**

    - `blocks`: the blocks, in order.
    - `all_block_sds`: the hashable shape/dtype structure (SD) of each block.
    - `global_sd_order`: the distinct SDs in global-state order (first appearance in
        `node_shape_dtypes`).
    - `sd_index_map`: SD -> its index in `global_sd_order`.
    - `node_global_location_map`: node -> `(sd_index, position in that global array)`.
    - `block_to_global_slice_spec`: per SD, the indices of the blocks stored in it.
    - `node_shape_dtypes`: node type -> hashable SD.
    - `node_shape_struct`: node type -> pytree of `jax.ShapeDtypeStruct`.

    Array bookkeeping (distthrml): a node's *program index* is its position in the concatenation
    of all blocks; `node_index` maps ids to program indices, `node_sd` and `node_sd_position` give
    each program index's place in the global state, `block_offsets` each block's first position
    in its SD array and `sd_sizes` the SD arrays' lengths.
    """

    def __init__(self, blocks: list[Block], node_shape_dtypes: _Node_SD) -> None:
        """**Arguments:**

        - `blocks`: the blocks this spec lays out.
        - `node_shape_dtypes`: node type -> pytree of `jax.ShapeDtypeStruct`.
        """
        self.node_shape_struct = dict(node_shape_dtypes)
        self.node_shape_dtypes = {t: _hash_pytree(sd) for t, sd in node_shape_dtypes.items()}
        self.blocks = list(blocks)
        self.global_sd_order = list(dict.fromkeys(self.node_shape_dtypes.values()))
        self.sd_index_map = {sd: i for i, sd in enumerate(self.global_sd_order)}

        for i, block in enumerate(self.blocks):
            if not isinstance(block, Block):
                raise BlockError(f"block {i} is a {type(block).__name__}, not a Block")
            if len(block) == 0:
                raise BlockError(f"Encountered an empty block in BlockSpec. (block {i})")
            if block.node_type not in self.node_shape_dtypes:
                known = sorted(t.__name__ for t in self.node_shape_dtypes)
                raise BlockError(
                    f"Block with node type {block.node_type} not found in node_shape_dtypes. "
                    f"Block {i} holds {block.node_type.__name__} nodes, a node type missing from "
                    f"node_shape_dtypes (which has: {known}). Add "
                    f"{{{block.node_type.__name__}: jax.ShapeDtypeStruct(shape, dtype)}} to node_shape_dtypes."
                )
        self.all_block_sds = [self.node_shape_dtypes[b.node_type] for b in self.blocks]

        n_sd = len(self.global_sd_order)
        self.block_to_global_slice_spec = [[] for _ in range(n_sd)]
        sizes = [0] * n_sd
        offsets = []
        for i, sd in enumerate(self.all_block_sds):
            s = self.sd_index_map[sd]
            self.block_to_global_slice_spec[s].append(i)
            offsets.append(sizes[s])
            sizes[s] += len(self.blocks[i])
        self.block_offsets: list[int] = offsets
        self.sd_sizes: list[int] = sizes
        self.block_sd_index: list[int] = [self.sd_index_map[sd] for sd in self.all_block_sds]

        lengths = np.array([len(b) for b in self.blocks], dtype=np.int64)
        self.block_starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        all_ids = np.concatenate([b.ids for b in self.blocks]) if self.blocks else np.zeros(0, np.int64)
        self.node_index = NodeIndex(all_ids)
        dup = self.node_index.duplicates(all_ids)
        if len(dup):
            self._raise_duplicate(all_ids, int(dup[0]))
        self.node_block = np.repeat(np.arange(len(self.blocks), dtype=np.int32), lengths)
        self.node_sd = np.repeat(np.array(self.block_sd_index, dtype=np.int8 if n_sd < 128 else np.int32), lengths)
        # position in the SD array = program index - block start + block offset in its SD array
        shift = np.array(offsets, dtype=np.int64) - self.block_starts[:-1]
        self.node_sd_position = np.arange(len(all_ids), dtype=np.int32 if len(all_ids) < 2**31 else np.int64)
        self.node_sd_position += shift[self.node_block].astype(self.node_sd_position.dtype)
        self.node_global_location_map = _NodeLocationMap(self)

    def _raise_duplicate(self, all_ids, position: int) -> None:
        node_id = all_ids[position]
        holders = np.flatnonzero(all_ids == node_id)
        blocks = np.searchsorted(self.block_starts, holders, side="right") - 1
        where = [f"block {b} position {h - self.block_starts[b]}" for b, h in zip(blocks, holders)]
        node_type = self.blocks[blocks[0]].node_type
        raise BlockError(
            f"A node should not show up twice in the blocks input to BlockSpec: {node_type.__name__}(id={node_id}) is at "
            + " and at ".join(where)
            + "."
        )

    @property
    def n_nodes(self) -> int:
        return int(self.block_starts[-1])

    def program_index(self, block: Block, what: str = "block") -> Int[np.ndarray, " n"]:
        """Program indices of a block's nodes; raises naming the first node this spec lacks."""
        p = self.node_index.lookup(block.ids)
        missing = np.flatnonzero(p < 0)
        if len(missing):
            m = int(missing[0])
            raise BlockError(
                f"{what}: node {m} ({block.node_type.__name__}(id={block.ids[m]})) is not in any "
                f"block of this spec ({len(missing)} of {len(block)} nodes missing)."
            )
        return p


def _concat_leaves(*leaves):
    if eqx.is_array(leaves[0]):
        if leaves[0].shape == ():
            return jnp.stack(leaves)
        return jnp.concatenate(leaves, axis=0)
    return leaves[0]


def _stack(*args):
    """THRML 0.1.4's private helper: concatenate array leaves along the node axis (stack 0-d
    ones); non-array leaves must be equal and are returned once."""
    if not eqx.is_array(args[0]):
        assert all(args[0] == a for a in args[1:])
    return _concat_leaves(*args)


def block_state_to_global(block_state: list[_State], spec: BlockSpec) -> list[_GlobalState]:
    """Concatenate a block state into the global state of `spec` (one entry per SD).

    **Arguments:**

    - `block_state`: one pytree per block of `spec.blocks`, in order; as in THRML, entries past
        the spec's blocks are ignored.
    - `spec`: the `BlockSpec` that lays the blocks out.
    """
    if len(block_state) < len(spec.blocks):
        raise StateCountError(
            f"got {len(block_state)} block states for {len(spec.blocks)} blocks (list index out of range)"
        )
    out = []
    for block_ids in spec.block_to_global_slice_spec:
        if not block_ids:
            out.append(None)
        elif len(block_ids) == 1:
            out.append(block_state[block_ids[0]])
        else:
            out.append(jax.tree.map(_concat_leaves, *[block_state[i] for i in block_ids]))
    return out


def global_to_block_state(global_state: list[_GlobalState], spec: BlockSpec) -> list[_State]:
    """Split a global state of `spec` into one state per block of `spec.blocks` (the inverse of
    `block_state_to_global`).

    **Arguments:**

    - `global_state`: a global state of `spec`.
    - `spec`: the `BlockSpec`.
    """
    return [
        jax.tree.map(lambda g, o=spec.block_offsets[b], n=len(block): g[o : o + n], global_state[spec.block_sd_index[b]])
        for b, block in enumerate(spec.blocks)
    ]


def get_node_locations(nodes: Block, spec: BlockSpec) -> tuple[int, Int[Array, " nodes"]]:
    """Where a block's nodes live in the global state of `spec`.

    **Arguments:**

    - `nodes`: a `Block` whose nodes are all in `spec`.
    - `spec`: the `BlockSpec`.

    **Returns:** `(sd_index, positions)`: the global-state entry and each node's position in it.
    """
    sd_index = spec.sd_index_map[spec.node_shape_dtypes[nodes.node_type]]
    p = spec.program_index(nodes, "get_node_locations")
    return sd_index, jnp.asarray(spec.node_sd_position[p].astype(np.int32))


def from_global_state(
    global_state: list[_GlobalState], spec_from: BlockSpec, blocks_to_extract: list[Block]
) -> list[_State]:
    """Extract the states of some blocks from a global state.

    **Arguments:**

    - `global_state`: a global state of `spec_from`.
    - `spec_from`: the `BlockSpec` of `global_state`.
    - `blocks_to_extract`: the blocks whose states to return.
    """
    out = []
    for block in blocks_to_extract:
        sd_index, positions = get_node_locations(block, spec_from)
        out.append(jax.tree.map(lambda x: jnp.take(x, positions, axis=0), global_state[sd_index]))
    return out


def state_bytes(node_sd: PyTree[jax.ShapeDtypeStruct]) -> int:
    """Bytes of one node's state with shape/dtype pytree `node_sd` (e.g. 1 for a bool spin).

    **Arguments:**

    - `node_sd`: a node type's entry of `node_shape_dtypes`.
    """
    return sum(int(np.prod(x.shape, dtype=np.int64)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(node_sd))


def block_state_bytes(spec, block: int) -> int:
    """Bytes of one node state of free block `block` of a `BlockGibbsSpec` (the unit of halo
    traffic: what an exchange moves per node).

    **Arguments:**

    - `spec`: the program's `gibbs_spec`.
    - `block`: the free block's index.
    """
    return state_bytes(spec.node_shape_struct[spec.free_blocks[block].node_type])


def make_empty_block_state(
    blocks: list[Block], node_shape_dtypes: _Node_SD, batch_shape: Optional[tuple] = None
) -> list[_State]:
    """Zero states for `blocks`, with leaves `zeros(batch_shape + (len(block),) + leaf.shape)`.

    **Arguments:**

    - `blocks`: the blocks.
    - `node_shape_dtypes`: node type -> pytree of `jax.ShapeDtypeStruct`.
    - `batch_shape`: optional leading batch dimensions.
    """
    batch = tuple(batch_shape) if batch_shape is not None else ()
    return [
        jax.tree.map(
            lambda sd: jnp.zeros((*batch, len(block), *sd.shape), sd.dtype), node_shape_dtypes[block.node_type]
        )
        for block in blocks
    ]


def _batch_shape_of(expected_sd, state, where: str) -> tuple[int, ...]:
    """The batch shape of `state` against its node type's shape/dtype pytree; `StateError` (a
    `RuntimeError`) with THRML's wording plus `where` and the leaf when they do not match."""
    if jax.tree.structure(expected_sd) != jax.tree.structure(state):
        raise StateError(
            f"{where}: state pytree structure {jax.tree.structure(state)} does not match the node type's "
            f"structure {jax.tree.structure(expected_sd)} (Tree structure mismatch between shape/dtype spec and data)"
        )
    batch = None
    for (path, sd), leaf in zip(jax.tree.leaves_with_path(expected_sd), jax.tree.leaves(state)):
        if not isinstance(sd, jax.ShapeDtypeStruct):
            continue
        name = f"{where}{jax.tree_util.keystr(path)}"
        if not eqx.is_array(leaf):
            raise StateError(f"{name}: expected an array, got {type(leaf).__name__} (Array missing from data)")
        tail = leaf.shape[len(leaf.shape) - len(sd.shape):] if sd.shape else ()
        if len(leaf.shape) < len(sd.shape) or tail != sd.shape:
            raise StateError(f"{name}: shape {leaf.shape} does not end in the node shape {sd.shape} (Shape of data mismatched with spec)")
        lead = leaf.shape[: len(leaf.shape) - len(sd.shape)]
        if batch is None:
            batch = lead
        elif lead != batch:
            raise StateError(f"{name}: leading shape {lead} differs from other leaves' {batch} (Inconsistent batch shape in data)")
        if leaf.dtype != sd.dtype:
            raise StateError(f"{name}: dtype {leaf.dtype}, expected {sd.dtype} (Data has incorrect type {leaf.dtype} vs {sd.dtype})")
    return batch


def _check_pytree_compat(spec_tree, data_tree) -> tuple[int, ...] | None:
    """THRML 0.1.4's private helper: the batch shape of `data_tree` (arrays) against `spec_tree`
    (`jax.ShapeDtypeStruct` leaves), None when the spec has no such leaf; raises `StateError` (a
    `RuntimeError`) on a structure, shape, batch or dtype mismatch.

    **Arguments:**

    - `spec_tree`: pytree with `jax.ShapeDtypeStruct` leaves where arrays are expected.
    - `data_tree`: pytree with arrays at the same positions.
    """
    return _batch_shape_of(spec_tree, data_tree, "data")


def verify_block_state(
    blocks: list[Block], states: list[_State], node_shape_dtypes: _Node_SD, block_axis: Optional[int] = None
) -> None:
    """Check that states match their blocks' node shapes and dtypes; raise `StateError` (a
    `RuntimeError`) naming the block and leaf that do not.

    **Arguments:**

    - `blocks`: the blocks.
    - `states`: one state pytree per block.
    - `node_shape_dtypes`: node type -> pytree of `jax.ShapeDtypeStruct`.
    - `block_axis`: where in the batch shape the block length must appear (e.g. -1).
    """
    if len(blocks) != len(states):
        raise StateError(f"Number of states not equal to number of blocks ({len(states)} states, {len(blocks)} blocks)")
    for i, (block, state) in enumerate(zip(blocks, states)):
        where = f"state of block {i} ({block.node_type.__name__}, {len(block)} nodes)"
        if block.node_type not in node_shape_dtypes:
            raise BlockError(f"{where}: node type {block.node_type.__name__} missing from node_shape_dtypes")
        batch = _batch_shape_of(node_shape_dtypes[block.node_type], state, where) or ()
        if block_axis is not None:
            if len(batch) == 0 or batch[block_axis] != len(block):
                raise StateError(
                    f"{where}: state shape {batch} does not have the block length {len(block)} at axis "
                    f"{block_axis} (State shape did not match detected block length)"
                )
