"""The chip-link graph of a topology, its hop distances and shortest-path routes.

Chips are numbered `0..n_chips-1`; on mesh2d/torus2d chip `r * cols + c` sits at row r, column
c. Links are full duplex: each direction of a link is its own channel, written `(a, b)` for
traffic flowing from chip a to chip b. Routes are one fixed shortest path per chip pair
(networkx BFS order, so deterministic; by summed latency when an explicit topology gives links
their own latency): no multipath splitting. Every link has `links.bandwidth` and `links.latency`
unless an explicit edge `[a, b, {bandwidth: x, latency: y}]` says otherwise.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import networkx as nx
import numpy as np
import scipy.sparse as sp

from .config import LinksConfig


@dataclasses.dataclass(frozen=True)
class Topology:
    """A chip-link graph with routes.

    **Fields:**

    - `kind`: the topology name.
    - `graph`: undirected `networkx.Graph` over chip ids.
    - `hops`: `[n_chips, n_chips]` hop distances.
    - `routes`: `(src, dst) -> list of directed links (a, b)` along the chosen shortest path.
    - `positions`: chip -> (x, y) for drawing.
    - `wraps`: links that close a torus/ring (drawn curved).
    - `bandwidth_scale`: `[L]` every directed link's bandwidth (`links()` order) over
      `links.bandwidth` (1 unless an explicit edge gives its own).
    - `route_latency`: `[n_chips, n_chips]` seconds from the first bit sent to the first bit
      received along the route (the sum of its links' latencies).
    - `uniform`: every link has the same bandwidth and latency.
    """

    kind: str
    graph: nx.Graph
    hops: np.ndarray
    routes: dict
    positions: dict
    wraps: frozenset
    bandwidth_scale: np.ndarray
    route_latency: np.ndarray
    uniform: bool

    @functools.cached_property
    def incidence(self) -> sp.csr_matrix:
        """`[C*C, L]` sparse 0/1: row `a*C + b` marks the directed links (in `links()` order) of
        the route from chip a to chip b."""
        c, index = self.n_chips, {link: i for i, link in enumerate(self.links())}
        rows, cols = [], []
        for (a, b), route in self.routes.items():  # chip pairs, not nodes
            rows += [a * c + b] * len(route)
            cols += [index[link] for link in route]
        return sp.csr_matrix((np.ones(len(rows), np.int64), (rows, cols)), shape=(c * c, len(index)))

    @property
    def n_chips(self) -> int:
        return self.graph.number_of_nodes()

    def links(self) -> list[tuple[int, int]]:
        """Directed links (both directions of every physical link), sorted."""
        return sorted([(a, b) for a, b in self.graph.edges] + [(b, a) for a, b in self.graph.edges])


def build_topology(links: LinksConfig) -> Topology:
    """The `Topology` of a validated `links:` section.

    **Arguments:**

    - `links`: the links config.
    """
    kind = links.topology
    wraps: set = set()
    if kind in ("mesh2d", "torus2d"):
        rows, cols = links.shape
        g = nx.Graph()
        g.add_nodes_from(range(rows * cols))
        for r in range(rows):
            for c in range(cols):
                if c + 1 < cols:
                    g.add_edge(r * cols + c, r * cols + c + 1)
                if r + 1 < rows:
                    g.add_edge(r * cols + c, (r + 1) * cols + c)
                if kind == "torus2d" and c == cols - 1 and cols > 2:
                    g.add_edge(r * cols + c, r * cols)
                    wraps.add((r * cols, r * cols + c))
                if kind == "torus2d" and r == rows - 1 and rows > 2:
                    g.add_edge(r * cols + c, c)
                    wraps.add((c, r * cols + c))
        positions = {i: (i % cols, -(i // cols)) for i in range(rows * cols)}
    else:
        n = links.count
        if kind == "ring":
            g = nx.cycle_graph(n) if n > 2 else nx.path_graph(n)
            if n > 2:
                wraps.add((0, n - 1))
        elif kind == "all_to_all":
            g = nx.complete_graph(n)
        else:
            g = nx.Graph()
            g.add_nodes_from(range(n))
            g.add_edges_from(tuple(e) for e in links.edges)
        angle = 2 * np.pi * np.arange(n) / max(n, 1)
        positions = {i: (float(np.cos(angle[i])), float(np.sin(angle[i]))) for i in range(n)}

        if kind == "ring":
            wraps.clear()  # a ring drawn on a circle needs no curved links
    if not nx.is_connected(g):
        parts = [sorted(c) for c in nx.connected_components(g)]
        raise ValueError(f"links: the {kind} chip graph is not connected (components {parts})")
    nx.set_edge_attributes(g, float(links.bandwidth), "bandwidth")
    nx.set_edge_attributes(g, float(links.latency), "latency")
    for e in links.edges or []:
        if len(e) == 3:
            g.edges[e[0], e[1]].update(e[2])
    uniform = all(d["bandwidth"] == links.bandwidth and d["latency"] == links.latency for *_, d in g.edges(data=True))
    if kind == "explicit" and g.number_of_nodes() > 2:
        # drawn by graph distance (deterministic), slower links twice as long, so boards and
        # clusters stay together and the cables between them show
        for a, b, d in g.edges(data=True):
            d["drawn_length"] = 2.0 if d["bandwidth"] < links.bandwidth or d["latency"] > links.latency else 1.0
        start = nx.planar_layout(g) if nx.is_planar(g) else positions  # planar: start without crossings
        layout = nx.kamada_kawai_layout(g, pos=start, weight="drawn_length")
        positions = {i: (float(x), float(y)) for i, (x, y) in layout.items()}
    n = g.number_of_nodes()
    if uniform:
        paths = dict(nx.all_pairs_shortest_path(g))
    else:
        paths = {s: p for s, (_, p) in nx.all_pairs_dijkstra(g, weight="latency")}
    hops = np.zeros((n, n), np.int64)
    route_latency = np.zeros((n, n))
    routes = {}
    for s in range(n):  # chip pairs, not nodes
        for d in range(n):
            path = paths[s][d]
            hops[s, d] = len(path) - 1
            routes[s, d] = list(itertools.pairwise(path))
            route_latency[s, d] = sum(g.edges[a, b]["latency"] for a, b in routes[s, d])
    directed = sorted([(a, b) for a, b in g.edges] + [(b, a) for a, b in g.edges])
    scale = np.array([g.edges[a, b]["bandwidth"] / links.bandwidth for a, b in directed])
    return Topology(kind, g, hops, routes, positions, frozenset(wraps), scale, route_latency, uniform)
