"""`distthrml run` under Ray: the driver validates the config and partitions the model once; every
Ray Train worker then runs the same job (`run_sampling`) on a mesh spanning all workers' devices,
with the driver's partition; process 0 writes the files and checkpoints. A worker that dies makes
the group restart (`--max-failures`), and the restarted group resumes from the newest intact
checkpoint, so the run still ends with the samples of an uninterrupted one."""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from ..ray_launch import RayLaunch, run_on_workers
from .config import RunConfig, resolve_parts


def launch_run(config: RunConfig, launch: RayLaunch, *, checkpointing: bool) -> dict:
    """Run the job of `config` on `launch.workers` Ray Train workers; returns rank 0's summary.

    **Arguments:**

    - `config`: the validated config (its `devices` key is replaced by the workers' devices).
    - `launch`: the Ray settings (`devices_per_worker` CPU devices per worker, or one GPU each).
    - `checkpointing`: checkpoint in `output.dir` and resume from it (`--workdir`).
    """
    from ..workloads.build import build_model, partition_model

    devices = launch.workers * (1 if launch.use_gpu else launch.devices_per_worker)
    parts = resolve_parts(config, devices)
    if parts * config.sharding.chains_axis > devices:
        from ..config_file import ConfigError

        raise ConfigError(f"sharding.parts ({parts}) x sharding.chains_axis ({config.sharding.chains_axis}) needs more "
                          f"devices than the {devices} of {launch.workers} worker(s)")
    # workers run in Ray's own folder: paths are made absolute here
    out = str(pathlib.Path(config.output.dir).absolute())
    source = str(pathlib.Path(config.source).absolute()) if config.source else None
    config = dataclasses.replace(config, output=dataclasses.replace(config.output, dir=out), source=source)
    assignment = None
    if parts > 1:  # partitioned once, here, for every worker (and every restart of the group)
        model = build_model(config.model, config.source)
        sh = config.sharding
        assignment = np.asarray(partition_model(model, parts, sh.method, sh.seed).assignment, np.int32)
    arguments = {"config": config, "assignment": assignment, "checkpointing": checkpointing}
    return run_on_workers(run_on_worker, arguments, launch, pathlib.Path(out) / "ray", name="distthrml-run",
                          max_failures=launch.max_failures)


def run_on_worker(arguments: dict) -> dict | None:
    """Ray Train worker function: the job on every process's devices; rank 0 returns the summary."""
    import jax

    from .job import run_sampling

    summary = run_sampling(arguments["config"], checkpointing=arguments["checkpointing"], devices=jax.devices(),
                           assignment=arguments["assignment"])
    return summary if jax.process_index() == 0 else None
