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
from typing import NamedTuple

import numpy as np

from distthrml.block_management import block_state_bytes
from distthrml.sharding.layout import program_node_block

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


class PartTraffic(NamedTuple):
    """Per colour step messages between parts, before they are placed on chips.

    **Fields:** `steps` (the colour steps, lists of free-block indices), `states` and `bits`
    (`[S, K, K]` node states and bits part p sends part q in step s), `part_nodes` (`[S, K]`
    nodes part p updates in step s), `bytes_per_sweep` (bytes the exchange plans move per sweep).
    """

    steps: list
    states: np.ndarray
    bits: np.ndarray
    part_nodes: np.ndarray
    bytes_per_sweep: int


def route_parts(parts: PartTraffic, placement: np.ndarray, topology: Topology) -> Traffic:
    """The `Traffic` of `parts`'s messages with the parts placed on chips: every message loads
    each directed link of its chip pair's route (array-native over part and chip pairs).

    **Arguments:**

    - `parts`: the messages between parts.
    - `placement`: `[K]` chip of every part.
    - `topology`: the chip-link `Topology`.
    """
    steps, states, bits, part_nodes, bytes_per_sweep = parts
    placement = np.asarray(placement, np.int64)
    n_steps, c = len(steps), topology.n_chips
    chip_bits = np.zeros((n_steps, c * c), np.int64)
    pair = (placement[:, None] * c + placement[None, :]).ravel()
    for s in range(n_steps):
        np.add.at(chip_bits[s], pair, bits[s].ravel())
    link_bits = np.asarray(topology.incidence.T @ chip_bits.T).T.astype(np.int64)  # [S, L]
    hops = topology.hops.ravel()
    max_hops = np.where(chip_bits > 0, hops, 0).max(axis=1) if c else np.zeros(n_steps, np.int64)
    bit_hops = chip_bits @ hops
    step_nodes = np.zeros((n_steps, c), np.int64)
    for s in range(n_steps):
        np.add.at(step_nodes[s], placement, part_nodes[s])
    return Traffic(steps, states, chip_bits.reshape(n_steps, c, c), topology.links(), link_bits, max_hops, bit_hops,
                   step_nodes, int(bytes_per_sweep))


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
    k = layout.n_parts
    steps = [list(group) for group in spec.sampling_order]
    states = np.zeros((len(steps), k, k), np.int64)
    bits = np.zeros((len(steps), k, k), np.int64)
    part_nodes = np.zeros((len(steps), k), np.int64)
    total_bytes = 0
    for s, blocks in enumerate(steps):
        for b in blocks:
            nb = block_state_bytes(spec, b)
            per_state = 8 * nb if state_bits is None else state_bits
            part_nodes[s] += (layout.owned[b] >= 0).sum(axis=1)
            for r in layout.exchange[b]:  # loops over exchange rounds and part pairs, not nodes
                for p, q in r.pairs:
                    n = int(r.count[p])
                    states[s, p, q] += n
                    bits[s, p, q] += n * per_state
                    total_bytes += n * nb
    return route_parts(PartTraffic(steps, states, bits, part_nodes, total_bytes), placement, topology)


def partition_part_traffic(program, partition, state_bits: int | None = None) -> PartTraffic:
    """The messages between parts of a `Partition` of the program's interaction graph, before any
    sharded program exists: the partition's halo plan per block (the lists `shard_program`
    executes), summed per colour step.

    **Arguments:**

    - `program`: the unsharded `BlockSamplingProgram`.
    - `partition`: a `partition.Partition` of `distthrml.interaction_graph(program)`.
    - `state_bits`: as for `count_traffic`.
    """
    spec = program.gibbs_spec
    steps = [list(group) for group in spec.sampling_order]
    n_free, k = len(spec.free_blocks), partition.n_parts
    step_of_block = np.zeros(n_free, np.int64)
    for s, blocks in enumerate(steps):
        step_of_block[blocks] = s
    node_block = program_node_block(program)
    if partition.n_nodes != spec.n_nodes:
        raise ValueError(f"the partition has {partition.n_nodes} nodes, the program {spec.n_nodes}")
    plan = partition.with_blocks(node_block).halo_plan()
    bytes_of_block = np.array([block_state_bytes(spec, b) for b in range(n_free)], np.int64)
    per_state = 8 * bytes_of_block if state_bits is None else np.full(n_free, state_bits)
    states = np.zeros((len(steps), k, k), np.int64)
    rows = plan.block_send_rows()  # (block, src, dst, count), one row per part pair and block
    np.add.at(states, (step_of_block[rows[:, 0]], rows[:, 1], rows[:, 2]), rows[:, 3])
    bits = np.zeros_like(states)
    np.add.at(bits, (step_of_block[rows[:, 0]], rows[:, 1], rows[:, 2]), rows[:, 3] * per_state[rows[:, 0]])
    free = node_block >= 0
    part_nodes = np.bincount(step_of_block[node_block[free]] * k + partition.assignment[free], minlength=len(steps) * k)
    return PartTraffic(steps, states, bits, part_nodes.reshape(len(steps), k), int((rows[:, 3] * bytes_of_block[rows[:, 0]]).sum()))
