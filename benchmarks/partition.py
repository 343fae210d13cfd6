"""Benchmark the partition package: METIS vs random vs contiguous, hierarchy, capacity, coloring.

Prints one JSON object per line to stdout and optionally draws a PNG summary:

    python benchmarks/partition.py > benchmarks/results/partition.jsonl \
        --plot benchmarks/results/partition.png
    python benchmarks/partition.py --quick           # small sizes, a few seconds

Every record has `kind` (partition | hierarchical | capacity | coloring), `graph`, `n_nodes`,
`n_edges`, `method`, `seconds`; partition records add `n_parts`, `edge_cut`,
`edge_cut_fraction`, `max_halo`, `imbalance`, `neighbor_parts_max` and
`halo_bytes_per_sweep` (4-byte states); coloring records add `n_colors` and `valid`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from typing import Any, Callable, Iterator

# run as a script, this file's folder comes first on sys.path and its name would shadow the
# `partition` package; look the package up from the repository root instead
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from partition import partition_capacity, partition_graph, partition_hierarchical
from partition.coloring import STRATEGIES, greedy_color, is_valid_coloring
from partition.generators import (
    edges_to_csr,
    pegasus_edges,
    random_regular_edges,
    random_sparse_edges,
    torus_edges,
)

BYTES_PER_NODE = 4  # a float32 state


def graphs(quick: bool) -> dict[str, Callable[[], sp.csr_matrix]]:
    """Named graph builders (lazy, so each graph lives only while it is measured)."""
    side, n = (100, 10_000) if quick else (1000, 1_000_000)
    m = 6 if quick else 16
    return {
        f"torus-{side}x{side}": lambda: edges_to_csr(torus_edges(side, side), side * side),
        f"random-regular-{n}-d4": lambda: edges_to_csr(random_regular_edges(n, 4, seed=0), n),
        f"random-{n}-k6": lambda: edges_to_csr(random_sparse_edges(n, 6.0, seed=0), n),
        f"pegasus-{m}": lambda: _pegasus(m),
    }


def coloring_graphs(quick: bool) -> dict[str, Callable[[], sp.csr_matrix]]:
    side, n = (100, 10_000) if quick else (1000, 1_000_000)
    return {
        f"torus-{side}x{side}": lambda: edges_to_csr(torus_edges(side, side), side * side),
        f"torus-{side - 1}x{side}": lambda: edges_to_csr(torus_edges(side - 1, side), (side - 1) * side),
        f"random-regular-{n}-d4": lambda: edges_to_csr(random_regular_edges(n, 4, seed=0), n),
        f"random-{n}-k6": lambda: edges_to_csr(random_sparse_edges(n, 6.0, seed=0), n),
    }


def dsatur_graphs(quick: bool) -> dict[str, Callable[[], sp.csr_matrix]]:
    """Graphs small enough for networkx's DSATUR (it takes seconds at a few thousand nodes)."""
    if quick:
        return {"pegasus-6": lambda: _pegasus(6)}
    return {
        "pegasus-14": lambda: _pegasus(14),
        "torus-49x50": lambda: edges_to_csr(torus_edges(49, 50), 2450),
        "random-regular-3000-d4": lambda: edges_to_csr(random_regular_edges(3000, 4, seed=0), 3000),
        "random-3000-k6": lambda: edges_to_csr(random_sparse_edges(3000, 6.0, seed=0), 3000),
    }


