"""partition_graph: methods, determinism, report figures against independent counts, errors."""

import json

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

from partition import Partition, as_csr, partition_graph
from partition.generators import edges_to_csr, grid_edges, random_regular_edges, torus_edges


def torus(rows, cols):
    edges = torus_edges(rows, cols)
    return edges, edges_to_csr(edges, rows * cols)


def brute_force_report(edges, assignment, n_parts, bytes_per_node=1):
    """Report figures counted edge by edge with python sets (independent of the package)."""
    reads = [set() for _ in range(n_parts)]
    cut = 0
    for u, v in edges.tolist():
        pu, pv = assignment[u], assignment[v]
        if pu != pv:
            cut += 1
            reads[pu].add(v)
            reads[pv].add(u)
    partners = [set() for _ in range(n_parts)]
    for p in range(n_parts):
        for v in reads[p]:
            partners[p].add(assignment[v])
            partners[assignment[v]].add(p)
    halo = [len(r) for r in reads]
    sizes = np.bincount(assignment, minlength=n_parts)
    return {
        "edge_cut": cut,
        "max_halo": max(halo),
        "mean_halo": sum(halo) / n_parts,
        "neighbor_parts_max": max(len(s) for s in partners),
        "halo_bytes_per_sweep": sum(halo) * bytes_per_node,
        "imbalance": sizes.max() / (len(assignment) / n_parts) - 1,
        "part_sizes": sizes.tolist(),
    }


@pytest.mark.parametrize("method", ["metis", "random", "contiguous"])
def test_report_matches_independent_count(method):
    edges = random_regular_edges(300, 3, seed=4)
    csr = edges_to_csr(edges, 300)
    part = partition_graph(csr, 5, method=method, seed=2)
    report = part.report(bytes_per_node=4)
    expected = brute_force_report(edges, part.assignment, 5, bytes_per_node=4)
    for key, value in expected.items():
        assert report[key] == pytest.approx(value), key
    assert report["n_nodes"] == 300 and report["n_edges"] == 450 and report["n_parts"] == 5
    json.dumps(report)  # plain python types only


def test_report_types_are_plain_python():
    _, csr = torus(16, 16)
    report = partition_graph(csr, 4).report()
    for key in ("edge_cut", "max_halo", "neighbor_parts_max", "n_nodes", "n_edges", "n_parts"):
        assert type(report[key]) is int, key
    for key in ("mean_halo", "imbalance", "edge_cut_fraction"):
        assert type(report[key]) is float, key
    assert all(type(s) is int for s in report["part_sizes"])


def test_per_node_bytes():
    edges = grid_edges(6, 6)
    csr = edges_to_csr(edges, 36)
    part = partition_graph(csr, 3, method="contiguous")
    plan = part.halo_plan()
    sizes = np.arange(36, dtype=float) + 1
    expected = sum(sizes[h].sum() for h in plan.halo)
    assert part.report(bytes_per_node=sizes)["halo_bytes_per_sweep"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="bytes_per_node"):
        part.report(bytes_per_node=np.ones(5))
    with pytest.raises(ValueError, match="bytes_per_node"):
        part.report(bytes_per_node=-1)


@pytest.mark.parametrize("method", ["metis", "random", "contiguous"])
def test_deterministic_for_a_seed(method):
    _, csr = torus(40, 40)
    a = partition_graph(csr, 6, method=method, seed=3).assignment
    b = partition_graph(csr, 6, method=method, seed=3).assignment
    np.testing.assert_array_equal(a, b)
    assert a.min() == 0 and a.max() == 5


def test_random_seed_changes_assignment_and_is_balanced():
    _, csr = torus(20, 20)
    a = partition_graph(csr, 7, method="random", seed=0)
    b = partition_graph(csr, 7, method="random", seed=1)
    assert not np.array_equal(a.assignment, b.assignment)
    sizes = a.part_sizes()
    assert sizes.max() - sizes.min() <= 1


def test_contiguous_is_blocks_of_ids():
    _, csr = torus(10, 10)
    assignment = partition_graph(csr, 4, method="contiguous").assignment
    assert np.all(np.diff(assignment) >= 0)
    assert np.bincount(assignment).tolist() == [25, 25, 25, 25]


