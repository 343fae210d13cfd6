"""Per-shard layout of a program: owned nodes, halo slots and exchange plans, from the
partition's halo plan (`partition.HaloPlan`, the one place halos are derived).

Shard p's copy of global-state entry s (one array per node shape/dtype) is laid out as:

1. for every block stored in s (in spec order) the nodes of that block that p owns, padded to
   the largest shard's count, so every block sits at the same static offset on every shard;
2. for every free block stored in s, its *receive region*: the rows its exchange writes, laid
   out exactly as the messages arrive (one slot per `ppermute` round, or one slot per sending
   part for `all_to_all`), so that receiving is one contiguous write at a static offset;
3. the halo nodes that are never sent (clamped nodes other shards own), padded;
4. one spare row that padded writes and reads use.

Tables have a leading axis of length n_parts.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from jaxtyping import Int

EXCHANGES = ("auto", "ppermute", "all_to_all")
# "auto" moves a block's states with one all_to_all while its padded buffers carry at most this
# many times the bytes of its messages, else with ppermute rounds (see distthrml.sharding.exchange)
AUTO_PADDING = 4


@dataclasses.dataclass(frozen=True)
class ExchangeRound:
    """One round of a block's messages: each `(p, q)` in `pairs` sends from shard p to shard q;
    every shard sends to at most one shard and receives from at most one.

    `send[p]` are positions in p's block section (padded with 0), `count[p]` the real number p
    sends; with the `ppermute` transport the receivers write the round's `width` rows at local
    row `offset`.
    """

    pairs: tuple[tuple[int, int], ...]
    send: np.ndarray
    count: np.ndarray
    offset: int

    @property
    def width(self) -> int:
        return self.send.shape[1]


@dataclasses.dataclass(frozen=True)
class AllToAll:
    """A block's messages as one `all_to_all`: `send [P, P * width]` positions in the sender's
    block section (the message to q in slot q, padded with 0); every shard writes what it
    receives (the message from p in slot p) at local row `offset`."""

    send: np.ndarray
    width: int
    offset: int
class LocalIndex:
    """Where each (shard, program index) lives in that shard's local state, vectorised: a sorted
    array of `shard * n + program index` keys for every owned and halo node."""

    def __init__(self, n: int, parts: np.ndarray, program_index: np.ndarray, rows: np.ndarray):
        self.n = n
        keys = parts.astype(np.int64) * n + program_index.astype(np.int64)
        order = np.argsort(keys, kind="stable")
        self.keys, self.rows = keys[order], rows.astype(np.int64)[order]

    def lookup(self, parts: Int[np.ndarray, "..."], program_index: Int[np.ndarray, "..."]) -> Int[np.ndarray, "..."]:
        """Local rows of `program_index` on `parts` (broadcast), -1 where the shard lacks the node."""
        keys = np.asarray(parts, np.int64) * self.n + np.asarray(program_index, np.int64)
        if self.keys.size == 0:
            return np.full(keys.shape, -1, np.int64)
        at = np.minimum(np.searchsorted(self.keys, keys), self.keys.size - 1)
        return np.where((self.keys[at] == keys) & (np.asarray(program_index) >= 0), self.rows[at], -1)


@dataclasses.dataclass(frozen=True, eq=False)  # identity: it is static data of jitted programs
class ShardLayout:
    """The per-shard layout (see the module docstring).

    **Fields:**

    - `n_parts`, `assignment`: the parts and the part of every program index.
    - `local_size`: per state entry, rows of a shard's local copy (spare slot included).
    - `block_offset`, `block_width`: per block, its section's offset and (padded) width.
    - `owned`: per block, `[P, width]` program indices of the owned nodes (-1 = padding).
    - `gather`: per state entry, `[P, local_size]` global-state positions to initialise from.
    - `index`: the `LocalIndex` of every owned and halo node.
    - `exchange`: per free block, its messages as `ExchangeRound`s (what moves: the partition's
        block sends, matched into rounds).
    - `transport`: per free block, `"ppermute"` (the rounds) or `"all_to_all"` (`all_to_all`).
    - `all_to_all`: per free block, its `AllToAll` (None unless that is its transport).
    - `owned_global`, `owned_local`: per state entry, `[P, owned_width]` global positions (pad =
        entry size) and local rows (pad = spare slot) of every shard's owned nodes.
    """

    n_parts: int
    assignment: np.ndarray
    local_size: list[int]
    block_offset: list[int]
    block_width: list[int]
    owned: list[np.ndarray]
    gather: list[np.ndarray]
    index: LocalIndex
    exchange: list[list[ExchangeRound]]
    transport: tuple[str, ...]
    all_to_all: list[AllToAll | None]
    owned_global: list[np.ndarray]
    owned_local: list[np.ndarray]

    def spare_row(self, entry: int) -> int:
        """The spare (padding) row of a state entry."""
        return self.local_size[entry] - 1


def build_layout(program, partition, exchange: str = "auto") -> ShardLayout:
    """Lay `program` out over the parts of `partition`, executing its halo plan.

    **Arguments:**

    - `program`: a `BlockSamplingProgram`.
    - `partition`: a `partition.Partition` of the program's interaction graph whose
        `node_block` is the program's (`program_node_block`).
    - `exchange`: the transport of every block's messages, one of `EXCHANGES`.
    """
    if exchange not in EXCHANGES:
        raise ValueError(f"exchange must be one of {EXCHANGES}, got {exchange!r}")
    spec = program.gibbs_spec
    n, n_parts, n_sd, n_free = spec.n_nodes, partition.n_parts, len(spec.global_sd_order), len(spec.free_blocks)
    plan = partition.halo_plan()
    starts = spec.block_starts

    owned, widths = [], []
    for b in range(len(spec.blocks)):
        per_part = [o[np.searchsorted(o, starts[b]) : np.searchsorted(o, starts[b + 1])] for o in plan.owned]
        width = max(len(m) for m in per_part)
        table = np.full((n_parts, width), -1, np.int64)
        for p, m in enumerate(per_part):
            table[p, : len(m)] = m
        owned.append(table)
        widths.append(width)
    offsets, rows_used = [0] * len(spec.blocks), [0] * n_sd
    for s, blocks in enumerate(spec.block_to_global_slice_spec):
        for b in blocks:
            offsets[b] = rows_used[s]
            rows_used[s] += widths[b]

    # what every free block sends (one step per block and part pair, not per node)
    messages = [{} for _ in range(n_free)]
    for (b, p, q), ids in plan.block_send.items():
        messages[b][p, q] = ids
    rounds = [match_rounds(sorted(m)) for m in messages]
    transport = tuple(_transport(exchange, m, r, n_parts) for m, r in zip(messages, rounds))

    # every node with its local row, all shards at once: owned sections ...
    member_part, member_index, member_row = [], [], []
    for b, table in enumerate(owned):
        p, col = np.nonzero(table >= 0)
        member_part.append(p)
        member_index.append(table[p, col])
        member_row.append(offsets[b] + col)
    # ... receive regions, laid out as the messages arrive ...
    slot = [[] for _ in range(n_free)]  # per block: (pairs, width, offset) of every slot
    for s, blocks in enumerate(spec.block_to_global_slice_spec):
        for b in (b for b in blocks if b < n_free and messages[b]):
            if transport[b] == "ppermute":
                for pairs in rounds[b]:
                    width = max(len(messages[b][pq]) for pq in pairs)
                    slot[b].append((pairs, width, rows_used[s]))
                    for p, q in pairs:
                        ids = messages[b][p, q]
                        member_part.append(np.full(len(ids), q))
                        member_index.append(ids)
                        member_row.append(rows_used[s] + np.arange(len(ids)))
                    rows_used[s] += width
            else:
                width = max(len(ids) for ids in messages[b].values())
                slot[b].append((None, width, rows_used[s]))
                for (p, q), ids in messages[b].items():
                    member_part.append(np.full(len(ids), q))
                    member_index.append(ids)
                    member_row.append(rows_used[s] + p * width + np.arange(len(ids)))
                rows_used[s] += n_parts * width
    # ... and halo nodes that are never sent
    received = np.zeros(0, np.int64)
    if plan.block_send:
        received = np.unique(np.concatenate([q * n + ids for (_, _, q), ids in plan.block_send.items()]))
    static = [[np.zeros(0, np.int64)] * n_sd for _ in range(n_parts)]
    for p, h in enumerate(plan.halo):
        h = h[~np.isin(p * n + h, received, assume_unique=True)]
        static[p] = [h[spec.node_sd[h] == s] for s in range(n_sd)]
    for s in range(n_sd):
        width = max(len(static[p][s]) for p in range(n_parts))
        for p in range(n_parts):
            member_part.append(np.full(len(static[p][s]), p))
            member_index.append(static[p][s])
            member_row.append(rows_used[s] + np.arange(len(static[p][s])))
        rows_used[s] += width
    local_size = [r + 1 for r in rows_used]
    parts, members, rows = (np.concatenate(x).astype(np.int64) for x in (member_part, member_index, member_row))
    index = LocalIndex(n, parts, members, rows)

    gather, owned_global, owned_local = [], [], []
    entry_of = spec.node_sd[members]
    for s in range(n_sd):
        here = entry_of == s
        g = np.zeros((n_parts, local_size[s]), np.int64)
        g[parts[here], rows[here]] = spec.node_sd_position[members[here]]
        gather.append(g)
        blocks = spec.block_to_global_slice_spec[s]
        og = np.full((n_parts, sum(widths[b] for b in blocks)), spec.sd_sizes[s], np.int64)
        ol = np.full(og.shape, local_size[s] - 1, np.int64)
        column = 0
        for b in blocks:
            valid = owned[b] >= 0
            og[:, column : column + widths[b]] = np.where(valid, spec.node_sd_position[np.maximum(owned[b], 0)], spec.sd_sizes[s])
            ol[:, column : column + widths[b]] = np.where(valid, offsets[b] + np.arange(widths[b]), local_size[s] - 1)
            column += widths[b]
        owned_global.append(og)
        owned_local.append(ol)

    exchange, all_to_all = [], []
    for b in range(n_free):
        block_rounds = []
        for pairs in rounds[b]:
            width = max(len(messages[b][pq]) for pq in pairs)
            send = np.zeros((n_parts, width), np.int64)
            count = np.zeros(n_parts, np.int64)
            for p, q in pairs:
                ids = messages[b][p, q]
                send[p, : len(ids)] = index.lookup(p, ids) - offsets[b]
                count[p] = len(ids)
            offset = next((o for prs, _, o in slot[b] if prs == pairs), -1)
            block_rounds.append(ExchangeRound(tuple(pairs), send.astype(np.int32), count, offset))
        exchange.append(block_rounds)
        all_to_all.append(None)
        if transport[b] == "all_to_all" and messages[b]:
            _, width, offset = slot[b][0]
            send = np.zeros((n_parts, n_parts * width), np.int32)
            for (p, q), ids in messages[b].items():
                send[p, q * width : q * width + len(ids)] = index.lookup(p, ids) - offsets[b]
            all_to_all[b] = AllToAll(send, width, offset)

    return ShardLayout(
        n_parts, np.asarray(partition.assignment, np.int64), local_size, offsets, widths, owned, gather, index,
        exchange, transport, all_to_all, owned_global, owned_local,
    )


def _transport(exchange: str, messages: dict, rounds: list, n_parts: int) -> str:
    """A block's transport: `exchange`, or for `"auto"` all_to_all while its padding stays within
    `AUTO_PADDING` times the messages."""
    if exchange != "auto":
        return exchange
    sent = sum(len(ids) for ids in messages.values())
    padded = n_parts**2 * max((len(ids) for ids in messages.values()), default=0)
    return "all_to_all" if sent and padded <= AUTO_PADDING * sent else "ppermute"


def program_node_block(program) -> np.ndarray:
    """The update block of every program index: its free block, or -1 for clamped nodes."""
    spec = program.gibbs_spec
    block = spec.node_block.astype(np.int64)
    return np.where(block < len(spec.free_blocks), block, -1)


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
