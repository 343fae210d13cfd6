"""`run_sampling`: the `distthrml run` job end to end (devices, model, partition, chunks, report,
files)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ..config_file import ConfigError, in_file
from ..devices import run_devices, usable_cores
from ..workloads.build import build_model
from ..workloads.schema import model_keys
from . import stats
from .chunks import plan_chunks, run_chunks
from .config import RunConfig, check_device_count, resolve_parts
from .engine import fastest_engine, initial_state, make_engine
from .observe import make_observer, node_slots
from .output import Staging
from .plots import plot_run
from .report import format_report, sharding_summary
from .stream import KERNELS, choose_stream


def run_sampling(config: RunConfig, *, echo: Callable[[str], Any] = print) -> dict:
    """Run the sampling job of `config`; returns the summary also written to `summary.json`.

    Everything that can fail on bad input (config, devices, files, graph) fails before the
    first compilation, and the output folder's files are replaced only once all new ones exist.

    **Arguments:**

    - `config`: a validated config (`load_run_config`).
    - `echo`: where the report lines go.
    """
    with in_file(config.source):  # errors found while building name the config file too
        return _run(config, echo)


def _run(config: RunConfig, echo: Callable[[str], Any]) -> dict:
    wall = time.perf_counter()
    sh = config.sharding
    # first: CPU emulation must precede the backend start
    devices = run_devices(config.devices, sh.parts * sh.chains_axis if sh.parts else None)
    check_device_count(config, len(devices))
    m, s, out = config.model, config.sampling, config.output

    model, stream = choose_stream(build_model(m, config.source), s.rng, s.chains, sh.chains_axis)
    parts = resolve_parts(config, len(devices), model.n_nodes * s.chains if config.devices == "auto" else None)
    echo(f"built {model.name} in {model.build_seconds:.2f} s; partitioning into {parts} part(s) and compiling")
    if parts > model.n_nodes:
        raise ConfigError(f"sharding.parts ({parts}) is more than the model's {model.n_nodes} nodes")
    observer = make_observer(model, out.moments)
    base = jax.random.key(s.seed)
    init = initial_state(model, s.chains, jax.random.fold_in(base, 0))
    chunks = plan_chunks(s.warmup, s.samples, s.steps_per_sample)
    n = model.n_nodes
    engine = make_engine(model, observer, config, devices, parts)
    timed = None
    if config.devices == "auto" and not sh.parts and parts > 1 and sh.chains_axis == 1:
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

    result = run_chunks(engine, chunks, jax.random.fold_in(base, 1), init, s.chains, progress=out.progress, describe=describe)
    energy, order = stats.traces(model, m, result.records)
    sample = ~result.is_warmup
    sweeps = int(sum(c.sweeps for c in chunks))
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
        "sharding": sharding_summary(engine, parts, config.sharding.chains_axis) | ({"timed": timed} if timed else {}),
        "rng": stream,
        "kernel": KERNELS[stream],
        "sweeps": sweeps,
        "chunks": len(chunks),
        "flips_per_ns": n * s.chains * sweeps / result.sample_seconds / 1e9,
        "observables": stats.observables(model, m, energy[:, sample], order[:, sample]),
        "timing": {
            "build_seconds": model.build_seconds,
            "partition_seconds": engine.partition_seconds,
            "compile_seconds": engine.compile_seconds,
            "sample_seconds": result.sample_seconds,
        },
    }
    # flat copies of the headline figures, for scripts that read summary.json
    summary.update({k: summary["observables"][k] for k in ("energy_per_site", "energy_per_site_stderr", "order_parameter")})
    if "onsager_energy_per_site" in summary["observables"]:
        summary["onsager_energy_per_site"] = summary["observables"]["onsager_energy_per_site"]

    slots = node_slots(model)
    with Staging(out.dir) as staging:
        if out.samples:
            staging.npz("samples.npz", **_samples(model, result, slots, energy, order, out.snapshots))
        if out.moments and result.moments is not None:
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
    echo("wrote " + ", ".join(str(p) for p in staging.written))
    return summary


def _node_order(model, states: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Global-state slots -> node order; spins as int8 +-1; lattices as `[..., rows, cols]`."""
    x = states[..., slots]
    if model.categories is None:
        x = np.where(x, 1, -1).astype(np.int8)
    return x.reshape(*x.shape[:-1], *model.lattice) if model.lattice else x


def _pick(snapshots: np.ndarray, sweeps: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` snapshots evenly spread over the run, the last one included."""
    index = np.unique(np.linspace(0, len(snapshots) - 1, min(count, len(snapshots))).round().astype(int))
    return snapshots[index], sweeps[index]


def _samples(model, result, slots, energy, order, n_snapshots) -> dict:
    sample = ~result.is_warmup
    snaps, snap_sweeps = _pick(result.snapshots, result.snapshot_sweep, n_snapshots)
    return {
        "final_state": _node_order(model, result.final_state, slots),
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
