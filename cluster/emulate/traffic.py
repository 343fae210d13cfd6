"""Counting the state that crosses chip links, from the exchange plans the sharded sampler runs.

After each colour step (one entry of `gibbs_spec.sampling_order`) every block sampled in it runs
its `ExchangeRound`s: shard p sends `count[p]` node states to shard q for each `(p, q)` in the
round's pairs. Shard p runs on chip `placement[p]`; a message from chip a to chip b travels the
topology's route from a to b and loads every directed link on it with its bits.

Bits per node state: `state_bits` when given (e.g. 1 for a spin packed as one bit), else the
bytes the exchange moves (the node's `node_shape_struct` size, 1 byte for a `SpinNode` bool)
times 8. `bytes_per_sweep` always counts the bytes the plans move, so it equals
`ShardedProgram.halo_bytes_per_sweep()` and `Partition.report()["halo_bytes_per_sweep"]`.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from .topology import Topology


@dataclasses.dataclass(frozen=True)
class Traffic:
    """Per colour step traffic of one mapping.

    **Fields:**

    - `steps`: the colour steps, each a list of free-block indices.
    - `states`: `[S, K, K]` node states part p sends part q in step s.
    - `chip_bits`: `[S, C, C]` bits chip a sends chip b in step s (end to end).
    - `links`: the directed links `(a, b)`.
    - `link_bits`: `[S, L]` bits each directed link carries in step s.
    - `max_hops`: `[S]` longest route of any message in step s (0 if none).
    - `bit_hops`: `[S]` sum over messages of bits x hops (what link energy is charged on).
    - `step_nodes`: `[S, C]` nodes each chip updates in step s.
    - `bytes_per_sweep`: bytes the exchange plans move per sweep, all shards.
    """

    steps: list
    states: np.ndarray
    chip_bits: np.ndarray
    links: list
    link_bits: np.ndarray
    max_hops: np.ndarray
    bit_hops: np.ndarray
    step_nodes: np.ndarray
    bytes_per_sweep: int

    @property
    def link_bits_per_sweep(self) -> np.ndarray:
        return self.link_bits.sum(axis=0)


def node_bytes(program, b: int) -> int:
    """Bytes of one node state of free block b (its `node_shape_struct`)."""
    spec = program.gibbs_spec
    sd = spec.node_shape_struct[spec.free_blocks[b].node_type]
    return sum(int(np.prod(x.shape, dtype=np.int64)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(sd))


def part_traffic(layout) -> np.ndarray:
    """`[K, K]` node states part p sends part q per sweep, from a `ShardLayout`'s plans.

    **Arguments:**

    - `layout`: the `ShardLayout` (e.g. `ShardedProgram.layout`).
    """
    k = layout.n_parts
    out = np.zeros((k, k), np.int64)
    for rounds in layout.exchange:
        for r in rounds:
            for p, q in r.pairs:
                out[p, q] += int(r.count[p])
    return out


def count_traffic(program, layout, placement: np.ndarray, topology: Topology, state_bits: int | None = None) -> Traffic:
    """Count the traffic of `layout`'s exchange plans with parts placed on chips.

    **Arguments:**

    - `program`: the unsharded `BlockSamplingProgram`.
    - `layout`: its `ShardLayout` (`ShardedProgram.layout`, or `build_layout`'s).
    - `placement`: chip of every part, `[K]`.
    - `topology`: the chip-link `Topology`.
    - `state_bits`: bits per node state on a link; None: the moved bytes x 8.
    """
    spec = program.gibbs_spec
    k, c = layout.n_parts, topology.n_chips
    steps = [list(group) for group in spec.sampling_order]
    links = topology.links()
    link_index = {link: i for i, link in enumerate(links)}
    states = np.zeros((len(steps), k, k), np.int64)
    bits = np.zeros((len(steps), k, k), np.int64)
    step_nodes = np.zeros((len(steps), c), np.int64)
    total_bytes = 0
    for s, blocks in enumerate(steps):
        for b in blocks:
            nb = node_bytes(program, b)
            per_state = 8 * nb if state_bits is None else state_bits
            np.add.at(step_nodes[s], placement, (layout.owned[b] >= 0).sum(axis=1))
            for r in layout.exchange[b]:
                for p, q in r.pairs:
                    n = int(r.count[p])
                    states[s, p, q] += n
                    bits[s, p, q] += n * per_state
                    total_bytes += n * nb
    chip_bits = np.zeros((len(steps), c, c), np.int64)
    link_bits = np.zeros((len(steps), len(links)), np.int64)
    max_hops = np.zeros(len(steps), np.int64)
    bit_hops = np.zeros(len(steps), np.int64)
    for s in range(len(steps)):
        for p, q in zip(*np.nonzero(bits[s])):  # loops over part pairs, not nodes
            a, b = int(placement[p]), int(placement[q])
            chip_bits[s, a, b] += bits[s, p, q]
            route = topology.routes[a, b]
            for link in route:
                link_bits[s, link_index[link]] += bits[s, p, q]
            max_hops[s] = max(max_hops[s], len(route))
            bit_hops[s] += bits[s, p, q] * len(route)
    return Traffic(steps, states, chip_bits, links, link_bits, max_hops, bit_hops, step_nodes, total_bytes)


def partition_traffic(partition) -> np.ndarray:
    """`[K, K]` node states part p sends part q per sweep, from a `Partition`'s halo plan (every
    halo node's state once per sweep to every part that reads it, the same counts the exchange
    plans of `shard_program` carry; used to place parts before the program is sharded).

    **Arguments:**

    - `partition`: a `partition.Partition`.
    """
    k = partition.n_parts
    out = np.zeros((k, k), np.int64)
    pairs = partition.halo_plan().send_pairs()
    if len(pairs):
        out[pairs[:, 0], pairs[:, 1]] = pairs[:, 2]
    return out
