"""Per-shard layout of a program: owned nodes, halo slots, local tables and exchange plans.

Shard p's copy of global-state entry s (one array per node shape/dtype) is laid out as:
for every block stored in s (in spec order) the nodes of that block that p owns, padded to the
largest shard's count (so every block sits at the same static offset on every shard); then the
halo (nodes p's updates read but another shard owns), padded likewise; then one trash slot that
padded writes go to. Every table is a numpy array with a leading axis of length n_parts.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ExchangeRound:
    """One `ppermute` round for one block: each `(p, q)` in `pairs` sends from shard p to shard q;
    every shard sends to at most one shard and receives from at most one.

    `send[p]` are positions in p's block section (padded with 0), `recv[q]` positions in q's
    local state entry (padded with, and all of it for a shard receiving nothing, q's trash slot);
    `count[p]` the real number sent by p.
    """

    pairs: tuple[tuple[int, int], ...]
    send: np.ndarray
    recv: np.ndarray
    count: np.ndarray


@dataclasses.dataclass(frozen=True)
class ShardLayout:
    n_parts: int
    assignment: np.ndarray
    local_size: list[int]  # per state entry
    block_offset: list[int]  # per block: offset of its section in its state entry (same on all shards)
    block_width: list[int]  # per block: padded per-shard count
    owned: list[np.ndarray]  # per block: [P, width] program indices (-1 = padding)
    gather: list[np.ndarray]  # per state entry: [P, local_size] global positions to initialise from
    local_position: np.ndarray  # [P, N] local position of each program index on each shard (-1 = absent)
    exchange: list[list[ExchangeRound]]  # per free block
    owned_global: list[np.ndarray]  # per state entry: [P, owned_width] global positions of owned slots (pad = size)
    owned_local: list[np.ndarray]  # per state entry: [P, owned_width] their local positions (pad = trash)


def _reads(program, b: int) -> np.ndarray:
    """[n_b, total_k] program indices free block b's nodes read (-1 = padding)."""
    tables = [t for tails in program.per_block_interaction_tail_index[b] for t in tails]
    n = len(program.gibbs_spec.free_blocks[b])
    return np.concatenate(tables, axis=1) if tables else np.full((n, 0), -1, np.int32)


def build_layout(program, assignment: np.ndarray, n_parts: int) -> ShardLayout:
    """Lay `program` out over `n_parts` shards given one part per program index.

    **Arguments:**

    - `program`: a `BlockSamplingProgram`.
    - `assignment`: int array, the part of every program index.
    - `n_parts`: the number of parts.
    """
    spec = program.gibbs_spec
    n = spec.n_nodes
    n_sd = len(spec.global_sd_order)
    n_free = len(spec.free_blocks)

    owned, widths = [], []
    for b in range(len(spec.blocks)):
        members = np.arange(spec.block_starts[b], spec.block_starts[b + 1], dtype=np.int64)
        parts = assignment[members]
        per_part = [members[parts == p] for p in range(n_parts)]
        width = max(len(m) for m in per_part)
        table = np.full((n_parts, width), -1, np.int64)
        for p, m in enumerate(per_part):
            table[p, : len(m)] = m
        owned.append(table)
        widths.append(width)

    offsets = [0] * len(spec.blocks)
    sizes = [0] * n_sd
    for s, blocks in enumerate(spec.block_to_global_slice_spec):
        for b in blocks:
            offsets[b] = sizes[s]
            sizes[s] += widths[b]

    local_position = np.full((n_parts, n), -1, np.int64)
    for b, table in enumerate(owned):
        for p in range(n_parts):
            m = table[p][table[p] >= 0]
            local_position[p, m] = offsets[b] + np.arange(len(m))

    # halo: what each shard's free-block nodes read but do not own
    halo = [[np.zeros(0, np.int64) for _ in range(n_sd)] for _ in range(n_parts)]
    for p in range(n_parts):
        read = []
        for b in range(n_free):
            rows = owned[b][p][owned[b][p] >= 0] - spec.block_starts[b]
            r = _reads(program, b)[rows]
            read.append(r[r >= 0])
        read = np.unique(np.concatenate(read)) if read else np.zeros(0, np.int64)
        read = read[assignment[read] != p]
        for s in range(n_sd):
            halo[p][s] = read[spec.node_sd[read] == s]
    halo_width = [max(len(halo[p][s]) for p in range(n_parts)) for s in range(n_sd)]
    local_size = [sizes[s] + halo_width[s] + 1 for s in range(n_sd)]
    for p in range(n_parts):
        for s in range(n_sd):
            local_position[p, halo[p][s]] = sizes[s] + np.arange(len(halo[p][s]))

    gather, owned_global, owned_local = [], [], []
    for s in range(n_sd):
        g = np.zeros((n_parts, local_size[s]), np.int64)
        blocks = spec.block_to_global_slice_spec[s]
        og_width = sum(widths[b] for b in blocks)
        og = np.full((n_parts, og_width), spec.sd_sizes[s], np.int64)
        ol = np.full((n_parts, og_width), local_size[s] - 1, np.int64)
        for p in range(n_parts):
            members = [owned[b][p][owned[b][p] >= 0] for b in blocks] + [halo[p][s]]
            members = np.concatenate(members) if members else np.zeros(0, np.int64)
            g[p, local_position[p, members]] = spec.node_sd_position[members]
            mine = members[: len(members) - len(halo[p][s])]
            og[p, : len(mine)] = spec.node_sd_position[mine]
            ol[p, : len(mine)] = local_position[p, mine]
        gather.append(g)
        owned_global.append(og)
        owned_local.append(ol)

    exchange = []
    for b in range(n_free):
        s = spec.block_sd_index[b]
        wanted = {}
        for p in range(n_parts):
            members = owned[b][p][owned[b][p] >= 0]
            for q in range(n_parts):
                if q != p:
                    w = members[np.isin(members, halo[q][s], assume_unique=True)]
                    if len(w):
                        wanted[p, q] = w
        rounds = []
        for pairs in match_rounds(sorted(wanted)):
            width = max(len(wanted[pq]) for pq in pairs)
            send = np.zeros((n_parts, width), np.int64)
            recv = np.full((n_parts, width), local_size[s] - 1, np.int64)
            count = np.zeros(n_parts, np.int64)
            for p, q in pairs:
                w = wanted[p, q]
                send[p, : len(w)] = local_position[p, w] - offsets[b]
                recv[q, : len(w)] = local_position[q, w]
                count[p] = len(w)
            rounds.append(ExchangeRound(tuple(pairs), send.astype(np.int32), recv.astype(np.int32), count))
        exchange.append(rounds)

    return ShardLayout(
        n_parts, assignment, local_size, offsets, widths, owned, gather, local_position, exchange, owned_global, owned_local
    )


def match_rounds(pairs: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Split directed (sender, receiver) pairs into as few rounds as possible in which every
    shard sends at most once and receives at most once: an edge colouring of the bipartite
    sender/receiver graph with its maximum degree many colours (Koenig), one `ppermute` each.

    **Arguments:**

    - `pairs`: distinct `(p, q)` pairs, `p != q`.
    """
    by_sender: dict[int, dict[int, int]] = {}  # sender -> colour -> receiver
    by_receiver: dict[int, dict[int, int]] = {}  # receiver -> colour -> sender

    def free(colours: dict[int, int]) -> int:
        c = 0
        while c in colours:
            c += 1
        return c

    for u, v in pairs:
        su, rv = by_sender.setdefault(u, {}), by_receiver.setdefault(v, {})
        a, b = free(su), free(rv)
        if a in rv:
            # Swap colours a and b along the path that leaves v on colour a; in a bipartite graph
            # it never reaches u, and afterwards a is free at both ends.
            path, r = [], v
            while a in by_receiver.get(r, {}):
                s_ = by_receiver[r][a]
                path.append((s_, r, a))
                nxt = by_sender[s_].get(b)
                if nxt is None:
                    break
                path.append((s_, nxt, b))
                r = nxt
            for s_, r_, c in path:
                del by_sender[s_][c], by_receiver[r_][c]
            for s_, r_, c in path:
                c2 = b if c == a else a
                by_sender[s_][c2], by_receiver[r_][c2] = r_, s_
        su[a], rv[a] = v, u
    n_rounds = max((c + 1 for colours in by_sender.values() for c in colours), default=0)
    return [sorted((u, v) for u, colours in by_sender.items() for c, v in colours.items() if c == k) for k in range(n_rounds)]
