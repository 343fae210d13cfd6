"""Sweep throughput on one device: the same THRML-API programs through distthrml and thrml 0.1.4.

Every program is built and run exactly as a THRML user writes it (node objects, `IsingEBM` +
`IsingSamplingProgram` or `FactorSamplingProgram`, `jax.jit(jax.vmap(sample_states))` over
chains), once per library, back to back in this process. Throughput is
`chains * nodes * sweeps / elapsed ns`, timed after a compile/warm-up call, with
`block_until_ready`.

    python benchmarks/single_device.py                        # the headline cases
    python benchmarks/single_device.py --suite curves --png benchmarks/results/single_device.png
    python benchmarks/single_device.py --case torus:256:64 --case pegasus:14:256 --repeats 3
    python benchmarks/single_device.py --rng per_node,thrml    # distthrml's streams to run

distthrml runs in the random streams given by `--rng` (default `per_node,multispin`; `all` adds
`thrml`): `per_node` (the chains-innermost kernels), `multispin` (32 chains per uint32 word,
for spin programs whose couplings have one magnitude per node; other cases are skipped) and
`thrml` (THRML's key splits and `jax.random` draws, the same samples as thrml); the stream is
chosen the way a user chooses it, with `distthrml.set_rng` before building the program.

Each case is `graph:size:chains` with graph one of torus (size = side; unit couplings, random
biases), ising (the same torus without biases: Onsager's model), pegasus (size = m; +-1
couplings, random biases), rrg (random 3-regular graph, size = nodes), potts (4-state Potts
torus, size = side). Next to every case the reference bit-packed kernel
(`benchmarks/reference_kernel.py`, this machine's ceiling for exact Gibbs sampling) runs on a
torus of the case's side (256 for other graphs) with its chains rounded up to 32, for `--sweeps`
sweeps per call (the cases run at most as many), and every
figure is reported as a fraction of it and as a ratio to thrml. One JSON line per (case,
library, stream) goes to stdout (and `--jsonl`, appended), with the load average.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time

# benchmarks/partition.py would otherwise shadow the partition package
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

import jax
import jax.numpy as jnp
import numpy as np

from cluster.workloads.build import random_states
from partition.coloring import greedy_color
from partition.generators import checkerboard_colors, edges_to_csr, pegasus_edges, random_regular_edges, torus_edges

HEADLINE = ["torus:256:64", "pegasus:14:256", "ising:256:64", "potts:256:16", "torus:1024:8"]
CURVES = [
    "torus:64:1", "torus:64:16", "torus:128:16", "torus:256:8", "torus:256:64",
    "pegasus:6:16", "pegasus:14:16", "pegasus:14:256",
    "rrg:10000:4", "rrg:10000:64", "rrg:100000:16",
    "potts:64:4", "potts:128:16", "potts:256:16",
]
POTTS_Q = 4


def graph_of(kind: str, size: int) -> tuple[int, np.ndarray, np.ndarray]:
    """(nodes, edges [E, 2], colors [N]) of a benchmark graph."""
    if kind in ("torus", "ising", "potts"):
        return size * size, torus_edges(size, size), checkerboard_colors(size, size)
    edges = pegasus_edges(size) if kind == "pegasus" else random_regular_edges(size, 3, seed=0)
    n = int(edges.max()) + 1
    return n, edges, greedy_color(edges_to_csr(edges, n))


def build(lib_name: str, kind: str, n: int, edges: np.ndarray, colors: np.ndarray, rng: str | None = None):
    """The program, its free blocks and the all-nodes block, built through the THRML API of `lib_name`
    (distthrml in random stream `rng`)."""
    lib = __import__(lib_name)
    if rng is not None:
        lib.set_rng(rng)
    models = __import__(f"{lib_name}.models", fromlist=["models"])
    rng = np.random.default_rng(0)
    blocks_ids = [np.flatnonzero(colors == c).tolist() for c in range(int(colors.max()) + 1)]
    if kind == "potts":
        nodes = [lib.CategoricalNode() for _ in range(n)]
        weights = jnp.asarray(rng.normal(size=(len(edges), POTTS_Q, POTTS_Q)) * 0.3, jnp.float32)
        factor = models.CategoricalEBMFactor(
            [lib.Block([nodes[a] for a in edges[:, 0].tolist()]), lib.Block([nodes[b] for b in edges[:, 1].tolist()])],
            weights,
        )
        blocks = [lib.Block([nodes[i] for i in ids]) for ids in blocks_ids]
        spec = lib.BlockGibbsSpec(blocks, [], {lib.CategoricalNode: jax.ShapeDtypeStruct((), jnp.uint8)})
        samplers = [models.CategoricalGibbsConditional(POTTS_Q) for _ in blocks]
        program = lib.FactorSamplingProgram(spec, samplers, [factor], [])
    else:
        nodes = [lib.SpinNode() for _ in range(n)]
        pairs = [(nodes[a], nodes[b]) for a, b in edges.tolist()]
        signs = rng.choice([-1.0, 1.0], size=len(edges)) if kind not in ("torus", "ising") else np.ones(len(edges))
        biases = np.zeros(n) if kind == "ising" else rng.normal(size=n) * 0.1
        model = models.IsingEBM(
            nodes, pairs, jnp.asarray(biases, jnp.float32), jnp.asarray(signs, jnp.float32), jnp.array(0.3, jnp.float32),
        )
        blocks = [lib.Block([nodes[i] for i in ids]) for ids in blocks_ids]
        program = models.IsingSamplingProgram(model, blocks, [])
    return program, blocks, lib.Block(nodes)


def time_sweeps(lib_name: str, program, blocks, all_nodes, chains: int, sweeps: int, repeats: int, categorical: bool):
    """Seconds of `sweeps` sweeps of `chains` chains (best of `repeats`), compile excluded."""
    lib = __import__(lib_name)
    schedule = lib.SamplingSchedule(n_warmup=sweeps, n_samples=1, steps_per_sample=1)

    def init(key):
        return random_states(key, blocks, chains, POTTS_Q if categorical else None)

    def one_chain(key, state):
        return lib.sample_states(key, program, schedule, state, [], [all_nodes])

    run = jax.jit(jax.vmap(one_chain))
    state = init(jax.random.key(1))
    jax.block_until_ready(run(jax.random.split(jax.random.key(2), chains), state))  # compile + warm-up
    best = float("inf")
    for r in range(repeats):
        keys = jax.random.split(jax.random.key(3 + r), chains)
        start = time.perf_counter()
        jax.block_until_ready(run(keys, state))
        best = min(best, time.perf_counter() - start)
    return best


def _reference_kernel():
    # benchmarks/ is off sys.path (see above): load the reference kernel by its file
    spec = importlib.util.spec_from_file_location("reference_kernel", os.path.join(HERE, "reference_kernel.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ceiling(kind: str, size: int, chains: int, sweeps: int, repeats: int, cache: dict) -> dict:
    """The reference bit-packed kernel's figure next to a case (cached per lattice and chains),
    timed over as many sweeps per call as the cases (`--sweeps`)."""
    side = size if kind in ("torus", "ising", "potts") else 256
    key = (side, -(-chains // 32) * 32)
    if key not in cache:
        cache[key] = _reference_kernel().measure(side, key[1], sweeps, repeats)
    return cache[key]


def measure(case: str, libraries: list[str], sweeps: int, repeats: int, budget_s: float, rngs: list[str], ceilings: dict | None) -> list[dict]:
    kind, size, chains = case.split(":")
    size, chains = int(size), int(chains)
    n, edges, colors = graph_of(kind, size)
    out = []
    runs = [(lib, rng) for lib in libraries for rng in (rngs if lib == "distthrml" else [None])]
    for lib_name, rng in runs:
        start = time.perf_counter()
        try:
            program, blocks, all_nodes = build(lib_name, kind, n, edges, colors, rng)
        except Exception as err:  # a stream that cannot sample this program (multispin on Potts)
            if type(err).__name__ != "ProgramError":
                raise
            print(json.dumps({"benchmark": "single_device", "case": case, "library": lib_name, "rng": rng, "skipped": str(err)}), flush=True)
            continue
        build_s = time.perf_counter() - start
        # a short probe sizes the timed run so that slow points do not take minutes
        probe = time_sweeps(lib_name, program, blocks, all_nodes, chains, 2, 1, kind == "potts")
        n_sweeps = int(max(2, min(sweeps, budget_s / max(probe / 2, 1e-9))))
        seconds = time_sweeps(lib_name, program, blocks, all_nodes, chains, n_sweeps, repeats, kind == "potts")
        record = {
            "benchmark": "single_device",
            "case": case,
            "graph": kind,
            "size": size,
            "library": lib_name,
            "rng": rng or "thrml",
            "nodes": n,
            "edges": int(len(edges)),
            "colors": int(colors.max()) + 1,
            "chains": chains,
            "dof": chains * n,
            "sweeps": n_sweeps,
            "repeats": repeats,
            "seconds": round(seconds, 5),
            "flips_per_ns": round(chains * n * n_sweeps / seconds / 1e9, 5),
            "build_seconds": round(build_s, 3),
            "machine": f"{platform.machine()} {jax.devices()[0].platform} x{os.cpu_count()} cpus",
            "jax": jax.__version__,
            "load": round(os.getloadavg()[0], 2),
        }
        if ceilings is not None:
            ref = ceiling(kind, size, chains, sweeps, repeats, ceilings)
            record["ceiling"] = f"reference_kernel torus {ref['side']}x{ref['side']} x {ref['chains']} chains"
            record["ceiling_flips_per_ns"] = ref["flips_per_ns"]
            record["fraction_of_ceiling"] = round(record["flips_per_ns"] / ref["flips_per_ns"], 4)
        print(json.dumps(record), flush=True)
        out.append(record)
    return out


def plot(records: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    markers = {"torus": "o", "ising": "v", "pegasus": "s", "rrg": "^", "potts": "D"}
    colors = {"distthrml[per_node]": "tab:blue", "distthrml[multispin]": "tab:red", "distthrml[thrml]": "tab:green", "thrml": "tab:orange"}

    def label(r):
        return r["library"] if r["library"] == "thrml" else f"distthrml[{r.get('rng', 'per_node')}]"

    for lib in sorted({label(r) for r in records}):
        for kind in markers:
            pts = sorted((r["dof"], r["flips_per_ns"]) for r in records if label(r) == lib and r["graph"] == kind)
            if pts:
                x, y = zip(*pts)
                ax.plot(x, y, marker=markers[kind], color=colors.get(lib), label=f"{lib} {kind}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parallel degrees of freedom (chains x nodes)")
    ax.set_ylabel("flips / ns")
    ax.set_title(f"Block Gibbs throughput, one device ({platform.machine()}, {os.cpu_count()} cpus)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=["headline", "curves"], default="headline")
    parser.add_argument("--case", action="append", help="graph:size:chains (repeatable; overrides --suite)")
    parser.add_argument("--library", action="append", choices=["distthrml", "thrml"], help="default: both")
    parser.add_argument("--sweeps", type=int, default=50, help="most sweeps per timed run")
    parser.add_argument("--budget", type=float, default=4.0, help="target seconds per timed run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rng", default="per_node,multispin", help="distthrml's random streams, comma separated (per_node, multispin, thrml), or all")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the reference kernel's figures")
    parser.add_argument("--jsonl", help="append the JSON lines to this file")
    parser.add_argument("--png", help="plot flips/ns against chains x nodes")
    args = parser.parse_args(argv)

    cases = args.case or (HEADLINE if args.suite == "headline" else CURVES)
    libraries = args.library or ["distthrml", "thrml"]
    rngs = ["per_node", "multispin", "thrml"] if args.rng == "all" else args.rng.split(",")
    ceilings = None if args.no_ceiling else {}
    records = []
    for case in cases:
        records += measure(case, libraries, args.sweeps, args.repeats, args.budget, rngs, ceilings)
    if args.jsonl:
        with open(args.jsonl, "a") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
    if args.png:
        plot(records, args.png)
    by_case: dict = {}
    for r in records:
        name = r["library"] if r["library"] == "thrml" else f"distthrml[{r['rng']}]"
        by_case.setdefault(r["case"], {})[name] = r
    for case, v in by_case.items():
        for name, r in v.items():
            if name == "thrml":
                continue
            line = f"# {case}: {name} {r['flips_per_ns']} flips/ns"
            if "thrml" in v:
                line += f" = {r['flips_per_ns'] / v['thrml']['flips_per_ns']:.2f}x thrml ({v['thrml']['flips_per_ns']})"
            if "ceiling_flips_per_ns" in r:
                line += f", {r['fraction_of_ceiling']:.3f} of the ceiling ({r['ceiling_flips_per_ns']})"
            print(line + f"; load {r['load']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
