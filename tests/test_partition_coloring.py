"""Vectorised coloring: validity, optimality where known, greedy equivalence, class helpers."""

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

from partition.coloring import (
    STRATEGIES,
    _empty_top_colors,
    _jones_plassmann,
    color_classes,
    greedy_color,
    is_valid_coloring,
    two_coloring,
)
from partition.generators import (
    checkerboard_colors,
    edges_to_csr,
    grid_edges,
    pegasus_edges,
    random_regular_edges,
    random_sparse_edges,
    torus_edges,
)


def n_colors(colors):
    return int(colors.max()) + 1


def sequential_greedy(csr, order):
    """Textbook greedy coloring, node by node in the given order."""
    colors = np.full(csr.shape[0], -1)
    for node in order:
        taken = set(colors[csr.indices[csr.indptr[node] : csr.indptr[node + 1]]].tolist())
        colors[node] = next(c for c in range(len(taken) + 1) if c not in taken)
    return colors


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_even_torus_gets_two_colors(strategy):
    csr = edges_to_csr(torus_edges(30, 40), 1200)
    colors = greedy_color(csr, strategy)
    assert n_colors(colors) == 2 and is_valid_coloring(csr, colors)
    checker = checkerboard_colors(30, 40)
    assert np.array_equal(colors, checker) or np.array_equal(colors, 1 - checker)


def test_open_grid_and_disconnected_bipartite_graphs_get_two_colors():
    edges = np.concatenate([grid_edges(7, 9), grid_edges(4, 4) + 63])
    csr = edges_to_csr(edges, 90)  # two grids and 11 isolated nodes
    colors = greedy_color(csr)
    assert n_colors(colors) == 2 and is_valid_coloring(csr, colors)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_odd_torus_gets_few_colors(strategy):
    csr = edges_to_csr(torus_edges(21, 30), 630)  # odd cycles: needs 3
    colors = greedy_color(csr, strategy)
    assert is_valid_coloring(csr, colors)
    assert 3 <= n_colors(colors) <= 5


@pytest.mark.parametrize(
    "edges, n, expected",
    [
        (np.array([[i, j] for i in range(6) for j in range(i + 1, 6)]), 6, 6),  # K6
        (np.array([[0, i] for i in range(1, 9)]), 9, 2),  # star
        (np.stack([np.arange(7), (np.arange(7) + 1) % 7], axis=1), 7, 3),  # odd cycle
        (np.zeros((0, 2), dtype=np.int64), 5, 1),  # no edges
    ],
)
def test_known_chromatic_numbers(edges, n, expected):
    csr = edges_to_csr(edges, n)
    for strategy in STRATEGIES:
        colors = greedy_color(csr, strategy)
        assert is_valid_coloring(csr, colors)
        assert n_colors(colors) == expected, strategy


def test_pegasus_matches_networkx_dsatur():
    edges = pegasus_edges(6)
    csr = edges_to_csr(edges, int(edges.max()) + 1)
    graph = nx.Graph(edges.tolist())
    dsatur = max(nx.greedy_color(graph, "DSATUR").values()) + 1
    colors = greedy_color(csr)
    assert is_valid_coloring(csr, colors)
    assert n_colors(colors) <= dsatur == 4  # Pegasus holds K4s: 4 is optimal


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("seed", [0, 1])
def test_random_graphs_are_valid_and_deterministic(strategy, seed):
    csr = edges_to_csr(random_sparse_edges(3000, 8.0, seed=seed), 3000)
    colors = greedy_color(csr, strategy, seed=seed)
    assert is_valid_coloring(csr, colors)
    assert set(np.unique(colors).tolist()) == set(range(n_colors(colors)))  # no unused color
    assert n_colors(colors) <= int(np.diff(csr.indptr).max()) + 1  # greedy's bound
    np.testing.assert_array_equal(colors, greedy_color(csr, strategy, seed=seed))


def test_dense_random_graph_uses_the_sorting_path(monkeypatch):
    import partition.coloring as coloring

    monkeypatch.setattr(coloring, "_BITMAP_CELLS", 0)  # force the sort-based smallest free color
    csr = edges_to_csr(random_sparse_edges(500, 60.0, seed=3), 500)
    colors = greedy_color(csr, improve_passes=2)
    assert is_valid_coloring(csr, colors)


def test_rounds_equal_sequential_greedy():
    csr = edges_to_csr(random_sparse_edges(400, 6.0, seed=5), 400)
    priority = np.random.default_rng(0).permutation(400)
    order = np.argsort(-priority)  # highest priority first
    np.testing.assert_array_equal(_jones_plassmann(csr, priority), sequential_greedy(csr, order))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_without_the_bipartite_shortcut(strategy):
    csr = edges_to_csr(torus_edges(10, 12), 120)
    colors = greedy_color(csr, strategy, exact_bipartite=False)
    assert is_valid_coloring(csr, colors) and n_colors(colors) <= 4


