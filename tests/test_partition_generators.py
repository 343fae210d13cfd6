"""Graph generators and edge-list I/O."""

import dwave_networkx as dnx
import networkx as nx
import numpy as np
import pytest

from partition.generators import (
    edges_to_csr,
    grid_coordinates,
    load_edge_list,
    pegasus_coordinates,
    pegasus_edges,
    random_regular_edges,
    random_sparse_edges,
    torus_edges,
)


@pytest.mark.parametrize("n, degree", [(10, 3), (100, 4), (7, 6), (5000, 5), (2, 1)])
def test_random_regular_is_simple_and_regular(n, degree):
    edges = random_regular_edges(n, degree, seed=3)
    assert edges.shape == (n * degree // 2, 2)
    csr = edges_to_csr(edges, n)  # would raise on self loops
    assert csr.nnz == n * degree  # no repeated edges were merged away
    assert np.all(np.diff(csr.indptr) == degree)
    np.testing.assert_array_equal(edges, random_regular_edges(n, degree, seed=3))
    if n >= 10:  # small complete graphs have only one labelled form
        assert not np.array_equal(edges, random_regular_edges(n, degree, seed=4))


def test_random_regular_errors():
    with pytest.raises(ValueError, match="even"):
        random_regular_edges(5, 3)
    with pytest.raises(ValueError, match="degree"):
        random_regular_edges(5, 5)
    with pytest.raises(ValueError, match="positive"):
        random_regular_edges(0, 0)
    assert random_regular_edges(4, 0).shape == (0, 2)


def test_random_sparse():
    edges = random_sparse_edges(2000, 6.0, seed=1)
    csr = edges_to_csr(edges, 2000)
    assert csr.nnz == 2 * len(edges)
    assert 5.8 < csr.nnz / 2000 <= 6.0


def test_pegasus_matches_dwave_networkx():
    graph = dnx.pegasus_graph(3)
    edges = pegasus_edges(3)
    labels = np.sort(np.array(list(graph.nodes)))
    assert edges.max() + 1 == labels.size == graph.number_of_nodes()
    relabelled = nx.relabel_nodes(graph, {int(l): i for i, l in enumerate(labels)})
    assert {tuple(e) for e in edges.tolist()} == {tuple(sorted(e)) for e in relabelled.edges}
    np.testing.assert_array_equal(edges, pegasus_edges(3))  # deterministic order
    assert pegasus_coordinates(3).shape == (labels.size, 2)
    with pytest.raises(ValueError, match="at least 2"):
        pegasus_edges(1)


def test_grid_coordinates():
    coords = grid_coordinates(2, 3)
    assert coords.tolist() == [[0, 0], [1, 0], [2, 0], [0, -1], [1, -1], [2, -1]]


def test_edges_to_csr_symmetrises_and_merges():
    csr = edges_to_csr(np.array([[0, 1], [1, 0], [1, 2], [1, 2]]), 4)
    assert csr.nnz == 4 and (csr != csr.T).nnz == 0
    assert set(csr.data.tolist()) == {1}
    assert np.diff(csr.indptr).tolist() == [1, 2, 1, 0]


def test_edges_to_csr_errors():
    with pytest.raises(ValueError, match="self loop.*node 2"):
        edges_to_csr(np.array([[0, 1], [2, 2]]), 3)
    assert edges_to_csr(np.array([[0, 1], [2, 2]]), 3, self_loops="drop").nnz == 2
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        edges_to_csr(np.array([[0, 3]]), 3)
    with pytest.raises(ValueError, match="shape"):
        edges_to_csr(np.array([0, 1, 2]), 3)
    with pytest.raises(ValueError, match="integer"):
        edges_to_csr(np.array([[0.5, 1.0]]), 3)
    with pytest.raises(ValueError, match="n_nodes"):
        edges_to_csr(np.zeros((0, 2), dtype=int), 0)


def test_torus_edges_count():
    assert torus_edges(4, 5).shape == (40, 2)


def test_load_edge_list(tmp_path):
    text = tmp_path / "g.txt"
    text.write_text("# a triangle and a tail\n0 1\n1 2 0.5\n2 0\n\n2 3\n")
    np.testing.assert_array_equal(load_edge_list(text), [[0, 1], [1, 2], [2, 0], [2, 3]])
    binary = tmp_path / "g.npy"
    np.save(binary, np.array([[0, 1], [1, 2]]))
    assert load_edge_list(binary).tolist() == [[0, 1], [1, 2]]


def test_load_edge_list_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_edge_list(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("0 x\n")
    with pytest.raises(ValueError, match="bad.txt"):
        load_edge_list(bad)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(ValueError, match="empty.txt"):
        load_edge_list(empty)
    negative = tmp_path / "neg.txt"
    negative.write_text("0 -1\n")
    with pytest.raises(ValueError, match="negative"):
        load_edge_list(negative)
