"""Chips spread over Ray-launched processes: W Ray Train workers with D devices each join one
`jax.distributed` run, so the system's chips are the W x D global devices (chip c is
`jax.devices()[c]`, so chips `w*D .. w*D+D-1` live in worker w's process). The driver partitions
and places once; every worker rebuilds the model from the config (deterministic), takes the
driver's assignment and placement, samples its shards, and rank 0 counts the traffic of the
exchange plans its process executed and returns it with the samples.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..config_file import ConfigError
from .config import EmulateConfig


def chips_per_worker(n_chips: int, workers: int, devices_per_worker: int | None) -> int:
    """Devices each worker contributes: `devices_per_worker`, else enough for all chips.

    **Arguments:**

    - `n_chips`: chips in the system.
    - `workers`: Ray workers.
    - `devices_per_worker`: the requested devices per worker, or None.
    """
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    d = devices_per_worker or math.ceil(n_chips / workers)
    if d * workers < n_chips:
        raise ConfigError(f"{workers} workers x {d} devices hold {d * workers} chips; the system has {n_chips}")
    return d


def check_every_worker_holds_a_part(placement: np.ndarray, workers: int, devices_per_worker: int) -> None:
    """Every process of a `jax.distributed` run takes part in the sharded sweep, so each worker
    must own at least one placed part's chip.

    **Arguments:**

    - `placement`: `[K]` chip of every part.
    - `workers`, `devices_per_worker`: the launch shape.
    """
    used = np.unique(np.asarray(placement) // devices_per_worker)
    idle = sorted(set(range(workers)) - {int(w) for w in used})
    if idle:
        raise ConfigError(
            f"Ray worker(s) {idle} would hold no part ({len(placement)} parts on {workers} workers x "
            f"{devices_per_worker} chips); use fewer workers or more parts"
        )


def chips_job(arguments: dict):
    """Ray worker function: sample the config's model with part p on global device
    `placement[p]`; rank 0 returns samples, timings and the executed plans' traffic."""
    import jax

    import distthrml as dt
    from partition import Partition, as_csr

    from ..workloads.build import build_model
    from .sampling import sample_on_chips
    from .topology import build_topology
    from .traffic import count_traffic

    config: EmulateConfig = arguments["config"]
    model = build_model(config.model, config.source)
    assignment = np.asarray(arguments["assignment"], np.int64)
    part = Partition(assignment=assignment, n_parts=int(arguments["parts"]),
                     csr=as_csr(dt.interaction_graph(model.program)), method=config.mapping.method,
                     seed=config.mapping.seed, capacity=config.chips.capacity)
    placement = np.asarray(arguments["placement"], np.int64)
    devices = jax.devices()
    ran = sample_on_chips(model, part, placement, devices, config)
    if jax.process_index() != 0:
        return None
    layout = ran["sprog"].layout
    traffic = count_traffic(model.program, layout, placement, build_topology(config.links), config.links.state_bits)
    measured = dict(ran["measured"])
    measured["process_of_chip"] = [int(d.process_index) for d in devices[: config.n_chips]]
    return {"samples": ran["samples"], "keys": np.asarray(jax.random.key_data(ran["keys"])), "measured": measured,
            "traffic": traffic, "halo_bytes_per_sweep": int(ran["sprog"].halo_bytes_per_sweep()),
            "schedule": ran["schedule"]}


def sample_on_ray_chips(config: EmulateConfig, partition, placement: np.ndarray, launch, storage=None) -> dict:
    """Sample the mapped model on chips spread over `launch.workers` Ray processes.

    **Arguments:**

    - `config`: the chip-system config.
    - `partition`: the driver's partition (its assignment goes to the workers).
    - `placement`: `[K]` chip of every part.
    - `launch`: a `cluster.ray_launch.RayLaunch` (its `devices_per_worker` are chips per worker).
    - `storage`: Ray Train's storage folder (default: `<output.dir>/ray`).

    **Returns:** rank 0's result: `samples`, `keys`, `measured` (with `processes` and
    `process_of_chip`), `traffic`, `halo_bytes_per_sweep`, `schedule`.
    """
    import pathlib

    from ..ray_launch import run_on_workers

    chips_per_worker(config.n_chips, launch.workers, launch.devices_per_worker)  # raises if too few
    check_every_worker_holds_a_part(placement, launch.workers, launch.devices_per_worker)
    if config.source:  # workers may run in another folder; the config's relative paths follow its file
        config = dataclasses.replace(config, source=str(pathlib.Path(config.source).absolute()))
    arguments = {"config": config, "assignment": np.asarray(partition.assignment, np.int32),
                 "parts": partition.n_parts, "placement": np.asarray(placement, np.int64)}
    storage = pathlib.Path(storage or pathlib.Path(config.output.dir) / "ray").absolute()
    return run_on_workers(chips_job, arguments, launch, storage, name="distthrml-emulate")
