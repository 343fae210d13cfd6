"""Million-node graphs: METIS quality on a 1M torus, 1M-node coloring, and (slow) a 16M torus.

Timings are measured by benchmarks/partition.py, not asserted here.
"""

import numpy as np
import pytest

from partition import partition_graph
from partition.coloring import greedy_color, is_valid_coloring
from partition.generators import edges_to_csr, random_regular_edges, torus_edges


def independent_cut(edges, assignment):
    return int(np.count_nonzero(assignment[edges[:, 0]] != assignment[edges[:, 1]]))


@pytest.fixture(scope="module")
def million_torus():
    edges = torus_edges(1000, 1000)
    return edges, edges_to_csr(edges, 1_000_000)


def test_million_node_torus_in_8_parts(million_torus):
    edges, csr = million_torus
    metis = partition_graph(csr, 8)
    random = partition_graph(csr, 8, method="random")
    report = metis.report(bytes_per_node=4)
    assert report["edge_cut"] == independent_cut(edges, metis.assignment)
    assert random.report()["edge_cut"] == independent_cut(edges, random.assignment)
    assert report["edge_cut"] <= 0.01 * random.report()["edge_cut"]
    sizes = metis.part_sizes()
    assert sizes.max() <= 1.05 * sizes.min()  # parts within 5% of each other
    # each part borders a few others, and its halo is a thin boundary, not a volume
    assert report["neighbor_parts_max"] <= 7
    assert report["max_halo"] < 3000


def test_million_node_torus_colors(million_torus):
    _, csr = million_torus
    colors = greedy_color(csr)
    assert is_valid_coloring(csr, colors) and colors.max() == 1


def test_million_node_random_graph_colors():
    csr = edges_to_csr(random_regular_edges(1_000_000, 4, seed=0), 1_000_000)
    colors = greedy_color(csr)
    assert is_valid_coloring(csr, colors)
    assert colors.max() + 1 <= 5


@pytest.mark.slow
def test_sixteen_million_node_torus():
    edges = torus_edges(4000, 4000)
    csr = edges_to_csr(edges, 16_000_000)
    part = partition_graph(csr, 8)
    report = part.report()
    assert report["edge_cut"] == independent_cut(edges, part.assignment)
    random_cut = len(edges) * (1 - 1 / 8)  # expected cut of a random 8-way partition
    assert report["edge_cut"] <= 0.01 * random_cut
    sizes = part.part_sizes()
    assert sizes.max() <= 1.05 * sizes.min()
