"""The `Partition` result: assignment, lazily built halo plan, quality report, save/load."""

from __future__ import annotations

import dataclasses
import numbers
import os
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp
from jaxtyping import Int

from .arrays import unique_sorted
from .errors import PartitionError
from .halo import HaloPlan, build_halo_plan

_FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class Partition:
    """A graph split into parts: which part owns every node, and what that costs.

    **Fields:**

    - `assignment`: part id of every node, in `[0, n_parts)` (read-only int64 array).
    - `n_parts`: number of parts (some may be empty).
    - `csr`: the graph's canonical adjacency structure (symmetric, no self loops).
    - `method`: how the assignment was made ("metis", "random", "contiguous", "custom").
    - `seed`: the seed it was made with, or None.
    - `hierarchy`: `(n_hosts, devices_per_host)` for hierarchical partitions, where part
      `host * devices_per_host + device` lives on device `device` of host `host`; else `()`.
    - `capacity`: the most nodes a part may hold, when the partition was made with one.
    - `node_block`: the update block (colour step) of every node, `-1` for nodes never updated,
      or None (every node updated in one block). It decides what the halo plan sends after which
      block, and so what `report()` counts; `with_blocks` sets it.
    """

    assignment: Int[np.ndarray, " nodes"]
    n_parts: int
    csr: sp.csr_matrix = field(repr=False)
    method: str = "custom"
    seed: int | None = None
    hierarchy: tuple[int, ...] = ()
    capacity: int | None = None
    node_block: Int[np.ndarray, " nodes"] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.n_parts, numbers.Integral) or self.n_parts < 1:
            raise PartitionError(f"n_parts must be a positive integer, got {self.n_parts!r}")
        if not isinstance(self.csr, sp.csr_matrix) or self.csr.shape[0] != self.csr.shape[1]:
            raise PartitionError("csr must be a square scipy.sparse.csr_matrix (see partition.as_csr)")
        assignment = np.asarray(self.assignment)
        n = self.csr.shape[0]
        if assignment.shape != (n,):
            raise PartitionError(f"assignment must have shape ({n},) (one part per node), got {assignment.shape}")
        if not np.issubdtype(assignment.dtype, np.integer):
            raise PartitionError(f"assignment must hold integer part ids, got dtype {assignment.dtype}")
        if assignment.size and (assignment.min() < 0 or assignment.max() >= self.n_parts):
            raise PartitionError(
                f"assignment values must lie in [0, {self.n_parts}), "
                f"got range [{assignment.min()}, {assignment.max()}]"
            )
        if self.hierarchy and int(np.prod(self.hierarchy)) != self.n_parts:
            raise PartitionError(f"hierarchy {self.hierarchy} does not multiply to n_parts={self.n_parts}")
        frozen = np.array(assignment, dtype=np.int64)
        frozen.flags.writeable = False
        object.__setattr__(self, "assignment", frozen)
        if self.node_block is not None:
            blocks = np.array(self.node_block, dtype=np.int64)
            if blocks.shape != (n,):
                raise PartitionError(f"node_block must have shape ({n},) (one block per node), got {blocks.shape}")
            if blocks.size and blocks.min() < -1:
                raise PartitionError("node_block values must be block ids >= 0, or -1 for nodes never updated")
            blocks.flags.writeable = False
            object.__setattr__(self, "node_block", blocks)
        object.__setattr__(self, "n_parts", int(self.n_parts))
        object.__setattr__(self, "hierarchy", tuple(int(h) for h in self.hierarchy))

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return int(self.csr.shape[0])

    def part_sizes(self) -> Int[np.ndarray, " parts"]:
        """Number of nodes of every part."""
        return np.bincount(self.assignment, minlength=self.n_parts)

    def with_blocks(self, node_block: Int[np.ndarray, " nodes"] | None) -> "Partition":
        """The same partition with the update block of every node (see `node_block`).

        **Arguments:**

        - `node_block`: block of every node, `-1` for nodes never updated; None for one block.
        """
        same = self.node_block is None if node_block is None else (
            self.node_block is not None and np.array_equal(self.node_block, node_block)
        )
        return self if same else dataclasses.replace(self, node_block=node_block)

    def halo_plan(self) -> HaloPlan:
        """The halo exchange plan (built on first use, then cached)."""
        return self._halo_plan

    @cached_property
    def _halo_plan(self) -> HaloPlan:
        return build_halo_plan(self.csr, self.assignment, self.n_parts, self.node_block)

    def report(
        self, bytes_per_node: float | np.ndarray = 1, *, devices_per_host: int | None = None
    ) -> dict[str, Any]:
        """Quality figures of the partition as a JSON-serialisable dict.

        Keys: `n_nodes`, `n_edges`, `n_parts`, `method`, `seed`, `part_sizes`, `edge_cut` (edges
        between parts), `edge_cut_fraction`, `max_halo`/`mean_halo` (nodes a part reads but does
        not own), `imbalance` (max part size / mean part size - 1), `neighbor_parts_max` (most
        parts one part exchanges with), `halo_bytes_per_sweep` (every halo node's state sent once
        to every part that reads it, after its block's update; nodes never updated are not sent), `bytes_per_node`; for hierarchical partitions (or when
        `devices_per_host` is given) `traffic_per_level` splits those bytes into
        `inter_host_bytes` and `intra_host_bytes`.

        **Arguments:**

        - `bytes_per_node`: size of one node's state, a number or one number per node.
        - `devices_per_host`: group consecutive parts into hosts of this many devices to
          report per-level traffic of a flat partition.
        """
        plan = self.halo_plan()
        node_bytes = _bytes_per_node(bytes_per_node, self.n_nodes)
        sizes = self.part_sizes()
        halo_sizes = plan.halo_sizes()
        pairs = plan.send_pairs()
        pair_bytes = np.array(
            [_sent_bytes(plan.send[(int(s), int(d))], node_bytes) for s, d, _ in pairs], dtype=np.float64
        )
        n_edges = self.csr.nnz // 2
        partners = np.zeros(self.n_parts, dtype=np.int64)
        if pairs.size:
            # a symmetric graph sends both ways; count each partner of a part once
            unordered = np.sort(pairs[:, :2], axis=1)
            linked = unique_sorted(unordered[:, 0] * self.n_parts + unordered[:, 1])
            partners = np.bincount(
                np.concatenate(np.divmod(linked, self.n_parts)), minlength=self.n_parts
            )
        report: dict[str, Any] = {
            "n_nodes": self.n_nodes,
            "n_edges": int(n_edges),
            "n_parts": self.n_parts,
            "method": self.method,
            "seed": self.seed,
            "part_sizes": [int(s) for s in sizes],
            "edge_cut": int(plan.edge_cut),
            "edge_cut_fraction": float(plan.edge_cut / n_edges) if n_edges else 0.0,
            "max_halo": int(halo_sizes.max()),
            "mean_halo": float(halo_sizes.mean()),
            "imbalance": float(sizes.max() / (self.n_nodes / self.n_parts) - 1.0),
            "neighbor_parts_max": int(partners.max()),
            "halo_bytes_per_sweep": _number(pair_bytes.sum()),
            "bytes_per_node": _number(bytes_per_node) if np.ndim(bytes_per_node) == 0 else "per-node",
        }
        if self.capacity is not None:
            report["capacity"] = self.capacity
        per_host = devices_per_host or (self.hierarchy[1] if self.hierarchy else None)
        if per_host is not None:
            report["traffic_per_level"] = _traffic_per_level(pairs, pair_bytes, self.n_parts, per_host)
        return report

    def save(self, path: str | os.PathLike) -> None:
        """Write the partition (assignment, graph structure, metadata) to an `.npz` file.

        **Arguments:**

        - `path`: the file to write (written as given, no suffix added).
        """
        with open(os.fspath(path), "wb") as handle:
            np.savez(
                handle,
                format_version=np.int64(_FORMAT_VERSION),
                assignment=self.assignment,
                n_parts=np.int64(self.n_parts),
                indptr=self.csr.indptr,
                indices=self.csr.indices,
                method=np.str_(self.method),
                seed=np.int64(-1 if self.seed is None else self.seed),
                has_seed=np.bool_(self.seed is not None),
                hierarchy=np.asarray(self.hierarchy, dtype=np.int64),
                capacity=np.int64(-1 if self.capacity is None else self.capacity),
                **({} if self.node_block is None else {"node_block": self.node_block}),
            )

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Partition":
        """Read a partition written by `save`.

        **Arguments:**

        - `path`: the `.npz` file.

        **Raises:** `FileNotFoundError` when the file is missing, `PartitionError` naming the file
        when it is not a valid partition file.
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"partition file not found: {path}")
        try:
            # our own file object: np.load leaks the one it opens when the archive is damaged
            with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as data:
                version = int(data["format_version"])
                if version != _FORMAT_VERSION:
                    raise PartitionError(f"unsupported format version {version}")
                n = data["assignment"].shape[0]
                csr = sp.csr_matrix(
                    (np.ones(data["indices"].shape[0], dtype=np.int8), data["indices"], data["indptr"]),
                    shape=(n, n),
                )
                return cls(
                    assignment=data["assignment"],
                    n_parts=int(data["n_parts"]),
                    csr=csr,
                    method=str(data["method"]),
                    seed=int(data["seed"]) if bool(data["has_seed"]) else None,
                    hierarchy=tuple(int(h) for h in data["hierarchy"]),
                    capacity=None if int(data["capacity"]) < 0 else int(data["capacity"]),
                    node_block=data["node_block"] if "node_block" in data else None,
                )
        except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile) as error:
            raise PartitionError(f"{path} is not a valid partition file: {error}") from error


def _bytes_per_node(bytes_per_node: float | np.ndarray, n: int) -> float | np.ndarray:
    """Validate a state size: a non-negative number, or one per node."""
    values = np.asarray(bytes_per_node, dtype=np.float64)
    if values.ndim == 0:
        if not np.isfinite(values) or values < 0:
            raise PartitionError(f"bytes_per_node must be a non-negative number, got {bytes_per_node!r}")
        return float(values)
    if values.shape != (n,):
        raise PartitionError(f"bytes_per_node must be a number or have shape ({n},), got {values.shape}")
    if not np.all(np.isfinite(values)) or values.min() < 0:
        raise PartitionError("bytes_per_node must be finite and non-negative")
    return values


def _sent_bytes(nodes: np.ndarray, node_bytes: float | np.ndarray) -> float:
    """Bytes of the states of `nodes`."""
    if isinstance(node_bytes, float):
        return nodes.size * node_bytes
    return float(node_bytes[nodes].sum())


def _number(value: Any) -> int | float:
    """A python int when the value is integral, else a float (keeps reports JSON-friendly)."""
    value = float(value)
    return int(value) if value.is_integer() else value


def _traffic_per_level(
    pairs: np.ndarray, pair_bytes: np.ndarray, n_parts: int, devices_per_host: int
) -> dict[str, Any]:
    """Split the halo traffic into bytes crossing hosts and bytes staying inside a host."""
    if devices_per_host < 1 or n_parts % devices_per_host:
        raise PartitionError(
            f"devices_per_host must divide n_parts={n_parts}, got {devices_per_host}"
        )
    inter = pairs[:, 0] // devices_per_host != pairs[:, 1] // devices_per_host
    return {
        "n_hosts": n_parts // devices_per_host,
        "devices_per_host": int(devices_per_host),
        "inter_host_bytes": _number(pair_bytes[inter].sum()),
        "intra_host_bytes": _number(pair_bytes[~inter].sum()),
        "inter_host_pairs": int(np.count_nonzero(inter)),
    }
