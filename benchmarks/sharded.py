"""Sharded sweep throughput: flips/ns for 1, 2, 4, 8 graph parts (METIS and random partitions),
with the halo bytes exchanged per sweep, one JSON line per configuration.

    python benchmarks/sharded.py --side 1024 --json > benchmarks/results/sharded_1m.jsonl
    python benchmarks/sharded.py --side 1024 --plot benchmarks/results/sharded_1m.png --json

Devices are emulated on the CPU (XLA's host platform device count is set before JAX starts),
so on this 2-core box parts share two cores: the figure shows the engine's overhead and how it
scales with the cut, not multi-chip speed-up. The model is a side x side periodic Ising lattice
at beta 0.3 with checkerboard blocks, built array-natively.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

# benchmarks/partition.py would otherwise shadow the partition package
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=1024, help="lattice side (nodes = side^2)")
    parser.add_argument("--parts", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--methods", nargs="+", default=["metis", "random"])
    parser.add_argument("--chains", type=int, default=1)
    parser.add_argument("--sweeps", type=int, default=20, help="timed sweeps per configuration")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per configuration (best and all reported)")
    parser.add_argument("--json", action="store_true", help="print JSON lines (default: a table)")
    parser.add_argument("--plot", default=None, help="write a PNG of flips/ns against parts")
    return parser.parse_args(argv)


def build(side: int):
    import jax.numpy as jnp
    import numpy as np

    import distthrml as dt
    from distthrml.models import IsingEBM, IsingSamplingProgram
    from partition.generators import checkerboard_colors, torus_edges

    n = side * side
    edges = torus_edges(side, side)
    nodes = dt.make_block(dt.SpinNode, n)
    model = IsingEBM(nodes, (nodes[edges[:, 0]], nodes[edges[:, 1]]), jnp.zeros(n), jnp.ones(len(edges)), jnp.array(0.3))
    colors = checkerboard_colors(side, side)
    blocks = [nodes[np.flatnonzero(colors == c)] for c in (0, 1)]
    return model, blocks, IsingSamplingProgram(model, blocks, [])


def measure(run, sweeps: int, repeats: int) -> list[float]:
    """Seconds per sweep of `repeats` timed calls (the first, compiling call is not timed)."""
    import jax

    jax.block_until_ready(run())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(run())
        times.append((time.perf_counter() - t0) / sweeps)
    return times


def main(argv=None) -> None:
    args = parse_args(argv)
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={max(args.parts)} " + os.environ.get("XLA_FLAGS", "")
    import jax

    import distthrml as dt
    import partition
    from distthrml.models import hinton_init

    model, blocks, program = build(args.side)
    n = program.gibbs_spec.n_nodes
    graph = dt.interaction_graph(program)
    init = hinton_init(jax.random.key(0), model, blocks, (args.chains,))
    keys = jax.random.split(jax.random.key(1), args.chains)
    schedule = dt.SamplingSchedule(args.sweeps, 1, 1)
    probe = [blocks[0][:1]]  # observe one node: the timing is the sweeps'
    rows = []
    for method in args.methods:
        for parts in args.parts:
            t0 = time.perf_counter()
            part = partition.partition_graph(graph, parts, method=method, seed=0)
            t_part = time.perf_counter() - t0
            t0 = time.perf_counter()
            sprog = dt.shard_program(program, part)
            t_shard = time.perf_counter() - t0
            run = jax.jit(lambda k, i, sprog=sprog: dt.sample_states(k, sprog, schedule, i, [], probe))
            per_sweep = measure(lambda run=run: run(keys, init), args.sweeps, args.repeats)
            report = part.report()
            rows.append(
                {
                    "benchmark": "sharded_sweeps",
                    "model": f"ising torus {args.side}x{args.side}",
                    "nodes": n,
                    "chains": args.chains,
                    "parts": parts,
                    "method": method,
                    "flips_per_ns": args.chains * n / min(per_sweep) / 1e9,
                    "seconds_per_sweep": per_sweep,
                    "edge_cut": int(report["edge_cut"]),
                    "halo_bytes_per_sweep": int(sprog.halo_bytes_per_sweep()),
                    "report_halo_bytes_per_sweep": int(report["halo_bytes_per_sweep"]),
                    "partition_seconds": t_part,
                    "shard_seconds": t_shard,
                    "machine": f"{platform.node()} {os.cpu_count()} cores, emulated CPU devices",
                    "jax": jax.__version__,
                }
            )
            print(json.dumps(rows[-1]) if args.json else _line(rows[-1]), flush=True)
    if args.plot:
        plot(rows, args.plot)


def _line(r: dict) -> str:
    return (
        f"{r['method']:>7} {r['parts']:>2} parts: {r['flips_per_ns']:.4f} flips/ns, "
        f"cut {r['edge_cut']:,}, halo {r['halo_bytes_per_sweep']:,} B/sweep"
    )


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for method, marker in (("metis", "o"), ("random", "s"), ("contiguous", "^")):
        sel = [r for r in rows if r["method"] == method]
        if not sel:
            continue
        parts = [r["parts"] for r in sel]
        ax1.plot(parts, [r["flips_per_ns"] for r in sel], marker=marker, label=method)
        ax2.plot(parts, [max(r["halo_bytes_per_sweep"], 1) for r in sel], marker=marker, label=method)
    base = next((r["flips_per_ns"] for r in rows if r["parts"] == 1), None)
    if base:
        ax1.axhline(0.8 * base, color="gray", ls="--", lw=1, label="80% of 1 part")
    ax1.set(xlabel="graph parts (emulated devices)", ylabel="flips / ns", title=f"{rows[0]['model']}, {rows[0]['chains']} chain(s)")
    ax2.set(xlabel="graph parts", ylabel="halo bytes per sweep", yscale="log", title="exchanged per sweep")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
