"""The DTM training job's entry point: in this process, or with the steps in Ray actors."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

from ..config_file import ConfigError
from .config import DTMConfig


def train_dtm(config: DTMConfig, workdir: str | pathlib.Path, *, force: bool = False, echo: Callable = print,
              init_steps: dict | None = None, ray_launch=None) -> dict:
    """Train a DTM in `workdir`, resuming from its steps' checkpoints.

    A SIGTERM or SIGINT (main thread) saves the running step and returns early with
    `summary["stopped_by"]`; rerun to resume.

    **Arguments:**

    - `config`: the validated config.
    - `workdir`: outputs go here.
    - `force`: start over in a workdir that holds another config's checkpoints.
    - `echo`: where to print.
    - `init_steps`: `{t: path}`: start step t from another run's parameters (`--init-step`).
    - `ray_launch`: a `cluster.ray_launch.RayLaunch` to train the steps in Ray actors (the driver
        then runs in a fresh process, `cluster/dtm/ray_driver.py`), or None for this process.

    **Returns:** the summary also written to `summary.json`.
    """
    init_steps = dict(init_steps or {})
    bad = [t for t in init_steps if not 1 <= t <= config.diffusion.steps]
    if bad:
        raise ConfigError(f"--init-step {bad[0]}=...: the config has steps 1..{config.diffusion.steps}")
    if ray_launch is not None:
        from .ray_driver import train_in_ray

        return train_in_ray(config, workdir, force=force, init_steps=init_steps, launch=ray_launch, echo=echo)
    from .run import drive

    return drive(config, workdir, force=force, echo=echo, init_steps=init_steps)
