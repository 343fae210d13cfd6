"""Halo plans: which nodes each part owns, reads from others, and sends to whom."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import numpy as np
import scipy.sparse as sp
from jaxtyping import Int

from .arrays import unique_sorted
from .graph import row_ids


@dataclass(frozen=True)
class HaloPlan:
    """Per-part ownership and halo exchange plan of a partition. All arrays are read-only.

    - `owned[p]`: ascending global ids of the nodes part `p` owns.
    - `halo[p]`: ascending global ids of the nodes part `p` reads but does not own.
    - `send[(src, dst)]`: global ids `src` sends to `dst` each sweep, ascending, which is the
      order in which they appear in `halo[dst]`. Only non-empty pairs are keys; `sends(src, dst)`
      also answers empty pairs.
    - `edge_cut`: number of undirected edges whose endpoints lie in different parts.
    """

    n_parts: int
    owned: tuple[Int[np.ndarray, " owned"], ...]
    halo: tuple[Int[np.ndarray, " halo"], ...]
    send: Mapping[tuple[int, int], Int[np.ndarray, " sent"]]
    edge_cut: int

    def sends(self, src: int, dst: int) -> Int[np.ndarray, " sent"]:
        """Global ids `src` sends to `dst` (empty when none).

        **Arguments:**

        - `src`, `dst`: part ids.
        """
        return self.send.get((src, dst), _EMPTY)

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


_EMPTY = np.zeros(0, dtype=np.int64)
_EMPTY.flags.writeable = False


def build_halo_plan(
    csr: sp.csr_matrix, assignment: Int[np.ndarray, " nodes"], n_parts: int
) -> HaloPlan:
    """Build the halo plan of `assignment` on the graph `csr`, vectorised.

    An entry `(u, v)` of the adjacency structure means u's update reads v's state; when u and v
    lie in different parts, v joins the halo of u's part and v's owner sends it there.

    **Arguments:**

    - `csr`: canonical (symmetric) adjacency structure.
    - `assignment`: part id of every node, in `[0, n_parts)`.
    - `n_parts`: number of parts.
    """
    n = csr.shape[0]
    reader = assignment[row_ids(csr)]
    owner_of_read = assignment[csr.indices]
    cut = reader != owner_of_read
    edge_cut = int(np.count_nonzero(cut)) // 2  # each undirected edge is stored twice
    # one (reader part, node) pair per distinct read, sorted by part then node id
    keys = unique_sorted(reader[cut] * n + csr.indices[cut].astype(np.int64))
    del reader, owner_of_read, cut
    halo_part, halo_node = np.divmod(keys, n)

    order = np.argsort(assignment, kind="stable")  # stable: owned ids stay ascending
    owned = _split_by_part(order, assignment[order], n_parts)
    halo = _split_by_part(halo_node, halo_part, n_parts)

    # regroup the same pairs by (owner, reader); the stable sort keeps node ids ascending
    pair = assignment[halo_node] * n_parts + halo_part
    by_pair = np.argsort(pair, kind="stable")
    pair, sent = pair[by_pair], halo_node[by_pair]
    starts = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]]) if pair.size else _EMPTY
    ends = np.r_[starts[1:], pair.size].astype(np.int64)
    send = {}
    for start, end in zip(starts.tolist(), ends.tolist()):  # one step per (src, dst) pair
        src, dst = divmod(int(pair[start]), n_parts)
        send[(src, dst)] = _frozen(sent[start:end])
    return HaloPlan(
        n_parts=n_parts,
        owned=owned,
        halo=halo,
        send=MappingProxyType(send),
        edge_cut=edge_cut,
    )


def _split_by_part(values: np.ndarray, parts: np.ndarray, n_parts: int) -> tuple[np.ndarray, ...]:
    """Split `values` (grouped by ascending `parts`) into one read-only array per part."""
    bounds = np.searchsorted(parts, np.arange(n_parts + 1))
    return tuple(_frozen(values[bounds[p] : bounds[p + 1]]) for p in range(n_parts))


def _frozen(array: np.ndarray) -> np.ndarray:
    """An int64 read-only copy of `array`, so a cached plan cannot be changed by accident."""
    out = np.array(array, dtype=np.int64)
    out.flags.writeable = False
    return out
