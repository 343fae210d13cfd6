"""Build a 2D periodic Ising program of N nodes and report time and memory as one JSON line.

    python benchmarks/build_scale.py --nodes 1000000 --json
    python benchmarks/build_scale.py --nodes 1000000 --json --library thrml     # thrml 0.1.4's object API
    python benchmarks/build_scale.py --nodes 1000000 --json --api object        # distthrml's object API
    python benchmarks/build_scale.py --nodes 16000000 --json --sweeps 10        # also run sweeps
    python benchmarks/build_scale.py --nodes 1000000 --json --sweeps 20 --chains 8   # vmapped chains

Each run is its own process, so `peak_rss_bytes` is that build's peak (`rss_before_bytes` is
the interpreter with its imports, before building).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time

# benchmarks/partition.py would otherwise shadow the partition package
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import jax
import jax.numpy as jnp
import numpy as np

from partition.generators import checkerboard_colors, torus_edges


def lattice_sides(n: int) -> tuple[int, int]:
    """Even sides rows <= cols with rows * cols == n and rows as close to sqrt(n) as possible."""
    for rows in range(int(np.sqrt(n)), 1, -1):
        if n % rows == 0 and rows % 2 == 0 and (n // rows) % 2 == 0:
            return rows, n // rows
    raise SystemExit(f"--nodes {n}: no even x even factorisation (the checkerboard coloring needs even sides)")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def build_distthrml(rows: int, cols: int, beta: float, api: str):
    import distthrml as dt
    from distthrml.models import IsingEBM, IsingSamplingProgram

    n = rows * cols
    edges = torus_edges(rows, cols)
    colors = checkerboard_colors(rows, cols)
    if api == "array":
        nodes = dt.make_block(dt.SpinNode, n)
        model = IsingEBM(nodes, (nodes[edges[:, 0]], nodes[edges[:, 1]]), jnp.zeros(n), jnp.ones(len(edges)), jnp.array(beta))
        blocks = [nodes[np.flatnonzero(colors == c)] for c in (0, 1)]
    else:
        nodes = [dt.SpinNode() for _ in range(n)]
        pairs = [(nodes[a], nodes[b]) for a, b in edges.tolist()]
        model = IsingEBM(nodes, pairs, jnp.zeros(n), jnp.ones(len(edges)), jnp.array(beta))
        blocks = [dt.Block([nodes[i] for i in np.flatnonzero(colors == c).tolist()]) for c in (0, 1)]
    program = IsingSamplingProgram(model, blocks, [])
    return program, blocks, len(edges)


def build_thrml(rows: int, cols: int, beta: float):
    import thrml
    from thrml.models import IsingEBM, IsingSamplingProgram

    n = rows * cols
    edges = torus_edges(rows, cols)
    colors = checkerboard_colors(rows, cols)
    nodes = [thrml.SpinNode() for _ in range(n)]
    pairs = [(nodes[a], nodes[b]) for a, b in edges.tolist()]
    model = IsingEBM(nodes, pairs, jnp.zeros(n), jnp.ones(len(edges)), jnp.array(beta))
    blocks = [thrml.Block([nodes[i] for i in np.flatnonzero(colors == c).tolist()]) for c in (0, 1)]
    program = IsingSamplingProgram(model, blocks, [])
    return program, blocks, len(edges)


def program_bytes(program) -> int:
    """Bytes held by the program's arrays (interaction tables, masks, parameters)."""
    return int(sum(x.nbytes for x in jax.tree.leaves(program) if hasattr(x, "nbytes")))


def run_sweeps(library: str, program, blocks, n_sweeps: int, chains: int) -> float:
    """Seconds per sweep of `chains` chains (`jax.vmap` when more than one), compile excluded."""
    lib = __import__(library)
    batch = (chains,) if chains > 1 else ()
    init = [jnp.zeros(batch + (len(b),), dtype=jnp.bool_) for b in blocks]
    schedule = lib.SamplingSchedule(n_sweeps, 1, 1)
    observe = [blocks[0][np.arange(1)]] if library == "distthrml" else [lib.Block(blocks[0].nodes[:1])]
    one = lambda k, i: lib.sample_states(k, program, schedule, i, [], observe)  # noqa: E731
    run = jax.jit(jax.vmap(one) if chains > 1 else one)
    keys = lambda seed: jax.random.split(jax.random.key(seed), chains) if chains > 1 else jax.random.key(seed)  # noqa: E731
    jax.block_until_ready(run(keys(0), init))
    start = time.perf_counter()
    jax.block_until_ready(run(keys(1), init))
    return (time.perf_counter() - start) / n_sweeps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1_000_000)
    parser.add_argument("--library", choices=["distthrml", "thrml"], default="distthrml")
    parser.add_argument("--api", choices=["array", "object"], default="array", help="distthrml construction path")
    parser.add_argument("--beta", type=float, default=0.3)
    parser.add_argument("--sweeps", type=int, default=0, help="also time this many sweeps")
    parser.add_argument("--chains", type=int, default=1, help="chains for --sweeps (more than one: jax.vmap)")
    parser.add_argument("--json", action="store_true", help="print one JSON line (default: a readable line)")
    args = parser.parse_args(argv)

    rows, cols = lattice_sides(args.nodes)
    jax.block_until_ready(jnp.zeros(1))
    rss_before = peak_rss_bytes()
    start = time.perf_counter()
    if args.library == "thrml":
        program, blocks, n_edges = build_thrml(rows, cols, args.beta)
        api = "object"
    else:
        program, blocks, n_edges = build_distthrml(rows, cols, args.beta, args.api)
        api = args.api
    jax.block_until_ready(jax.tree.leaves(program))
    build_seconds = time.perf_counter() - start
    peak = peak_rss_bytes()
    record = {
        "benchmark": "build_scale",
        "library": args.library,
        "api": api,
        "nodes": rows * cols,
        "edges": n_edges,
        "rows": rows,
        "cols": cols,
        "build_seconds": round(build_seconds, 3),
        "peak_rss_bytes": peak,
        "rss_before_bytes": rss_before,
        "build_bytes_per_node": round((peak - rss_before) / (rows * cols), 1),
        "build_bytes_per_edge": round((peak - rss_before) / n_edges, 1),
        "program_bytes": program_bytes(program),
        "program_bytes_per_node": round(program_bytes(program) / (rows * cols), 1),
        "program_bytes_per_edge": round(program_bytes(program) / n_edges, 1),
        "machine": f"{platform.machine()} {jax.devices()[0].platform} x{len(jax.devices())}",
        "python": platform.python_version(),
        "jax": jax.__version__,
    }
    if args.sweeps:
        seconds = run_sweeps(args.library, program, blocks, args.sweeps, args.chains)
        record["chains"] = args.chains
        record["sweeps"] = args.sweeps
        record["sweep_seconds"] = round(seconds, 4)
        record["flips_per_ns"] = round(args.chains * rows * cols / seconds / 1e9, 5)
        record["peak_rss_bytes"] = peak_rss_bytes()
    if args.json:
        print(json.dumps(record), flush=True)
    else:
        print(", ".join(f"{k}={v}" for k, v in record.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
