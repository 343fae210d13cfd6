"""The chains-innermost sweep on pieces of the state against the sweep it replaced, in one process.

A (`old`) is the sweep of 43f3c71 (blocks written into whole entries by `write_block`, tails
gathered from the entries), restored by patching `distthrml.engine.chain`; B (`new`) is the
current `sweep_chains` on `split_entries` pieces. Both run the same program and keys (the
samples are compared: `identical`), in alternating calls; the line gives flips/ns (best of
REPS) and new/old as the ratio of the bests and as the median of adjacent-call ratios, which
is steadier on a shared box. Cases as in `single_device.py` (graph:size:chains).

    python benchmarks/pieces_ab.py torus:256:64 10 8
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import time

# benchmarks/partition.py would otherwise shadow the partition package
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

import jax
import numpy as np

import distthrml
from cluster.workloads.build import random_states

spec = importlib.util.spec_from_file_location("single_device", os.path.join(HERE, "single_device.py"))
sd = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sd)
sw = importlib.import_module("distthrml.engine.sweep")  # the package exports a function `sweep`
ch = importlib.import_module("distthrml.engine.chain")


def old_sweep(plan, tables, k0, k1, state):
    """The sweep of 43f3c71: every block written into its whole entry."""
    for group in plan.sampling_order:
        updates = [(b, sw._update_block_chains(plan, b, tables[b], k0, k1, state)) for b in group]
        for b, out in updates:
            state = sw.write_block(plan, b, state, out)
    return state


NEW = (ch.sweep_chains, ch.split_entries, ch.join_entries)
OLD = (old_sweep, lambda plan, st: st, lambda x: x)


def runner(case, sweeps, impl):
    kind, size, chains = case.split(":"); size, chains = int(size), int(chains)
    n, edges, colors = sd.graph_of(kind, size)
    program, blocks, alln = sd.build("distthrml", kind, n, edges, colors, "per_node")
    sched = distthrml.SamplingSchedule(n_warmup=sweeps, n_samples=1, steps_per_sample=1)
    run = jax.jit(jax.vmap(lambda k, s: distthrml.sample_states(k, program, sched, s, [], [alln])))
    state = random_states(jax.random.key(1), blocks, chains, sd.POTTS_Q if kind == "potts" else None)
    keys = jax.random.split(jax.random.key(2), chains)
    ch.sweep_chains, ch.split_entries, ch.join_entries = impl
    out = jax.block_until_ready(run(keys, state))  # traced with impl
    ch.sweep_chains, ch.split_entries, ch.join_entries = NEW
    return (lambda: jax.block_until_ready(run(keys, state))), out, chains * n * sweeps


case, sweeps, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 8
fa, oa, work = runner(case, sweeps, OLD)
fb, ob, _ = runner(case, sweeps, NEW)
same = all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(jax.tree.leaves(oa), jax.tree.leaves(ob)))
load0 = os.getloadavg()[0]
ts = {"A": [], "B": []}
for r in range(reps):
    for name, f in ((("A", fa), ("B", fb)) if r % 2 == 0 else (("B", fb), ("A", fa))):
        t = time.perf_counter(); f(); ts[name].append(time.perf_counter() - t)
ratios = sorted(a / b for a, b in zip(ts["A"], ts["B"]))
best = {k: min(v) for k, v in ts.items()}
print(json.dumps({"case": case, "sweeps": sweeps, "reps": reps, "identical": same, "old_fpns": round(work / best["A"] / 1e9, 3), "new_fpns": round(work / best["B"] / 1e9, 3),
                  "new_over_old_best": round(best["A"] / best["B"], 3), "new_over_old_pair_median": round(ratios[len(ratios) // 2], 3),
                  "load_start_end": [round(load0, 2), round(os.getloadavg()[0], 2)], "utc": time.strftime("%H:%M", time.gmtime())}), flush=True)
