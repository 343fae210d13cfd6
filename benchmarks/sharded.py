"""Sharded against unsharded sampling, measured in one run on the same programs and chains.

For every case (`torus:side:chains`, a periodic Ising lattice at beta 0.3 with checkerboard
blocks, built array-natively), in one process with emulated CPU devices:

- `unsharded`: `jax.jit(jax.vmap(sample_states))` of the program: the fastest unsharded path;
- `sharded`: `shard_program(program, parts)` for every `--parts`, METIS, on that many devices;

timed in interleaved rounds (unsharded, then every sharded variant, repeated) and reported as
flips/ns (best round). Emulated devices slow the unsharded path of their process down a little
(256x256 x 64, 2 cores, three alternating runs: 1.83-1.86 flips/ns with 8 devices against
1.99-2.01 without), and on this shared box a whole process now and then runs at about 0.4x, so
the unsharded path also runs in processes of its own without emulated devices, before and after
those rounds (`path: unsharded, own process`, the better of the two). `ratio_to_unsharded`
compares every figure with the faster unsharded figure of its random stream (either process),
`ratio_to_fastest_unsharded` with the fastest unsharded figure of any stream. With `--processes`, the
`--process-case` runs as 1 process pinned to one core running the unsharded kernel, and as
N processes pinned to one core each (`jax.distributed`, gloo) sampling it sharded N ways.

    python benchmarks/sharded.py --jsonl benchmarks/results/sharded.jsonl --png benchmarks/results/sharded.png
    python benchmarks/sharded.py --case torus:256:64 --parts 1 2 --repeats 3
    python benchmarks/sharded.py --no-devices --processes 2          # the pinned processes only

One JSON line per measurement goes to stdout (and `--jsonl`, appended). Every line carries the
machine's load average and core count: this box is shared, so read ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

# benchmarks/partition.py would otherwise shadow the partition package
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

CASES = ["torus:256:64", "torus:1024:8"]
PROCESS_CASE = "torus:512:32"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", action="append", default=None, help=f"torus:side:chains (default: {' '.join(CASES)})")
    parser.add_argument("--parts", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--exchange", nargs="+", default=["auto"], help="exchange strategies to measure (auto, ppermute, all_to_all)")
    parser.add_argument("--rng", nargs="+", default=["per_node"], help="random streams (per_node, multispin): each sharded figure against its stream's unsharded one")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timing rounds (best reported)")
    parser.add_argument("--flips", type=float, default=2e8, help="node updates per timed call (sets the sweeps)")
    parser.add_argument("--processes", type=int, default=0, help="also run the pinned multi-process comparison with this many processes")
    parser.add_argument("--process-case", default=PROCESS_CASE)
    parser.add_argument("--no-devices", action="store_true", help="skip the emulated-device cases")
    parser.add_argument("--jsonl", default=None, help="append the JSON lines to this file")
    parser.add_argument("--png", default=None, help="draw the ratios to this PNG")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: one rank of --processes
    parser.add_argument("--plain-worker", nargs=2, default=None, help=argparse.SUPPRESS)  # internal: CASE RNG unsharded, no emulated devices
    return parser.parse_args(argv)


def parse_case(case: str) -> tuple[int, int]:
    kind, side, chains = case.split(":")
    if kind != "torus":
        raise SystemExit(f"unknown case {case!r}: only torus:side:chains")
    return int(side), int(chains)


def build(side: int, chains: int, rng: str = "per_node"):
    """The program (in random stream `rng`), initial states, keys and a one-node probe block of
    a side x side torus."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import distthrml as dt
    from distthrml.models import IsingEBM, IsingSamplingProgram, hinton_init
    from partition.generators import checkerboard_colors, torus_edges

    n = side * side
    edges = torus_edges(side, side)
    nodes = dt.make_block(dt.SpinNode, n)
    model = IsingEBM(nodes, (nodes[edges[:, 0]], nodes[edges[:, 1]]), jnp.zeros(n), jnp.ones(len(edges)), jnp.array(0.3))
    colors = checkerboard_colors(side, side)
    blocks = [nodes[np.flatnonzero(colors == c)] for c in (0, 1)]
    program = IsingSamplingProgram(model, blocks, [], rng=rng)
    init = hinton_init(jax.random.key(0), model, blocks, (chains,))
    keys = jax.random.split(jax.random.key(1), chains)
    return program, init, keys, [blocks[0][:1]]  # observe one node: the timing is the sweeps'


def sweeps_for(side: int, chains: int, flips: float) -> int:
    return max(4, round(flips / (side * side * chains)))


