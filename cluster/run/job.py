"""`run_sampling`: the `distthrml run` job end to end (devices, model, partition, resume, chunks,
streamed samples, checkpoints, report, files)."""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ..config_file import ConfigError, in_file
from ..devices import run_devices, usable_cores
from ..workloads.build import build_model
from ..lock import WorkdirLock
from ..multihost import broadcast_tree, to_host
from ..workloads.schema import model_keys
from . import resume, stats
from .chunks import Progress, plan_chunks, run_chunks
from .config import RunConfig, check_device_count, resolve_parts
from .engine import fastest_engine, initial_state, make_engine
from .observe import make_observer, node_slots
from .output import Staging
from .plots import plot_run
from .report import format_report, sharding_summary
from .states_file import StatesFile
from .stream import KERNELS, choose_stream


def run_sampling(config: RunConfig, *, echo: Callable[[str], Any] = print, checkpointing: bool = False,
                 devices: list | None = None, assignment: np.ndarray | None = None) -> dict:
    """Run the sampling job of `config`; returns the summary also written to `summary.json`.

    Everything that can fail on bad input (config, devices, files, graph) fails before the
    first compilation, and the output folder's files are replaced only once all new ones exist.
    With `checkpointing` the run saves checkpoints in `output.dir` as it goes (`resume.py`) and
    continues from the newest one if there is one: on any devices, with the same results.

    In a multi-process run every process calls this with the same arguments; only process 0
    writes files and checkpoints (the others get its resume decision by broadcast).

    **Arguments:**

    - `config`: a validated config (`load_run_config`).
    - `echo`: where the report lines go.
    - `checkpointing`: checkpoint and resume in `output.dir` (`--workdir`, `output.checkpoint_every`).
    - `devices`: the devices to run on (a Ray launch's global devices), else chosen from the config.
    - `assignment`: the partition's assignment when the driver of a launch made it, else None.
    """
    with in_file(config.source):  # errors found while building name the config file too
        return _run(config, echo, checkpointing, devices, assignment)


