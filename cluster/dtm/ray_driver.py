"""The DTM driver under Ray: it runs in a process started with `spawn` (Ray starts its processes
with a fork that runs Python code, unsafe where JAX's threads already run), connects to Ray (or
starts a local loopback instance, as `cluster.ray_launch.init_ray` does), trains the steps in
actors and evaluates in that process; the summary comes back through a pipe."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

from ..ray_launch import RayLaunch, in_spawned_driver, init_ray
from .config import DTMConfig, config_from_dict


def _drive_with_ray(raw: dict, workdir: str, force: bool, init_steps: dict, launch: RayLaunch) -> dict:
    """The spawned driver: connect to (or start) Ray, drive the training, shut a local Ray down."""
    import logging

    logging.getLogger("absl").setLevel(logging.WARNING)
    started = init_ray(launch)  # before `ray` is imported in this process
    import ray

    try:
        from .run import drive

        return drive(config_from_dict(raw), workdir, force=force, echo=print, init_steps=init_steps, ray_launch=launch)
    finally:
        if started:
            ray.shutdown()


def train_in_ray(config: DTMConfig, workdir: str | pathlib.Path, *, force: bool, init_steps: dict, launch: RayLaunch,
                 echo: Callable = print) -> dict:
    """Run the DTM driver with Ray actors in a fresh process and return its summary.

    **Arguments:**

    - `config`: the validated config.
    - `workdir`: the run's workdir (shared storage for every actor).
    - `force`, `init_steps`: as `train_dtm`.
    - `launch`: the Ray settings (`workers` actors, `cpus_per_worker`, `devices_per_worker`).
    - `echo`: unused in the child (it prints); kept for the signature of `train_dtm`.
    """
    return in_spawned_driver(_drive_with_ray, (config.to_dict(), str(pathlib.Path(workdir).absolute()), force,
                                               init_steps, launch), name="distthrml-dtm")
