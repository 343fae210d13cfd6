"""Hierarchical (hosts x devices) and capacity-constrained partitions."""

import numpy as np
import pytest

from partition import Partition, partition_capacity, partition_graph, partition_hierarchical
from partition.capacity import enforce_capacity
from partition.generators import edges_to_csr, grid_edges, random_regular_edges, torus_edges


@pytest.fixture(scope="module")
def torus_csr():
    return edges_to_csr(torus_edges(48, 48), 48 * 48)


# --- hierarchical ---------------------------------------------------------------------------


def test_hosts_first_then_devices(torus_csr):
    part = partition_hierarchical(torus_csr, 3, 4, seed=1)
    assert part.n_parts == 12 and part.hierarchy == (3, 4)
    # the host level is exactly a flat 3-way partition of the whole graph
    hosts = partition_graph(torus_csr, 3, seed=1).assignment
    np.testing.assert_array_equal(part.assignment // 4, hosts)
    # every host splits its own nodes over all of its devices, evenly
    for host in range(3):
        devices = part.assignment[hosts == host] % 4
        counts = np.bincount(devices, minlength=4)
        assert counts.min() > 0 and counts.max() <= 1.05 * counts.mean()


def test_traffic_per_level_adds_up_and_matches_a_count(torus_csr):
    part = partition_hierarchical(torus_csr, 2, 4)
    report = part.report(bytes_per_node=8)
    levels = report["traffic_per_level"]
    assert levels["inter_host_bytes"] + levels["intra_host_bytes"] == report["halo_bytes_per_sweep"]
    # count (node, reading part) pairs that cross hosts, edge by edge
    rows = np.repeat(np.arange(torus_csr.shape[0]), np.diff(torus_csr.indptr))
    reader, owner = part.assignment[rows], part.assignment[torus_csr.indices]
    crossing = {(int(r), int(v)) for r, v, o in zip(reader, torus_csr.indices, owner) if r // 4 != o // 4}
    assert levels["inter_host_bytes"] == 8 * len(crossing)
    assert levels["n_hosts"] == 2 and levels["devices_per_host"] == 4


def test_hierarchy_keeps_inter_host_traffic_low(torus_csr):
    hierarchical = partition_hierarchical(torus_csr, 2, 4).report()["traffic_per_level"]
    scattered = partition_graph(torus_csr, 8, method="random").report(devices_per_host=4)
    assert hierarchical["inter_host_bytes"] < 0.1 * scattered["traffic_per_level"]["inter_host_bytes"]
    # two hosts on a torus: the host cut is two rings, ~2 x 2 x 48 halo nodes
    assert hierarchical["inter_host_bytes"] <= 4 * 48 * 1.5


def test_flat_report_with_devices_per_host(torus_csr):
    report = partition_graph(torus_csr, 8).report(devices_per_host=2)
    assert report["traffic_per_level"]["n_hosts"] == 4
    assert "traffic_per_level" not in partition_graph(torus_csr, 8).report()
    with pytest.raises(ValueError, match="devices_per_host"):
        partition_graph(torus_csr, 8).report(devices_per_host=3)


def test_hierarchical_small_hosts_and_methods():
    csr = edges_to_csr(grid_edges(3, 3), 9)
    part = partition_hierarchical(csr, 3, 3, method="random")
    assert sorted(part.assignment.tolist()) == list(range(9))
    contiguous = partition_hierarchical(csr, 1, 3, method="contiguous")
    assert contiguous.assignment.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]


@pytest.mark.parametrize("hosts, devices", [(0, 2), (2, 0), (-1, 1), (2, 1.5)])
def test_hierarchical_bad_counts(torus_csr, hosts, devices):
    with pytest.raises(ValueError, match="n_hosts|devices_per_host"):
        partition_hierarchical(torus_csr, hosts, devices)


def test_hierarchical_more_parts_than_nodes():
    csr = edges_to_csr(grid_edges(2, 2), 4)
    with pytest.raises(ValueError, match="exceeds the number of nodes"):
        partition_hierarchical(csr, 2, 3)


def test_hierarchy_must_match_n_parts():
    csr = edges_to_csr(grid_edges(2, 2), 4)
    with pytest.raises(ValueError, match="hierarchy"):
        Partition(assignment=np.zeros(4, dtype=int), n_parts=4, csr=csr, hierarchy=(2, 3))


# --- capacity -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["metis", "random", "contiguous"])
def test_capacity_holds(torus_csr, method):
    n = torus_csr.shape[0]
    part = partition_capacity(torus_csr, 300, method=method)
    assert part.n_parts == -(-n // 300) == 8
    assert part.part_sizes().max() <= 300
    assert part.report()["capacity"] == 300


def test_tight_capacity_is_exact(torus_csr):
    # 2304 nodes in 9 parts of 256: no slack at all, METIS alone overshoots
    part = partition_capacity(torus_csr, 256)
    assert part.part_sizes().tolist() == [256] * 9
    random = partition_graph(torus_csr, 9, method="random").report()["edge_cut"]
    assert part.report()["edge_cut"] < 0.15 * random


def test_capacity_with_more_parts_than_needed():
    csr = edges_to_csr(random_regular_edges(1000, 3, seed=2), 1000)
    part = partition_graph(csr, 12, capacity=90)
    assert part.n_parts == 12 and part.part_sizes().max() <= 90


def test_enforce_capacity_moves_only_overflow():
    csr = edges_to_csr(grid_edges(10, 10), 100)
    assignment = (np.arange(100) >= 70).astype(np.int64)  # 70 | 30
    assignment = np.where(np.arange(100) >= 90, 2, assignment)  # 70 | 20 | 10
    fixed = enforce_capacity(csr, assignment, 3, 40)
    assert np.bincount(fixed, minlength=3).max() <= 40
    untouched = assignment != 0
    np.testing.assert_array_equal(fixed[untouched], assignment[untouched])
    # moved nodes went to an adjacent part: they touch their new part
    moved = np.flatnonzero(fixed != assignment)
    assert moved.size == 30
    rows = np.repeat(np.arange(100), np.diff(csr.indptr))
    touching = {(int(r), int(fixed[c])) for r, c in zip(rows, csr.indices)}
    assert all((int(m), int(fixed[m])) in touching for m in moved)


def test_enforce_capacity_without_adjacent_room():
    # part 0 holds isolated nodes: no neighbors to move to, so they go wherever there is room
    csr = edges_to_csr(np.array([[0, 1]]), 10)
    assignment = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    fixed = enforce_capacity(csr, assignment, 3, 4)
    assert np.bincount(fixed, minlength=3).max() <= 4


def test_capacity_too_small(torus_csr):
    with pytest.raises(ValueError, match="capacity too small: 4 parts of at most 100 nodes hold 400 < 2304"):
        partition_capacity(torus_csr, 100, n_parts=4)
    with pytest.raises(ValueError, match="capacity too small"):
        partition_graph(torus_csr, 2, capacity=1000)


@pytest.mark.parametrize("capacity", [0, -5, 2.5, True])
def test_capacity_not_a_positive_integer(torus_csr, capacity):
    with pytest.raises(ValueError, match="capacity must be a positive integer"):
        partition_capacity(torus_csr, capacity)


def test_capacity_rejects_node_weights(torus_csr):
    with pytest.raises(ValueError, match="node_weights"):
        partition_graph(torus_csr, 8, capacity=300, node_weights=np.ones(2304))