def _run(config: RunConfig, echo: Callable[[str], Any], checkpointing: bool, devices: list | None,
         assignment: np.ndarray | None) -> dict:
    wall = time.perf_counter()
    sh = config.sharding
    auto = devices is None and config.devices == "auto"
    if devices is None:  # first: CPU emulation must precede the backend start
        devices = run_devices(config.devices, sh.parts * sh.chains_axis if sh.parts else None)
    check_device_count(config, len(devices))
    primary = jax.process_index() == 0
    if not primary:
        echo = _quiet
    m, s, out = config.model, config.sampling, config.output

    model, stream = choose_stream(build_model(m, config.source), s.rng, s.chains, sh.chains_axis)
    parts = resolve_parts(config, len(devices), model.n_nodes * s.chains if auto else None)
    if assignment is not None:
        parts = int(np.max(assignment)) + 1
    echo(f"built {model.name} in {model.build_seconds:.2f} s; partitioning into {parts} part(s) and compiling")
    if parts > model.n_nodes:
        raise ConfigError(f"sharding.parts ({parts}) is more than the model's {model.n_nodes} nodes")
    observer = make_observer(model, out.moments, out.states)
    base = jax.random.key(s.seed)
    init = initial_state(model, s.chains, jax.random.fold_in(base, 0))
    chunks = plan_chunks(s.warmup, s.samples, s.steps_per_sample)
    with contextlib.ExitStack() as held:
        checkpoints = _open_checkpoints(config, stream, chunks, held) if checkpointing and primary else None
        progress, resumed_from = _resume(checkpoints, init, echo)
        engine = make_engine(model, observer, config, devices, parts, assignment)
        timed = None
        if auto and not sh.parts and parts > 1 and sh.chains_axis == 1:
            # where sharding pays depends on the machine (caches, how XLA threads a device): time a
            # chunk both ways and keep the faster (the samples are the same either way)
            start = time.perf_counter()
            schedules = [c.schedule for c in chunks]
            common = max(set(schedules), key=schedules.count)
            candidates = [make_engine(model, observer, config, devices, 1), engine]
            keys = jax.random.split(jax.random.fold_in(jax.random.fold_in(base, 1), 0), s.chains)
            engine, seconds = fastest_engine(candidates, common, keys, init, observer.carry_init(model.program))
            parts = engine.parts
            timed = {"parts": [c.parts for c in candidates], "seconds_per_chunk": seconds, "seconds": time.perf_counter() - start}
            echo("timed a chunk: " + ", ".join(f"{c.parts} part(s) {t * 1e3:.0f} ms" for c, t in zip(candidates, seconds))
                 + f"; sampling with {parts} part(s)")

        def describe(rec: dict) -> str:
            energy, _ = stats.traces(model, m, rec)
            return f"E/N {energy[:, -1].mean():.4f}"

        slots = node_slots(model)
        states_file = None
        if out.states and primary:
            shape = (s.chains, s.samples, model.n_nodes)
            per_chunk = max(c.schedule.n_samples for c in chunks if not c.warmup)
            states_file = StatesFile(out.dir, shape, model.categories is not None, per_chunk,
                                     resume=progress.chunks_done > 0)

        io = {"checkpoints": 0, "checkpoint_seconds": 0.0, "states_seconds": 0.0}  # this process's share
        saved = {"at": progress.sample_seconds, "cost": 0.0}  # the last save: sampling time then, and its cost

        def after_chunk(c: int, now: Progress, states: np.ndarray | None) -> None:
            start = time.perf_counter()
            if states_file is not None and not chunks[c].warmup:
                first = int(np.count_nonzero(~now.is_warmup)) - states.shape[1]
                states_file.write(first, _flat_node_order(model, states, slots))
            io["states_seconds"] += time.perf_counter() - start
            if checkpoints is not None and resume.due(chunks, c, out.checkpoint_every, now.sample_seconds - saved["at"],
                                                      saved["cost"]):
                start = time.perf_counter()
                if states_file is not None:
                    states_file.flush()  # a checkpoint after chunk c vouches for the states up to c
                checkpoints.save(now)
                saved.update(at=now.sample_seconds, cost=time.perf_counter() - start)
                io["checkpoints"] += 1
                io["checkpoint_seconds"] += saved["cost"]

        result = run_chunks(engine, chunks, jax.random.fold_in(base, 1), progress, s.chains,
                            show_progress=out.progress and primary, describe=describe, after_chunk=after_chunk)
        if states_file is not None:
            states_file.finish()
        # still holding the workdir: the files are part of the run
        return _report(config, model, stream, engine, parts, devices, chunks, result, resumed_from, timed, slots, wall,
                       echo, primary, io)


def _quiet(*_args) -> None:
    pass


def _open_checkpoints(config: RunConfig, stream: str, chunks: list, held: contextlib.ExitStack) -> resume.RunCheckpoints:
    """Lock `output.dir` (one run per workdir) and open its checkpoints, both released by `held`."""
    workdir = pathlib.Path(config.output.dir)
    workdir.mkdir(parents=True, exist_ok=True)
    lock = WorkdirLock(workdir)
    lock.acquire()
    held.callback(lock.release)
    checkpoints = resume.RunCheckpoints(workdir, config, stream, chunks)
    held.callback(checkpoints.close)
    return checkpoints


def _resume(checkpoints: resume.RunCheckpoints | None, init, echo) -> tuple[Progress, int | None]:
    """Where the run starts: the primary process's newest checkpoint (handed to every process),
    else the beginning. **Returns:** `(progress, chunks done before this process started or None)`."""
    found = checkpoints.restore() if checkpoints is not None else None
    sent = None
    if found is not None:
        progress, folder = found
        echo(f"resumed after chunk {progress.chunks_done} ({folder})")
        sent = {"tree": progress.tree(), "done": np.array(progress.chunks_done), "seconds": np.array(progress.sample_seconds)}
    sent = broadcast_tree(sent)  # a restarted multi-process group must not mix chunks
    if sent is None:
        return Progress.start(to_host(init)), None
    return Progress.from_tree(sent["tree"], int(sent["done"]), float(sent["seconds"])), int(sent["done"])


