"""Lowering interaction groups to padded per-block index tables, with vectorised numpy.

For every free block b and every interaction group g with heads in b, the lowered form is:
`rows [n_b, k]` (which rows of g each node of b is the head of; k = the most rows any node of b
heads), `active [n_b, k]` (False marks padding), and per tail block of g its global-state entry
and `positions [n_b, k]` in it. This is THRML's `BlockSamplingProgram` layout, computed with
sorts and scatters instead of per-node dictionaries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from jaxtyping import Bool, Int

from .errors import InteractionError, ProgramError


@dataclasses.dataclass(frozen=True)
class LoweredInteraction:
    """One interaction group as seen by one free block (see the module docstring)."""

    group: int
    rows: Int[np.ndarray, "n k"]
    active: Bool[np.ndarray, "n k"]
    tail_sd: tuple[int, ...]
    tail_positions: tuple[Int[np.ndarray, "n k"], ...]
    tail_program_index: tuple[Int[np.ndarray, "n k"], ...]


def _occurrence_rank(sorted_keys: np.ndarray) -> np.ndarray:
    """For a sorted key array, each entry's index within its run of equal keys."""
    n = len(sorted_keys)
    index = np.arange(n, dtype=np.int32)
    starts = np.ones(n, dtype=bool)
    starts[1:] = sorted_keys[1:] != sorted_keys[:-1]
    run_start = np.maximum.accumulate(np.where(starts, index, 0))
    index -= run_start
    return index


def lower_interaction_groups(spec, interaction_groups: Sequence) -> list[list[LoweredInteraction]]:
    """Lower `interaction_groups` against a `BlockGibbsSpec`; one list per free block.

    **Arguments:**

    - `spec`: the `BlockGibbsSpec` (free blocks first, then clamped, in its `blocks`).
    - `interaction_groups`: the `InteractionGroup`s of the program.
    """
    n_free = len(spec.free_blocks)
    per_block: list[list[LoweredInteraction]] = [[] for _ in range(n_free)]
    for g, group in enumerate(interaction_groups):
        head_p = spec.node_index.lookup(group.head_nodes.ids)
        n_free_nodes = spec.block_starts[n_free]
        if len(head_p) and head_p.min() >= 0 and head_p.max() < n_free_nodes:
            hp, selected = head_p, None  # every head is a free node (the usual case)
        else:
            selected = np.flatnonzero((head_p >= 0) & (head_p < n_free_nodes)).astype(np.int32)
            if len(selected) == 0:
                continue
            hp = head_p[selected]
        order = np.argsort(hp, kind="stable").astype(np.int32)
        hp_sorted = hp[order]
        rows_sorted = order if selected is None else selected[order]
        del order
        rank = _occurrence_rank(hp_sorted)
        block_sorted = spec.node_block[hp_sorted]

        tail_p_sel = []
        for k, tail in enumerate(group.tail_nodes):
            tp = spec.node_index.lookup(tail.ids[rows_sorted])
            missing = np.flatnonzero(tp < 0)
            if len(missing):
                row = int(rows_sorted[missing[0]])
                raise InteractionError(
                    f"interaction group {g}: tail block {k} row {row} reads "
                    f"{tail.node_type.__name__}(id={tail.ids[row]}), a node in no block of the program "
                    "(every node an update reads must be in a free or clamped block)."
                )
            sds = spec.node_sd[tp]
            if sds.min() != sds.max():
                raise InteractionError(
                    f"interaction group {g}: tail block {k} mixes nodes stored in different global "
                    f"state entries ({int(sds.min())} and {int(sds.max())}); a tail block must hold one node type."
                )
            tail_p_sel.append(tp)

        # block_sorted is sorted (blocks are contiguous ranges of program indices)
        run_starts = np.flatnonzero(np.diff(block_sorted)) + 1
        lows = np.concatenate([[0], run_starts])
        highs = np.concatenate([run_starts, [len(block_sorted)]])
        for b, lo, hi in zip(block_sorted[lows].tolist(), lows, highs):
            n_b = len(spec.free_blocks[b])
            k_max = int(rank[lo:hi].max()) + 1
            pos = hp_sorted[lo:hi] - spec.block_starts[b]
            r = rank[lo:hi]
            rows = np.zeros((n_b, k_max), dtype=np.int32)
            active = np.zeros((n_b, k_max), dtype=bool)
            rows[pos, r] = rows_sorted[lo:hi]
            active[pos, r] = True
            tail_sd, tail_pos, tail_prog = [], [], []
            for tp in tail_p_sel:
                prog = np.full((n_b, k_max), -1, dtype=np.int32)
                prog[pos, r] = tp[lo:hi]
                sd_pos = np.zeros((n_b, k_max), dtype=np.int32)
                sd_pos[pos, r] = spec.node_sd_position[tp[lo:hi]]
                tail_sd.append(int(spec.node_sd[tp[lo]]))
                tail_pos.append(sd_pos)
                tail_prog.append(prog)
            per_block[b].append(
                LoweredInteraction(g, rows, active, tuple(tail_sd), tuple(tail_pos), tuple(tail_prog))
            )
    return per_block


def check_simultaneous_updates(spec, lowered: list[list[LoweredInteraction]]) -> None:
    """Raise if a node's update reads another node that is sampled at the same algorithmic time
    (same superblock): block Gibbs would then not sample the model's distribution.

    A node reading its own state is allowed (e.g. a Metropolis-within-Gibbs update).
    """
    superblock_of_node = np.full(spec.n_nodes, -1, dtype=np.int32)
    for s, members in enumerate(spec.sampling_order):
        for b in members:
            superblock_of_node[spec.block_starts[b] : spec.block_starts[b + 1]] = s
    for b, entries in enumerate(lowered):
        s = superblock_of_node[spec.block_starts[b]]
        head_p = spec.block_starts[b] + np.arange(len(spec.free_blocks[b]))
        for entry in entries:
            for k, tail_p in enumerate(entry.tail_program_index):
                clash = entry.active & (tail_p >= 0) & (tail_p != head_p[:, None])
                clash &= superblock_of_node[np.maximum(tail_p, 0)] == s
                if clash.any():
                    i, j = np.argwhere(clash)[0]
                    other = int(tail_p[i, j])
                    ob = int(spec.node_block[other])
                    raise ProgramError(
                        f"free block {b} node {i} ({spec.free_blocks[b].node_type.__name__}"
                        f"(id={spec.free_blocks[b].ids[i]})) reads the state of node "
                        f"{other - spec.block_starts[ob]} of free block {ob} "
                        f"({spec.blocks[ob].node_type.__name__}(id={spec.blocks[ob].ids[other - spec.block_starts[ob]]})) "
                        f"through interaction group {entry.group} (tail {k}), but both are sampled at the "
                        f"same time (superblock {s}). Nodes updated together must not interact: split the "
                        "blocks with a proper graph coloring (or pass allow_simultaneous_reads=True to sample "
                        "such nodes from each other's previous states, as THRML does)."
                    )
