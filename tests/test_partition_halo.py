"""Halo plans against a brute-force construction, and the send/receive ordering contract."""

import numpy as np
import pytest

from partition import Partition, build_halo_plan, partition_graph
from partition.generators import edges_to_csr, grid_edges, random_sparse_edges, torus_edges


def brute_force_plan(edges, assignment, n_parts):
    owned = [sorted(np.flatnonzero(assignment == p).tolist()) for p in range(n_parts)]
    halo = [set() for _ in range(n_parts)]
    for u, v in edges.tolist():
        if assignment[u] != assignment[v]:
            halo[assignment[u]].add(v)
            halo[assignment[v]].add(u)
    send = {}
    for dst in range(n_parts):
        for node in halo[dst]:
            send.setdefault((int(assignment[node]), dst), []).append(node)
    return owned, [sorted(h) for h in halo], {k: sorted(v) for k, v in send.items()}


@pytest.mark.parametrize("method", ["metis", "random", "contiguous"])
@pytest.mark.parametrize("seed", [0, 1])
def test_plan_matches_brute_force(method, seed):
    edges = random_sparse_edges(400, 4.0, seed=seed)
    csr = edges_to_csr(edges, 400)
    part = partition_graph(csr, 6, method=method, seed=seed)
    plan = part.halo_plan()
    owned, halo, send = brute_force_plan(edges, part.assignment, 6)
    assert [o.tolist() for o in plan.owned] == owned
    assert [h.tolist() for h in plan.halo] == halo
    assert {k: v.tolist() for k, v in plan.send.items()} == send
    assert plan.edge_cut == part.report()["edge_cut"]


def test_send_order_is_the_receivers_halo_order():
    csr = edges_to_csr(torus_edges(30, 30), 900)
    plan = partition_graph(csr, 5, method="random", seed=3).halo_plan()
    for dst in range(5):
        received = np.zeros(plan.halo[dst].size, dtype=bool)
        for src in range(5):
            nodes = plan.sends(src, dst)
            positions = plan.recv_positions(src, dst)
            # the sent nodes land, in order, on the halo slots holding the same ids
            np.testing.assert_array_equal(plan.halo[dst][positions], nodes)
            assert np.all(np.diff(nodes) > 0)
            assert np.all(np.diff(positions) > 0)
            assert not received[positions].any()
            received[positions] = True
        assert received.all()  # every halo slot is filled by exactly one sender


def test_owned_partition_the_nodes_and_halos_are_foreign():
    csr = edges_to_csr(torus_edges(20, 20), 400)
    part = partition_graph(csr, 4)
    plan = part.halo_plan()
    everything = np.sort(np.concatenate(plan.owned))
    np.testing.assert_array_equal(everything, np.arange(400))
    for p in range(4):
        assert np.all(part.assignment[plan.owned[p]] == p)
        assert np.all(part.assignment[plan.halo[p]] != p)
        assert np.all(np.diff(plan.halo[p]) > 0)
    for (src, dst), nodes in plan.send.items():
        assert src != dst and np.all(part.assignment[nodes] == src)


def test_plan_is_cached_and_read_only():
    csr = edges_to_csr(grid_edges(8, 8), 64)
    part = partition_graph(csr, 4)
    plan = part.halo_plan()
    assert part.halo_plan() is plan
    with pytest.raises(ValueError):
        plan.owned[0][0] = 5
    with pytest.raises(TypeError):
        plan.send[(0, 1)] = np.zeros(1)


def test_empty_sends_and_neighbors():
    # a path 0-1-2-3 in 4 parts: each part talks only to the next one
    csr = edges_to_csr(np.array([[0, 1], [1, 2], [2, 3]]), 4)
    part = Partition(assignment=np.arange(4), n_parts=4, csr=csr)
    plan = part.halo_plan()
    assert plan.sends(0, 3).size == 0
    assert plan.sends(0, 1).tolist() == [0]
    assert plan.neighbor_parts(1).tolist() == [0, 2]
    assert plan.halo_sizes().tolist() == [1, 2, 2, 1]
    assert plan.send_pairs().tolist() == [[0, 1, 1], [1, 0, 1], [1, 2, 1], [2, 1, 1], [2, 3, 1], [3, 2, 1]]
    assert part.report()["neighbor_parts_max"] == 2


def test_build_directly_matches_partition():
    csr = edges_to_csr(torus_edges(10, 10), 100)
    part = partition_graph(csr, 3, method="random")
    plan = build_halo_plan(csr, part.assignment, 3)
    assert [h.tolist() for h in plan.halo] == [h.tolist() for h in part.halo_plan().halo]


def test_a_part_may_be_empty():
    csr = edges_to_csr(grid_edges(2, 2), 4)
    part = Partition(assignment=np.array([0, 0, 2, 2]), n_parts=3, csr=csr)
    plan = part.halo_plan()
    assert plan.owned[1].size == 0 and plan.halo[1].size == 0
    assert part.report()["part_sizes"] == [2, 0, 2]


def brute_force_block_plan(edges, assignment, n_parts, node_block):
    """Reads only by updated nodes; block b's nodes sent after b's update to each part reading them."""
    halo = [set() for _ in range(n_parts)]
    for u, v in edges.tolist():
        for reader, read in ((u, v), (v, u)):
            if node_block[reader] >= 0 and assignment[reader] != assignment[read]:
                halo[assignment[reader]].add(read)
    block_send = {}
    for dst in range(n_parts):
        for node in halo[dst]:
            if node_block[node] >= 0:
                block_send.setdefault((int(node_block[node]), int(assignment[node]), dst), []).append(node)
    return [sorted(h) for h in halo], {k: sorted(v) for k, v in block_send.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_block_plan_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    edges = random_sparse_edges(300, 3.5, seed=seed)
    csr = edges_to_csr(edges, 300)
    node_block = rng.integers(-1, 3, size=300)  # three update blocks, and nodes never updated
    part = partition_graph(csr, 5, method="random", seed=seed).with_blocks(node_block)
    plan = part.halo_plan()
    halo, block_send = brute_force_block_plan(edges, part.assignment, 5, node_block)
    assert [h.tolist() for h in plan.halo] == halo
    assert {k: v.tolist() for k, v in plan.block_send.items()} == block_send
    # per sweep, src sends dst the union over blocks; never-updated nodes are never sent
    union = {}
    for (_, src, dst), ids in block_send.items():
        union.setdefault((src, dst), []).extend(ids)
    assert {k: v.tolist() for k, v in plan.send.items()} == {k: sorted(v) for k, v in union.items()}
    sent = np.concatenate(list(plan.send.values()))
    assert np.all(node_block[sent] >= 0)
    assert part.report()["halo_bytes_per_sweep"] == sum(len(v) for v in block_send.values())
    # the same partition without blocks reads from every node and sends everything it reads
    assert part.with_blocks(None).report()["halo_bytes_per_sweep"] == sum(len(h) for h in brute_force_plan(edges, part.assignment, 5)[1])


def test_with_blocks_keeps_the_plan_when_the_blocks_are_equal():
    csr = edges_to_csr(torus_edges(10, 10), 100)
    blocks = np.arange(100) % 2
    part = partition_graph(csr, 4, method="metis").with_blocks(blocks)
    assert part.with_blocks(blocks.copy()) is part
    assert part.with_blocks(None) is not part
    with pytest.raises(ValueError, match="node_block must have shape"):
        part.with_blocks(np.zeros(99, int))
    with pytest.raises(ValueError, match="-1 for nodes never updated"):
        part.with_blocks(np.full(100, -2))
