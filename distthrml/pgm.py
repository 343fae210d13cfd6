"""Node types of probabilistic graphical models.

A node is identified by an integer id drawn from one process-wide counter, so that node objects
(THRML's API) and id arrays (distthrml's array-native API) describe the same thing: a `Block` made
with `make_block(SpinNode, n)` holds `n` fresh ids and no Python objects until someone asks for
`block.nodes`.
"""

from __future__ import annotations

import abc
import itertools
import threading

import jax
import numpy as np
from jax import numpy as jnp

from .errors import NodeOrderError

_id_lock = threading.Lock()
_next_id = itertools.count()


def reserve_node_ids(n: int) -> np.ndarray:
    """Reserve `n` consecutive fresh node ids (int64) from the process-wide counter.

    **Arguments:**

    - `n`: how many ids to reserve.
    """
    global _next_id
    if n < 0:
        raise ValueError(f"cannot reserve a negative number of node ids ({n})")
    with _id_lock:
        start = next(_next_id)
        _next_id = itertools.count(start + n)
    return np.arange(start, start + n, dtype=np.int64)


class _NodeType(abc.ABCMeta):
    """Orders node classes by name, so that dicts keyed by node type (e.g. `is_spin`) are valid
    JAX pytrees (JAX sorts dict keys)."""

    def __lt__(cls, other):
        if not isinstance(other, type):
            return NotImplemented
        return (cls.__module__, cls.__qualname__) < (other.__module__, other.__qualname__)


_CounterMeta = _NodeType
"""THRML 0.1.4's name for the metaclass of nodes."""


class _UniqueID(metaclass=_NodeType):
    """THRML 0.1.4's base of nodes: a process-unique integer id, by which instances compare,
    hash and order. distthrml draws the id from the counter `reserve_node_ids` hands out."""

    __slots__ = ("_id",)

    def __new__(cls, *args, **kwargs):
        node = object.__new__(cls)
        # assigned here rather than in __init__ so that subclasses with their own __init__
        # (or dataclass subclasses) still get an id
        node._id = int(reserve_node_ids(1)[0])
        return node

    @property
    def _hash(self) -> int:
        """THRML's name for the id."""
        return self._id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _UniqueID) and self._id == other._id

    def __hash__(self) -> int:
        return self._id

    def __lt__(self, other) -> bool:
        if not isinstance(other, _UniqueID):
            raise NodeOrderError(f"less than only defined between _UniqueIDs, not with a {type(other).__name__}")
        return self._id < other._id


class AbstractNode(_UniqueID):
    """A node in a PGM: one random variable.

    Every node type used in a program subclasses this class; its state's shape and dtype come from
    the `node_shape_dtypes` mapping of the program's `BlockSpec`. Nodes compare and hash by id.
    """

    __slots__ = ()

    def __new__(cls, *args, **kwargs):
        if cls is AbstractNode:
            raise TypeError("only children of 'AbstractNode' may be instantiated")
        return super().__new__(cls)

    @classmethod
    def _from_id(cls, node_id: int) -> "AbstractNode":
        node = object.__new__(cls)
        node._id = int(node_id)
        return node

    @property
    def node_id(self) -> int:
        """The node's process-wide integer id."""
        return self._id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self._id})"


class SpinNode(AbstractNode):
    """A random variable with states in {-1, 1}, stored as bool (True is +1)."""

    __slots__ = ()


class CategoricalNode(AbstractNode):
    """A random variable with one of K states, stored as an unsigned integer in [0, K)."""

    __slots__ = ()


DEFAULT_NODE_SHAPE_DTYPES = {
    SpinNode: jax.ShapeDtypeStruct((), jnp.bool_),
    CategoricalNode: jax.ShapeDtypeStruct((), jnp.uint8),
}
