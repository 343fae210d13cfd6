"""What checkpointing and streaming the samples cost a long sampling run, as fractions of its
sampling time, measured in one process on the same program and chains.

The same `distthrml run` job (a periodic Ising lattice, `--side` x `--side`, `--chains` chains,
beta 0.44) runs three ways, unsharded on one device: plain; checkpointed after every chunk
(`--workdir`); checkpointed with every observed state streamed to `states.zarr`. Each line
gives sampling seconds, checkpoint seconds (and count) and streaming seconds, the checkpoint
size on disk, and the fractions; the plain run's sampling time is the yardstick. The machine is
shared: every line carries the load average.

    python benchmarks/checkpoint_cost.py                           # 1M nodes x 16 chains
    python benchmarks/checkpoint_cost.py --side 256 --chains 16    # a quick one

One JSON line per variant goes to stdout (and `--jsonl`, appended).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

# benchmarks/partition.py would otherwise shadow the partition package
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

from cluster.run.config import parse_run_config  # noqa: E402
from cluster.run.job import run_sampling  # noqa: E402


def _config(args, out: str, states: bool) -> dict:
    return {
        "devices": 1,
        "model": {"kind": "ising2d", "rows": args.side, "cols": args.side, "beta": 0.44},
        "sampling": {"chains": args.chains, "warmup": args.warmup, "samples": args.samples,
                     "steps_per_sample": args.steps_per_sample, "seed": 0},
        "output": {"dir": out, "plots": False, "samples": False, "states": states, "progress": False},
    }


def _bytes(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--steps-per-sample", type=int, default=5)
    parser.add_argument("--jsonl", help="append the JSON lines to this file")
    args = parser.parse_args()
    lines = []
    plain = None
    for name, checkpointing, states in (("plain", False, False), ("checkpointed", True, False),
                                        ("checkpointed+states", True, True)):
        with tempfile.TemporaryDirectory() as out:
            config = parse_run_config(_config(args, out, states))
            summary = run_sampling(config, checkpointing=checkpointing, echo=lambda *a: None)
            t = summary["timing"]
            plain = plain or t["sample_seconds"]
            line = {
                "benchmark": "checkpoint_cost", "variant": name, "nodes": summary["nodes"], "chains": args.chains,
                "sweeps": summary["sweeps"], "chunks": summary["chunks"], "sample_seconds": t["sample_seconds"],
                "checkpoints": t["checkpoints"], "checkpoint_seconds": t["checkpoint_seconds"],
                "states_seconds": t["states_seconds"],
                "checkpoint_fraction": t["checkpoint_seconds"] / plain, "states_fraction": t["states_seconds"] / plain,
                "sampling_vs_plain": t["sample_seconds"] / plain,
                "checkpoint_bytes": _bytes(os.path.join(out, "checkpoints")) if checkpointing else 0,
                "states_bytes": _bytes(os.path.join(out, "states.zarr")) if states else 0,
                "load_average": os.getloadavg()[0], "cores": len(os.sched_getaffinity(0)),
            }
        print(json.dumps(line), flush=True)
        lines.append(line)
    if args.jsonl:
        with open(args.jsonl, "a") as f:
            f.writelines(json.dumps(line) + "\n" for line in lines)


if __name__ == "__main__":
    main()