def _report(config, model, stream, engine, parts, devices, chunks, result: Progress, resumed_from, timed, slots, wall,
            echo, primary, io: dict) -> dict:
    """The summary, the report and (process 0 only) the output files of a finished run."""
    m, s, out = config.model, config.sampling, config.output
    energy, order = stats.traces(model, m, result.records)
    sample = ~result.is_warmup
    sweeps = int(sum(c.sweeps for c in chunks))
    n = model.n_nodes
    summary = {
        "model": model_keys(m),
        "model_name": model.name,
        "sampling": dataclasses.asdict(s),
        "nodes": n,
        "edges": len(model.edges),
        "colors": len(model.blocks),
        "devices": parts * config.sharding.chains_axis,
        "devices_available": len(devices),
        "cores": usable_cores(),
        "platform": devices[0].platform,
        "processes": jax.process_count(),
        "sharding": sharding_summary(engine, parts, config.sharding.chains_axis) | ({"timed": timed} if timed else {}),
        "rng": stream,
        "kernel": KERNELS[stream],
        "sweeps": sweeps,
        "chunks": len(chunks),
        "resumed_after_chunk": resumed_from,
        "flips_per_ns": n * s.chains * sweeps / result.sample_seconds / 1e9 if result.sample_seconds else None,
        "observables": stats.observables(model, m, energy[:, sample], order[:, sample]),
        "timing": {
            "build_seconds": model.build_seconds,
            "partition_seconds": engine.partition_seconds,
            "compile_seconds": engine.compile_seconds,
            "sample_seconds": result.sample_seconds,
            # since this process started (a resumed run's earlier segments are not counted)
            **io,
        },
    }
    # flat copies of the headline figures, for scripts that read summary.json
    summary.update({k: summary["observables"][k] for k in ("energy_per_site", "energy_per_site_stderr", "order_parameter")})
    if "onsager_energy_per_site" in summary["observables"]:
        summary["onsager_energy_per_site"] = summary["observables"]["onsager_energy_per_site"]
    if not primary:
        return summary
    with Staging(out.dir) as staging:
        if out.samples:
            staging.npz("samples.npz", **_samples(model, result, slots, energy, order, out.snapshots))
        if out.moments and result.moments:
            staging.npz("moments.npz", **stats.moments(model, result.moments, slots, s.chains * s.samples))
        if out.plots:
            snaps = _pick(result.snapshots, result.snapshot_sweep, out.snapshots) if model.lattice else (None, None)
            plot_run(
                staging.path("run.png"), title=model.name, beta=m.beta, sweep=result.sweep, energy=energy, order=order,
                warmup_sweeps=s.warmup, onsager=summary.get("onsager_energy_per_site"),
                order_label="magnetization" if model.categories is None else "majority fraction",
                snapshots=None if snaps[0] is None else _node_order(model, snaps[0], slots), snapshot_sweep=snaps[1],
                categories=model.categories,
            )
        summary["timing"]["wall_seconds"] = time.perf_counter() - wall
        staging.json("summary.json", summary)
    echo(format_report(summary))
    echo("wrote " + ", ".join(str(p) for p in staging.written) + (f", {out.dir}/states.zarr" if out.states else ""))
    return summary


def _flat_node_order(model, states: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """`[..., slots]` global states as `[..., nodes]` in node order: spins int8 +-1, categories uint8."""
    x = states[..., slots]
    return np.where(x, 1, -1).astype(np.int8) if model.categories is None else x.astype(np.uint8)


def _node_order(model, states: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Global-state slots -> node order; spins as int8 +-1; lattices as `[..., rows, cols]`."""
    x = _flat_node_order(model, states, slots)
    return x.reshape(*x.shape[:-1], *model.lattice) if model.lattice else x


def _pick(snapshots: np.ndarray, sweeps: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` snapshots evenly spread over the run, the last one included."""
    index = np.unique(np.linspace(0, len(snapshots) - 1, min(count, len(snapshots))).round().astype(int))
    return snapshots[index], sweeps[index]


def _samples(model, result, slots, energy, order, n_snapshots) -> dict:
    sample = ~result.is_warmup
    snaps, snap_sweeps = _pick(result.snapshots, result.snapshot_sweep, n_snapshots)
    return {
        "final_state": _node_order(model, result.state, slots),
        "snapshots": _node_order(model, snaps, slots),
        "snapshot_sweep": snap_sweeps,
        "energy": energy[:, sample],
        "order": order[:, sample],
        "sweep": result.sweep[sample],
        "warmup_energy": energy[:, ~sample],
        "warmup_order": order[:, ~sample],
        "warmup_sweep": result.sweep[~sample],
        "edges": model.edges,
    }