def test_contiguous_balances_node_weights():
    csr = edges_to_csr(grid_edges(1, 10), 10)
    weights = np.array([9, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    assignment = partition_graph(csr, 2, method="contiguous", node_weights=weights).assignment
    assert assignment.tolist() == [0] + [1] * 9  # weights 9 | 9


def test_metis_beats_random_on_a_torus():
    edges, csr = torus(64, 64)
    metis = partition_graph(csr, 8).report()
    random = partition_graph(csr, 8, method="random").report()
    assert metis["edge_cut"] < 0.1 * random["edge_cut"]
    assert metis["imbalance"] <= 0.05


def test_metis_edge_weights_steer_the_cut():
    # a ring of 8 nodes: cutting it in two cuts 2 edges; heavy edges should not be cut
    ring = np.stack([np.arange(8), (np.arange(8) + 1) % 8], axis=1)
    csr = edges_to_csr(ring, 8)
    heavy = sp.csr_matrix(csr, dtype=np.int64, copy=True)
    rows = np.repeat(np.arange(8), np.diff(heavy.indptr))
    light = {(0, 1), (1, 0), (4, 5), (5, 4)}
    heavy.data = np.array(
        [1 if (r, c) in light else 100 for r, c in zip(rows, heavy.indices)], dtype=np.int64
    )
    assignment = partition_graph(csr, 2, edge_weights=heavy, seed=1).assignment
    cut = {(u, v) for u, v in ring.tolist() if assignment[u] != assignment[v]}
    assert cut == {(0, 1), (4, 5)}


def test_networkx_input_matches_csr():
    graph = nx.random_regular_graph(3, 60, seed=1)
    from_nx = partition_graph(graph, 4, seed=5)
    from_csr = partition_graph(nx.to_scipy_sparse_array(graph, format="csr"), 4, seed=5)
    np.testing.assert_array_equal(from_nx.assignment, from_csr.assignment)


def test_networkx_with_labels_uses_node_order():
    graph = nx.Graph([("a", "b"), ("b", "c"), ("c", "d")])
    part = partition_graph(graph, 2)
    assert part.n_nodes == 4
    assert part.report()["edge_cut"] >= 1


def test_disconnected_graph_with_isolated_nodes():
    edges = np.concatenate([grid_edges(5, 5), grid_edges(5, 5) + 25])
    csr = edges_to_csr(edges, 60)  # nodes 50..59 are isolated
    for method in ("metis", "random", "contiguous"):
        part = partition_graph(csr, 4, method=method)
        assert part.part_sizes().sum() == 60
        report = part.report()
        assert report["edge_cut"] == brute_force_report(edges, part.assignment, 4)["edge_cut"]
    metis = partition_graph(csr, 2)
    assert metis.report()["edge_cut"] <= 2  # the components split (almost) for free


def test_single_part():
    _, csr = torus(5, 5)
    report = partition_graph(csr, 1).report()
    assert report["edge_cut"] == 0 and report["max_halo"] == 0 and report["neighbor_parts_max"] == 0
    assert report["imbalance"] == 0.0


def test_as_many_parts_as_nodes():
    _, csr = torus(3, 3)
    part = partition_graph(csr, 9, method="random")
    assert sorted(part.assignment.tolist()) == list(range(9))
    assert part.report()["edge_cut"] == 18


def test_explicit_zero_entries_are_edges():
    csr = sp.csr_matrix((np.array([0.0, 0.0]), np.array([1, 0]), np.array([0, 1, 2])), shape=(2, 2))
    assert as_csr(csr).nnz == 2


def test_negative_couplings_are_fine():
    csr = edges_to_csr(grid_edges(4, 4), 16).astype(np.float64) * -0.5
    assert partition_graph(csr, 2).report()["n_edges"] == 24


def test_partition_validates_its_fields():
    _, csr = torus(4, 4)
    with pytest.raises(ValueError, match="shape"):
        Partition(assignment=np.zeros(5, dtype=int), n_parts=2, csr=csr)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        Partition(assignment=np.full(16, 2), n_parts=2, csr=csr)
    with pytest.raises(ValueError, match="integer"):
        Partition(assignment=np.zeros(16), n_parts=2, csr=csr)
    part = Partition(assignment=np.arange(16) % 2, n_parts=2, csr=csr)
    with pytest.raises(ValueError):
        part.assignment[0] = 1  # read-only


# --- bad input ---------------------------------------------------------------------------


@pytest.fixture
def small():
    return torus(4, 4)[1]


@pytest.mark.parametrize("n_parts", [0, -1, 17])
def test_bad_n_parts(small, n_parts):
    with pytest.raises(ValueError, match="n_parts"):
        partition_graph(small, n_parts)


def test_n_parts_not_an_integer(small):
    with pytest.raises(ValueError, match="n_parts"):
        partition_graph(small, 2.5)
    with pytest.raises(ValueError, match="n_parts"):
        partition_graph(small)


def test_unknown_method(small):
    with pytest.raises(ValueError, match="method"):
        partition_graph(small, 2, method="spectral")


def test_bad_seed(small):
    with pytest.raises(ValueError, match="seed"):
        partition_graph(small, 2, seed=-1)


def test_empty_graph():
    with pytest.raises(ValueError, match="empty"):
        partition_graph(sp.csr_matrix((0, 0)), 1)
    with pytest.raises(ValueError, match="empty"):
        partition_graph(nx.Graph(), 1)


def test_non_square_matrix():
    with pytest.raises(ValueError, match="square"):
        partition_graph(sp.csr_matrix((3, 4)), 1)


def test_asymmetric_matrix():
    matrix = sp.csr_matrix(([1.0], ([0], [1])), shape=(3, 3))
    with pytest.raises(ValueError, match=r"symmetric.*\(0, 1\)"):
        partition_graph(matrix, 2)


def test_directed_networkx():
    with pytest.raises(ValueError, match="undirected"):
        partition_graph(nx.DiGraph([(0, 1)]), 1)


def test_self_loops():
    matrix = sp.csr_matrix(([1.0, 1.0, 1.0], ([0, 1, 2], [1, 0, 2])), shape=(3, 3))
    with pytest.raises(ValueError, match="self loop.*node 2"):
        partition_graph(matrix, 2)
    graph = nx.Graph([(0, 1), (1, 1)])
    with pytest.raises(ValueError, match="self loop"):
        partition_graph(graph, 1)


def test_wrong_graph_type():
    with pytest.raises(ValueError, match="scipy.sparse"):
        partition_graph(np.eye(3), 1)


def test_negative_weights(small):
    with pytest.raises(ValueError, match="node_weights.*non-negative"):
        partition_graph(small, 2, node_weights=-np.ones(16))
    with pytest.raises(ValueError, match="edge_weights.*non-negative"):
        partition_graph(small, 2, edge_weights=-np.ones(small.nnz))


def test_bad_weight_shapes_and_values(small):
    with pytest.raises(ValueError, match=r"node_weights must have shape \(16,\)"):
        partition_graph(small, 2, node_weights=np.ones(3))
    with pytest.raises(ValueError, match="edge_weights must have shape"):
        partition_graph(small, 2, edge_weights=np.ones(3))
    with pytest.raises(ValueError, match="integers"):
        partition_graph(small, 2, node_weights=np.full(16, 0.5))
    with pytest.raises(ValueError, match="finite"):
        partition_graph(small, 2, node_weights=np.full(16, np.nan))


def test_asymmetric_edge_weights(small):
    weights = np.ones(small.nnz, dtype=np.int64)
    weights[0] = 5
    with pytest.raises(ValueError, match="edge_weights must be symmetric"):
        partition_graph(small, 2, edge_weights=weights)


def test_edge_weights_with_another_pattern(small):
    other = edges_to_csr(grid_edges(4, 4), 16)
    with pytest.raises(ValueError, match="sparsity pattern"):
        partition_graph(small, 2, edge_weights=other)


def test_package_imports_neither_jax_nor_ray():
    import subprocess
    import sys

    code = (
        "import sys, partition, partition.plot, partition.coloring, partition.sources\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'ray', 'matplotlib', 'yaml'))\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
