"""Halo plans: which nodes each part owns, reads from others, and sends to whom after which block.

This is the one place where halos are derived: the sharded sampler executes these lists, and the
emulation and the partition report count them.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import numpy as np
import scipy.sparse as sp
from jaxtyping import Int

from .arrays import unique_sorted
from .errors import PartitionError
from .graph import row_ids


@dataclass(frozen=True)
class HaloPlan:
    """Per-part ownership and halo exchange plan of a partition. All arrays are read-only.

    Nodes are grouped into *update blocks* (one colour step of block Gibbs updates a block);
    after block `b` is updated its owners send the new states to every other part that reads
    them. Nodes in no block (clamped ones) are read but never sent: a reader holds them from the
    start. Without blocks every node is in block 0.

    - `owned[p]`: ascending global ids of the nodes part `p` owns.
    - `halo[p]`: ascending global ids of the nodes that part `p`'s updated nodes read but `p`
      does not own.
    - `block_send[(b, src, dst)]`: ascending global ids of block `b` that `src` sends to `dst`
      after updating block `b`. Only non-empty triples are keys.
    - `send[(src, dst)]`: every block's sends from `src` to `dst` together (ascending): what
      `src` sends `dst` per sweep; they appear in this order in `halo[dst]`.
    - `edge_cut`: number of undirected edges whose endpoints lie in different parts.
    - `n_blocks`: number of update blocks.
    """

    n_parts: int
    owned: tuple[Int[np.ndarray, " owned"], ...]
    halo: tuple[Int[np.ndarray, " halo"], ...]
    send: Mapping[tuple[int, int], Int[np.ndarray, " sent"]]
    edge_cut: int
    block_send: Mapping[tuple[int, int, int], Int[np.ndarray, " sent"]]
    n_blocks: int = 1

    def sends(self, src: int, dst: int) -> Int[np.ndarray, " sent"]:
        """Global ids `src` sends to `dst` per sweep (empty when none).

        **Arguments:**

        - `src`, `dst`: part ids.
        """
        return self.send.get((src, dst), _EMPTY)

    def block_sends(self, block: int, src: int, dst: int) -> Int[np.ndarray, " sent"]:
        """Global ids of update block `block` that `src` sends to `dst` (empty when none).

        **Arguments:**

        - `block`: an update block.
        - `src`, `dst`: part ids.
        """
        return self.block_send.get((block, src, dst), _EMPTY)

    def recv_positions(self, src: int, dst: int) -> Int[np.ndarray, " sent"]:
        """Where the nodes `src` sends land in `halo[dst]` (positions, ascending).

        **Arguments:**

        - `src`, `dst`: part ids.
        """
        return np.searchsorted(self.halo[dst], self.sends(src, dst))

    def halo_sizes(self) -> Int[np.ndarray, " parts"]:
        """Number of halo nodes of every part."""
        return np.array([h.size for h in self.halo], dtype=np.int64)

    def owned_sizes(self) -> Int[np.ndarray, " parts"]:
        """Number of owned nodes of every part."""
        return np.array([o.size for o in self.owned], dtype=np.int64)

    def neighbor_parts(self, part: int) -> Int[np.ndarray, " k"]:
        """Ascending ids of the parts that `part` exchanges states with (either direction).

        **Arguments:**

        - `part`: a part id.
        """
        linked = {dst for src, dst in self.send if src == part}
        linked |= {src for src, dst in self.send if dst == part}
        return np.array(sorted(linked), dtype=np.int64)

    def send_pairs(self) -> Int[np.ndarray, "pairs 3"]:
        """Rows `(src, dst, count)` for every non-empty send, sorted by `(src, dst)`."""
        rows = [(src, dst, nodes.size) for (src, dst), nodes in sorted(self.send.items())]
        return np.array(rows, dtype=np.int64).reshape(-1, 3)

    def block_send_rows(self) -> Int[np.ndarray, "triples 4"]:
        """Rows `(block, src, dst, count)` for every non-empty block send, sorted."""
        rows = [(b, src, dst, nodes.size) for (b, src, dst), nodes in sorted(self.block_send.items())]
        return np.array(rows, dtype=np.int64).reshape(-1, 4)


_EMPTY = np.zeros(0, dtype=np.int64)
_EMPTY.flags.writeable = False


def build_halo_plan(
    csr: sp.csr_matrix,
    assignment: Int[np.ndarray, " nodes"],
    n_parts: int,
    node_block: Int[np.ndarray, " nodes"] | None = None,
) -> HaloPlan:
    """Build the halo plan of `assignment` on the graph `csr`, vectorised.

    An entry `(u, v)` of the adjacency structure means u's update reads v's state; when u is
    updated (it is in a block) and u and v lie in different parts, v joins the halo of u's part,
    and v's owner sends it there after updating v's block (never, if v is in no block).

    **Arguments:**

    - `csr`: canonical (symmetric) adjacency structure.
    - `assignment`: part id of every node, in `[0, n_parts)`.
    - `n_parts`: number of parts.
    - `node_block`: update block of every node (`-1`: never updated, e.g. clamped); default:
      every node in block 0.
    """
    n = csr.shape[0]
    rows, cols = row_ids(csr), csr.indices.astype(np.int64)
    edge_cut = int(np.count_nonzero(assignment[rows] != assignment[cols])) // 2  # each edge is stored twice
    if node_block is None:
        node_block = np.zeros(n, np.int64)
    node_block = np.asarray(node_block, np.int64)
    if node_block.shape != (n,):
        raise PartitionError(f"node_block must have shape ({n},) (one block per node), got {node_block.shape}")
    n_blocks = int(node_block.max()) + 1 if n else 0
    updated = node_block[rows] >= 0
    rows, cols = rows[updated], cols[updated]
    reader, owner = assignment[rows], assignment[cols]
    cut = reader != owner
    # one (reader part, node) pair per distinct read, sorted by part then node id
    keys = unique_sorted(reader[cut] * n + cols[cut])
    del rows, cols, reader, owner, cut
    halo_part, halo_node = np.divmod(keys, n)

    order = np.argsort(assignment, kind="stable")  # stable: owned ids stay ascending
    owned = _split_by_part(order, assignment[order], n_parts)
    halo = _split_by_part(halo_node, halo_part, n_parts)

    # the same (reader, node) pairs grouped by (block, owner, reader); the stable sort keeps ids ascending
    block = node_block[halo_node]
    sent = block >= 0
    src, dst, block, node = assignment[halo_node[sent]], halo_part[sent], block[sent], halo_node[sent]
    block_send = _group(node, (block * n_parts + src) * n_parts + dst, lambda k: (k // (n_parts * n_parts), (k // n_parts) % n_parts, k % n_parts))
    send = _group(node, src * n_parts + dst, lambda k: (k // n_parts, k % n_parts))
    return HaloPlan(
        n_parts=n_parts,
        owned=owned,
        halo=halo,
        send=MappingProxyType(send),
        edge_cut=edge_cut,
        block_send=MappingProxyType(block_send),
        n_blocks=n_blocks,
    )


def _group(values: np.ndarray, keys: np.ndarray, decode) -> dict:
    """`{decode(key): ascending values with that key}`, one step per distinct key (not per value)."""
    order = np.lexsort((values, keys))
    keys, values = keys[order], values[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if keys.size else _EMPTY
    ends = np.r_[starts[1:], keys.size].astype(np.int64)
    return {decode(int(keys[s])): _frozen(values[s:e]) for s, e in zip(starts.tolist(), ends.tolist())}


def _split_by_part(values: np.ndarray, parts: np.ndarray, n_parts: int) -> tuple[np.ndarray, ...]:
    """Split `values` (grouped by ascending `parts`) into one read-only array per part."""
    bounds = np.searchsorted(parts, np.arange(n_parts + 1))
    return tuple(_frozen(values[bounds[p] : bounds[p + 1]]) for p in range(n_parts))


def _frozen(array: np.ndarray) -> np.ndarray:
    """An int64 read-only copy of `array`, so a cached plan cannot be changed by accident."""
    out = np.array(array, dtype=np.int64)
    out.flags.writeable = False
    return out