def test_improvement_never_adds_colors():
    csr = edges_to_csr(random_regular_edges(2000, 5, seed=1), 2000)
    plain = greedy_color(csr, "random", improve_passes=0)
    improved = greedy_color(csr, "random", improve_passes=8)
    assert is_valid_coloring(csr, improved)
    assert n_colors(improved) <= n_colors(plain)


def test_top_color_emptied_by_direct_moves():
    csr = edges_to_csr(grid_edges(6, 6), 36)
    colors = checkerboard_colors(6, 6)
    colors[[0, 14, 35]] = 2  # valid but wasteful: these can go back to their checkerboard color
    assert is_valid_coloring(csr, colors)
    emptied = _empty_top_colors(csr, colors, np.random.default_rng(0))
    assert is_valid_coloring(csr, emptied) and emptied.max() == 1


def test_top_color_emptied_by_a_swap():
    # v=0 (color 2) sees w=1 (color 0) and x=2 (color 1); x is pinned by z=3 (color 0), but w
    # is free to take color 1, after which v takes color 0
    csr = edges_to_csr(np.array([[0, 1], [0, 2], [2, 3]]), 4)
    colors = np.array([2, 0, 1, 0])
    emptied = _empty_top_colors(csr, colors, np.random.default_rng(0))
    assert emptied.tolist() == [0, 1, 1, 0]


def test_top_color_kept_when_it_is_needed():
    triangle = edges_to_csr(np.array([[0, 1], [1, 2], [0, 2]]), 3)
    np.testing.assert_array_equal(_empty_top_colors(triangle, np.array([0, 1, 2]), np.random.default_rng(0)), [0, 1, 2])


def test_networkx_input():
    graph = nx.petersen_graph()
    colors = greedy_color(graph)
    assert n_colors(colors) == 3 and is_valid_coloring(graph, colors)


def test_two_coloring():
    assert two_coloring(edges_to_csr(grid_edges(3, 5), 15)) is not None
    assert two_coloring(edges_to_csr(torus_edges(3, 4), 12)) is None  # 3-cycles around


def test_is_valid_coloring_detects_conflicts():
    csr = edges_to_csr(grid_edges(2, 2), 4)  # 0-1, 2-3, 0-2, 1-3
    assert is_valid_coloring(csr, np.array([0, 1, 1, 0]))
    assert not is_valid_coloring(csr, np.array([0, 0, 1, 0]))
    assert not is_valid_coloring(csr, np.array([0, 1, 1, -1]))
    with pytest.raises(ValueError, match="shape"):
        is_valid_coloring(csr, np.array([0, 1]))
    with pytest.raises(ValueError, match="integers"):
        is_valid_coloring(csr, np.array([0.0, 1.0, 1.0, 0.0]))


def test_color_classes():
    colors = np.array([2, 0, 2, 1, 0, 2])
    classes = color_classes(colors)
    assert [c.tolist() for c in classes] == [[1, 4], [3], [0, 2, 5]]


def test_color_classes_are_independent_sets():
    csr = edges_to_csr(pegasus_edges(4), int(pegasus_edges(4).max()) + 1)
    colors = greedy_color(csr)
    classes = color_classes(colors)
    assert sum(c.size for c in classes) == csr.shape[0]
    for members in classes:
        assert csr[members][:, members].nnz == 0


def test_superblocks_split_colors_by_node_type():
    colors = np.array([0, 0, 0, 1, 1, 0])
    types = np.array([7, 3, 7, 3, 3, 3])
    blocks = color_classes(colors, node_types=types)
    assert [[b.tolist() for b in sb] for sb in blocks] == [[[1, 5], [0, 2]], [[3, 4]]]
    for superblock in blocks:
        for block in superblock:
            assert np.unique(types[block]).size == 1


def test_color_classes_errors():
    with pytest.raises(ValueError, match="non-negative"):
        color_classes(np.array([0, -1]))
    with pytest.raises(ValueError, match="1-D integer"):
        color_classes(np.array([0.5]))
    with pytest.raises(ValueError, match="node_types must have shape"):
        color_classes(np.array([0, 1]), node_types=np.array([0]))
    assert color_classes(np.array([], dtype=int)) == []


def test_greedy_color_errors():
    csr = edges_to_csr(grid_edges(2, 2), 4)
    with pytest.raises(ValueError, match="strategy"):
        greedy_color(csr, "welsh_powell")
    with pytest.raises(ValueError, match="improve_passes"):
        greedy_color(csr, improve_passes=-1)
    with pytest.raises(ValueError, match="symmetric"):
        greedy_color(sp.csr_matrix(([1.0], ([0], [1])), shape=(2, 2)))