def runners(program, init, keys, probe, sweeps: int, parts: list[int], exchanges: list[str]):
    """`[(label, extra fields, zero-argument run)]`: the unsharded path, then every sharded one."""
    import jax

    import distthrml as dt

    schedule = dt.SamplingSchedule(sweeps, 1, 1)
    unsharded = jax.jit(jax.vmap(lambda k, i: dt.sample_states(k, program, schedule, i, [], probe)))
    out = [("unsharded", {"parts": 1}, lambda: unsharded(keys, init))]
    for p in parts:
        for exchange in exchanges:
            sprog = dt.shard_program(program, p, exchange=exchange)
            run = jax.jit(lambda k, i, sprog=sprog: dt.sample_states(k, sprog, schedule, i, [], probe))
            extra = {"parts": p, "exchange": exchange, "resolved_exchange": list(sprog.exchange),
                     "halo_bytes_per_sweep": sprog.halo_bytes_per_sweep(), "edge_cut": sprog.partition.report()["edge_cut"]}
            out.append(("sharded", extra, lambda run=run: run(keys, init)))
    return out


def time_interleaved(runs, repeats: int) -> list[list[float]]:
    """Seconds of every run in every round (each run compiled and warmed up first)."""
    import jax

    for _, _, run in runs:
        jax.block_until_ready(run())
    times = [[] for _ in runs]
    for _ in range(repeats):
        for i, (_, _, run) in enumerate(runs):
            start = time.perf_counter()
            jax.block_until_ready(run())
            times[i].append(time.perf_counter() - start)
    return times


def machine() -> dict:
    return {"machine": platform.node(), "cores": len(os.sched_getaffinity(0)), "load_avg": os.getloadavg()[0]}


def device_cases(args) -> list[dict]:
    import jax

    rows = []
    for case in args.case or CASES:
        side, chains = parse_case(case)
        sweeps = sweeps_for(side, chains, args.flips)
        runs, streams = [], []
        for rng in args.rng:
            program, init, keys, probe = build(side, chains, rng)
            runs += runners(program, init, keys, probe, sweeps, args.parts, args.exchange)
            streams += [rng] * (len(runs) - len(streams))
        plain = {rng: [plain_unsharded(case, rng, args)] for rng in args.rng}
        times = time_interleaved(runs, args.repeats)  # every stream's runs interleaved in one run
        for rng in args.rng:
            plain[rng].append(plain_unsharded(case, rng, args))
        flips = side * side * chains * sweeps
        rates = [flips / min(t) / 1e9 for t in times]
        here = {rng: rate for (label, _, _), rng, rate in zip(runs, streams, rates) if label == "unsharded"}
        own = {rng: max(r["flips_per_ns"] for r in rows_) for rng, rows_ in plain.items()}
        base = {rng: max(here[rng], own[rng]) for rng in args.rng}  # each stream's fastest unsharded figure
        fastest = max(base.values())  # the fastest unsharded figure of any stream
        for rng, (before, after) in plain.items():
            rows.append({
                "benchmark": "sharded", "case": case, "rng": rng, "nodes": side * side, "chains": chains, "sweeps": sweeps,
                "path": "unsharded, own process", "parts": 1, "devices": 1, "flips_per_ns": own[rng],
                "flips_per_ns_before_after": [before["flips_per_ns"], after["flips_per_ns"]],
                "ratio_to_unsharded": own[rng] / base[rng], "ratio_to_fastest_unsharded": own[rng] / fastest,
                "jax": jax.__version__, **machine(),
            })
            emit(rows[-1], args.jsonl)
        for (label, extra, _), rng, t, rate in zip(runs, streams, times, rates):
            rows.append({
                "benchmark": "sharded", "case": case, "rng": rng, "nodes": side * side, "chains": chains, "sweeps": sweeps,
                "path": label, **extra, "devices": extra["parts"] if label == "sharded" else 1,
                "flips_per_ns": rate, "ratio_to_unsharded": rate / base[rng], "ratio_to_fastest_unsharded": rate / fastest,
                "seconds": t, "jax": jax.__version__, **machine(),
            })
            emit(rows[-1], args.jsonl)
    return rows