def _pegasus(m: int) -> sp.csr_matrix:
    edges = pegasus_edges(m)
    return edges_to_csr(edges, int(edges.max()) + 1)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def base(kind: str, name: str, csr: sp.csr_matrix, method: str, seconds: float) -> dict[str, Any]:
    return {
        "kind": kind,
        "graph": name,
        "n_nodes": int(csr.shape[0]),
        "n_edges": int(csr.nnz // 2),
        "method": method,
        "seconds": round(seconds, 4),
    }


def partition_record(kind: str, name: str, csr, part, seconds: float, **extra) -> dict[str, Any]:
    report = part.report(bytes_per_node=BYTES_PER_NODE, **extra)
    keys = ("n_parts", "edge_cut", "edge_cut_fraction", "max_halo", "mean_halo", "imbalance")
    keys += ("neighbor_parts_max", "halo_bytes_per_sweep", "bytes_per_node", "traffic_per_level", "capacity")
    return {**base(kind, name, csr, part.method, seconds), **{k: report[k] for k in keys if k in report}}


def run(quick: bool) -> Iterator[dict[str, Any]]:
    parts_list = (8, 64)
    for name, build in graphs(quick).items():
        csr = build()
        for n_parts in parts_list:
            for method in ("metis", "random", "contiguous"):
                part, seconds = timed(lambda: partition_graph(csr, n_parts, method=method))
                yield partition_record("partition", name, csr, part, seconds)
        if name.startswith("torus"):
            part, seconds = timed(lambda: partition_hierarchical(csr, 2, 4))
            yield partition_record("hierarchical", name, csr, part, seconds)
            flat, seconds = timed(lambda: partition_graph(csr, 8))
            yield partition_record("hierarchical", name, csr, flat, seconds, devices_per_host=4)
        capacity = 512 if name.startswith("pegasus") else csr.shape[0] // 8 + 1
        part, seconds = timed(lambda: partition_capacity(csr, capacity))
        record = partition_record("capacity", name, csr, part, seconds)
        record["max_part_size"] = int(part.part_sizes().max())
        yield record
        del csr

    for name, build in coloring_graphs(quick).items():
        csr = build()
        for strategy in STRATEGIES:
            colors, seconds = timed(lambda: greedy_color(csr, strategy))
            yield {
                **base("coloring", name, csr, strategy, seconds),
                "n_colors": int(colors.max()) + 1,
                "valid": bool(is_valid_coloring(csr, colors)),
            }
        del csr

    for name, build in dsatur_graphs(quick).items():
        csr = build()
        for strategy in STRATEGIES:
            colors, seconds = timed(lambda: greedy_color(csr, strategy))
            yield {**base("coloring-small", name, csr, strategy, seconds), "n_colors": int(colors.max()) + 1,
                   "valid": bool(is_valid_coloring(csr, colors))}
        graph = nx.from_scipy_sparse_array(csr)
        coloring, seconds = timed(lambda: nx.greedy_color(graph, "DSATUR"))
        colors = np.array([coloring[i] for i in range(csr.shape[0])])
        yield {**base("coloring-small", name, csr, "networkx-dsatur", seconds),
               "n_colors": int(colors.max()) + 1, "valid": bool(is_valid_coloring(csr, colors))}

    if not quick:
        edges = torus_edges(4000, 4000)
        csr, build_seconds = timed(lambda: edges_to_csr(edges, 16_000_000))
        for method in ("metis", "random"):
            part, seconds = timed(lambda: partition_graph(csr, 8, method=method))
            record = partition_record("partition", "torus-4000x4000", csr, part, seconds)
            record["independent_edge_cut"] = int(
                np.count_nonzero(part.assignment[edges[:, 0]] != part.assignment[edges[:, 1]])
            )
            record["seconds_build_csr"] = round(build_seconds, 3)
            record["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
            yield record


def short(name: str) -> str:
    """A compact axis label: 1000000 -> 1M, 10000 -> 10k, random-regular -> rr, random -> er."""
    import re

    def compact(match: re.Match) -> str:
        value = int(match.group())
        for size, suffix in ((10**6, "M"), (10**3, "k")):
            if value >= size and value % size == 0:
                return f"{value // size}{suffix}"
        return match.group()

    name = name.replace("random-regular", "rr").replace("random", "er")
    return re.sub(r"\d{4,}", compact, name)


def plot(records: list[dict[str, Any]], path: str) -> None:
    """Four panels: edge cut, halo bytes, partition seconds (per graph, parts and method) and
    the number of colors per graph and strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    flat = [r for r in records if r["kind"] == "partition"]
    groups = list(dict.fromkeys((r["graph"], r["n_parts"]) for r in flat))
    methods = ["metis", "random", "contiguous"]
    colors = {"metis": "tab:blue", "random": "tab:orange", "contiguous": "tab:green"}
    fig, axes = plt.subplots(2, 2, figsize=(16, 11))
    width = 0.27
    x = np.arange(len(groups))
    labels = [f"{short(g)}\nP={p}" for g, p in groups]
    panels = [
        ("edge_cut_fraction", "edge cut / edges", axes[0, 0]),
        ("halo_bytes_per_sweep", f"halo bytes per sweep ({BYTES_PER_NODE} B states)", axes[0, 1]),
        ("seconds", "partition_graph seconds", axes[1, 0]),
    ]
    for key, title, ax in panels:
        for i, method in enumerate(methods):
            values = [
                next((r[key] for r in flat if (r["graph"], r["n_parts"]) == g and r["method"] == method), np.nan)
                for g in groups
            ]
            ax.bar(x + (i - 1) * width, values, width, label=method, color=colors[method])
        ax.set_yscale("log")
        ax.set_xticks(x, labels, fontsize=8, rotation=30)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)

    ax = axes[1, 1]
    coloring = [r for r in records if r["kind"] in ("coloring", "coloring-small")]
    graphs_c = list(dict.fromkeys(r["graph"] for r in coloring))
    strategies = list(STRATEGIES) + ["networkx-dsatur"]
    width = 0.8 / len(strategies)
    palette = plt.get_cmap("tab10")
    xc = np.arange(len(graphs_c))
    for i, strategy in enumerate(strategies):
        values = [
            next((r["n_colors"] for r in coloring if r["graph"] == g and r["method"] == strategy), np.nan)
            for g in graphs_c
        ]
        ax.bar(xc + (i - len(strategies) / 2 + 0.5) * width, values, width, label=strategy, color=palette(i))
    ax.set_xticks(xc, [short(g) for g in graphs_c], fontsize=8, rotation=20)
    ax.set_ylabel("colors")
    ax.set_title("colors (networkx DSATUR only where it finishes in seconds)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.suptitle("partition: METIS vs random vs contiguous; vectorised coloring")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small graphs (seconds, for smoke tests)")
    parser.add_argument("--plot", metavar="PNG", help="draw a summary figure")
    args = parser.parse_args(argv)
    records = []
    for record in run(args.quick):
        print(json.dumps(record), flush=True)
        records.append(record)
    if args.plot:
        plot(records, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
