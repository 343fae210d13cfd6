"""DTM training measured: per-step wall time and samples/s, the T steps under Ray against the same
steps one after another, and peak memory per step-graph size (up to 1M nodes, sharded).

    python benchmarks/dtm.py --part steps --config configs/dtm_digits.yaml --epochs 3
    python benchmarks/dtm.py --part ray --config configs/dtm_digits.yaml --epochs 3 --workers 4
    python benchmarks/dtm.py --part memory --sides 64 128 256 512 1024 --parts 4

`steps`: every step trained in this process (local launcher); wall time and samples/s of each
step's epochs after its first (which compiles). `ray`: the config trained with the local
launcher, then with `--workers` Ray actors (loopback Ray started here), evaluation off, both from
empty workdirs; wall times of the whole job and their ratio, and whether the parameters are bit
for bit the same. `memory`: for every grid side, a fresh process builds one step graph (digits16
pixels spread over it, degree 8), shards it over `--parts` emulated CPU devices, and runs
`--iterations` training iterations; its peak RSS, the iteration time and samples/s.

One JSON line per measurement goes to stdout (and `--jsonl`, appended); every line carries the
load average: the box is shared, read ratios rather than absolutes.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]  # benchmarks/partition.py shadows the package
REPO = pathlib.Path(HERE).parent


def _context() -> dict:
    return {"load_average": [round(x, 2) for x in os.getloadavg()], "cores": os.cpu_count()}


def emit(record: dict, jsonl: str | None) -> None:
    line = json.dumps({**record, **_context()})
    print(line, flush=True)
    if jsonl:
        with open(jsonl, "a") as f:
            f.write(line + "\n")


def _config(path: str, epochs: int | None, evaluation: bool):
    import dataclasses

    from cluster.dtm.config import load_dtm_config

    c = load_dtm_config(path)
    train = c.train if epochs is None else dataclasses.replace(c.train, epochs=epochs)
    return dataclasses.replace(c, train=train, evaluation=dataclasses.replace(c.evaluation, enabled=evaluation),
                               output=dataclasses.replace(c.output, plots=False, tensorboard=False, progress=False))


def part_steps(args) -> None:
    from cluster.dtm.data import load_dataset
    from cluster.dtm.trainer import StepTrainer

    config = _config(args.config, args.epochs, False)
    ds = load_dataset(config.data)
    with tempfile.TemporaryDirectory() as d:
        for t in range(1, config.diffusion.steps + 1):
            trainer = StepTrainer(config, d, t, ds.train, ds.shape, echo=lambda *a: None)
            start = time.perf_counter()
            result = trainer.train_until(config.train.epochs)
            wall = time.perf_counter() - start
            trainer.close()
            later = result["rows"][1:] or result["rows"]
            emit({"part": "steps", "config": args.config, "t": t, "epochs": config.train.epochs,
                  "iterations": result["rows"][-1]["iteration"], "wall_s": round(wall, 3),
                  "first_epoch_s": round(result["rows"][0]["wall_s"], 3),
                  "epoch_s": round(sum(r["wall_s"] for r in later) / len(later), 3),
                  "samples_per_s": round(sum(r["samples_per_s"] for r in later) / len(later), 1),
                  "grid_nodes": trainer.compiled.graph.n_grid, "edges": len(trainer.compiled.graph.edges)}, args.jsonl)


def part_ray(args) -> None:
    from cluster.dtm.job import train_dtm
    from cluster.ray_launch import RayLaunch

    config = _config(args.config, args.epochs, False)
    with tempfile.TemporaryDirectory() as d:
        walls = {}
        for launcher in ("local", "ray"):
            launch = None
            if launcher == "ray":
                launch = RayLaunch(workers=args.workers, cpus_per_worker=1, local_cpus=max(2, args.workers))
            start = time.perf_counter()
            train_dtm(config, pathlib.Path(d) / launcher, echo=lambda *a: None, ray_launch=launch)
            walls[launcher] = time.perf_counter() - start
        same = _same_states(pathlib.Path(d), config.diffusion.steps)
    emit({"part": "ray", "config": args.config, "steps": config.diffusion.steps, "epochs": config.train.epochs,
          "workers": args.workers, "sequential_wall_s": round(walls["local"], 2), "ray_wall_s": round(walls["ray"], 2),
          "speedup": round(walls["local"] / walls["ray"], 3), "bit_identical": same,
          "note": "wall times include process start-up and compilation (Ray: one compile per actor, in parallel)"},
         args.jsonl)


def _same_states(root: pathlib.Path, T: int) -> bool:
    out = []
    for t in range(1, T + 1):
        sums = []
        for launcher in ("local", "ray"):
            ck = root / launcher / "steps" / f"t{t}" / "checkpoints"
            last = max(int(p.name) for p in ck.iterdir() if p.name.isdigit())
            sums.append(json.loads((ck / str(last) / "meta" / "metadata").read_text())["checksum"])
        out.append(sums[0] == sums[1])
    return all(out)


def part_memory(args) -> None:
    for side in args.sides:
        cmd = [sys.executable, __file__, "--memory-worker", str(side), "--parts", str(args.parts),
               "--iterations", str(args.iterations), "--batch", str(args.batch)]
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={args.parts}", JAX_PLATFORMS="cpu")
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
        if out.returncode != 0:
            emit({"part": "memory", "grid_side": side, "error": out.stderr.strip().splitlines()[-1:]}, args.jsonl)
            continue
        emit(json.loads(out.stdout.strip().splitlines()[-1]), args.jsonl)


def memory_worker(args) -> None:
    """One step graph of side x side, trained a few iterations in this fresh process."""
    import jax

    from cluster.dtm.config import config_from_dict
    from cluster.dtm.data import load_dataset
    from cluster.dtm.trainer import StepTrainer

    side = args.memory_worker
    # exactly one batch of training images: an epoch is one iteration
    raw = {"data": {"source": "digits16", "limit": args.batch + 1, "holdout_fraction": 1 / (args.batch + 1)}, "model": {"kind": "dtm", "grid_side": side, "degree": 8},
           "diffusion": {"steps": 1}, "sharding": {"parts": args.parts if side * side >= 4 * args.parts else 1},
           "sampling": {"positive_warmup": 1, "positive_samples": 1, "negative_warmup": 2, "negative_samples": 1},
           "penalty": {"enabled": False, "measure_every": 10**6}, "train": {"epochs": args.iterations, "batch_size": args.batch,
                                                         "checkpoint_every": 10**6}}
    config = config_from_dict(raw)
    ds = load_dataset(config.data)
    with tempfile.TemporaryDirectory() as d:
        start = time.perf_counter()
        trainer = StepTrainer(config, d, 1, ds.train, ds.shape, echo=lambda *a: None)
        built = time.perf_counter() - start
        result = trainer.train_until(args.iterations)
        trainer.close()
    rows = result["rows"]
    ipe = rows[0]["iteration"]
    later = rows[1:] or rows
    per_iteration = sum(r["wall_s"] for r in later) / (len(later) * ipe)
    s = config.sampling
    sweeps = (s.positive_warmup + (s.positive_samples - 1) * s.positive_steps_per_sample + 1
              + s.negative_warmup + (s.negative_samples - 1) * s.negative_steps_per_sample + 1)
    nodes = side * side + ds.train.shape[1]
    print(json.dumps({
        "part": "memory", "grid_side": side, "nodes": nodes, "edges": len(trainer.compiled.graph.edges),
        "parts": config.sharding.parts, "devices": len(jax.devices()), "chains": args.batch,
        "build_s": round(built, 2), "first_epoch_s": round(rows[0]["wall_s"], 2), "iteration_s": round(per_iteration, 4),
        "samples_per_s": round(sum(r["samples_per_s"] for r in later) / len(later), 2),
        "node_updates_per_s": round(args.batch * sweeps * nodes / per_iteration),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
    }))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["steps", "ray", "memory"], action="append")
    parser.add_argument("--config", default=str(REPO / "configs" / "dtm_digits.yaml"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--sides", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=3, help="memory: training iterations per graph (an epoch each)")
    parser.add_argument("--batch", type=int, default=4, help="memory: chains per phase")
    parser.add_argument("--jsonl", default=None)
    parser.add_argument("--memory-worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_worker is not None:
        return memory_worker(args)
    for part in args.part or ["steps", "ray", "memory"]:
        {"steps": part_steps, "ray": part_ray, "memory": part_memory}[part](args)


if __name__ == "__main__":
    main()