def plain_unsharded(case: str, rng: str, args) -> dict:
    """The unsharded path's figure in a process of its own, without emulated devices."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform_device_count"))
    command = [sys.executable, os.path.abspath(__file__), "--plain-worker", case, rng, "--repeats", str(args.repeats), "--flips", str(args.flips)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def plain_worker(args) -> None:
    import jax

    case, rng = args.plain_worker
    side, chains = parse_case(case)
    sweeps = sweeps_for(side, chains, args.flips)
    program, init, keys, probe = build(side, chains, rng)
    (_, _, run), = runners(program, init, keys, probe, sweeps, [], [])
    t = time_interleaved([("", {}, run)], args.repeats)[0]
    print(json.dumps({"devices": jax.device_count(), "flips_per_ns": side * side * chains * sweeps / min(t) / 1e9}))


def process_cases(args) -> list[dict]:
    """1 pinned process (unsharded kernel) against `args.processes` pinned processes (sharded)."""
    from distthrml.sharding.launch import launch_local

    rows = []
    for n_processes in (1, args.processes):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "rank0.json")
            command = [sys.executable, os.path.abspath(__file__), "--worker", out, "--process-case", args.process_case,
                       "--repeats", str(args.repeats), "--flips", str(args.flips)]
            launch_local(command, n_processes, 1, cpus_per_process=1, timeout=1800)
            with open(out) as f:
                rows.append(json.load(f))
    base = rows[0]["flips_per_ns"]
    for r in rows:
        r["ratio_to_one_pinned_process"] = r["flips_per_ns"] / base
        emit(r, args.jsonl)
    return rows


def worker(args) -> None:
    """One rank of the pinned comparison: 1 process runs the unsharded kernel, N shard N ways."""
    from distthrml.sharding.distributed import initialize_from_env

    initialize_from_env()
    import jax

    import distthrml as dt

    side, chains = parse_case(args.process_case)
    sweeps = sweeps_for(side, chains, args.flips)
    program, init, keys, probe = build(side, chains)
    schedule = dt.SamplingSchedule(sweeps, 1, 1)
    n = jax.process_count()
    if n == 1:
        run = jax.jit(jax.vmap(lambda k, i: dt.sample_states(k, program, schedule, i, [], probe)))
    else:
        sprog = dt.shard_program(program, jax.device_count())
        run = jax.jit(lambda k, i: dt.sample_states(k, sprog, schedule, i, [], probe))
    t = time_interleaved([("", {}, lambda: run(keys, init))], args.repeats)[0]
    if jax.process_index() == 0:
        row = {
            "benchmark": "sharded_processes", "case": args.process_case, "nodes": side * side, "chains": chains,
            "sweeps": sweeps, "path": "unsharded" if n == 1 else "sharded", "processes": n, "parts": jax.device_count(),
            "cpus_per_process": 1, "flips_per_ns": side * side * chains * sweeps / min(t) / 1e9, "seconds": t,
            "jax": jax.__version__, **machine(),
        }
        with open(args.worker, "w") as f:
            json.dump(row, f)


def emit(row: dict, path: str | None) -> None:
    line = json.dumps(row)
    print(line, flush=True)
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    device_rows = [r for r in rows if r["benchmark"] == "sharded" and r["path"] == "sharded"]
    process_rows = [r for r in rows if r["benchmark"] == "sharded_processes"]
    fig, axes = plt.subplots(1, 2 if process_rows else 1, figsize=(11 if process_rows else 6.5, 4.2), squeeze=False)
    ax = axes[0, 0]
    cases = list(dict.fromkeys(r["case"] for r in device_rows))
    for case in cases:
        for exchange, rng in dict.fromkeys((r["exchange"], r.get("rng", "per_node")) for r in device_rows if r["case"] == case):
            sel = [r for r in device_rows if r["case"] == case and r["exchange"] == exchange and r.get("rng", "per_node") == rng]
            label = f"{case.split(':')[1]}$^2$ x {sel[0]['chains']} chains, {rng}" + ("" if exchange == "auto" else f" ({exchange})")
            ax.plot([r["parts"] for r in sel], [r["ratio_to_unsharded"] for r in sel], marker="o", label=label)
    ax.axhline(1.0, color="black", lw=1, label="faster unsharded jit(vmap), same stream")
    ax.set(xlabel="graph parts = emulated CPU devices", ylabel="flips/ns relative to unsharded", xscale="log",
           title=f"sharded / faster unsharded process ({device_rows[0]['cores'] if device_rows else '?'} cores)")
    ax.set_xscale("log", base=2)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    if process_rows:
        ax = axes[0, 1]
        labels = [f"{r['processes']} pinned process{'es' if r['processes'] > 1 else ''}\n({r['path']})" for r in process_rows]
        bars = ax.bar(labels, [r["flips_per_ns"] for r in process_rows], color=["gray", "tab:blue"][: len(process_rows)])
        for b, r in zip(bars, process_rows):
            ax.annotate(f"{r['ratio_to_one_pinned_process']:.2f}x", (b.get_x() + b.get_width() / 2, b.get_height()),
                        ha="center", va="bottom")
        ax.set(ylabel="flips/ns", title=f"jax.distributed (gloo), {process_rows[0]['case']}, 1 core each")
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    if args.plain_worker:
        return plain_worker(args)
    rows = []
    if not args.no_devices:
        os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={max(args.parts)} " + os.environ.get("XLA_FLAGS", "")
        rows += device_cases(args)
    if args.processes:
        rows += process_cases(args)
    if args.png and rows:
        plot(rows, args.png)


if __name__ == "__main__":
    main()
