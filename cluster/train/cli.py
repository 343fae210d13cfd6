"""`distthrml train CONFIG --workdir DIR`: the entry point behind the `train` subcommand.

Runs in this process by default; under Ray (`--launcher ray`, `--address`, or `RAY_ADDRESS`
set, as in a `ray job submit` entrypoint) it launches a Ray Train `JaxTrainer` instead.
"""

from __future__ import annotations

import argparse
import os


def run(args: argparse.Namespace) -> int:
    """Run the `train` subcommand."""
    from .config import load_config

    import logging

    config = load_config(args.config)
    logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax logs every save at INFO
    use_ray = args.launcher == "ray" or (args.launcher == "auto" and (args.address or os.environ.get("RAY_ADDRESS")))
    if not use_ray:
        from .run import train

        train(config, args.workdir, force=args.force)
        return 0
    from ..ray_launch import RayLaunch, launch_training

    result = launch_training(
        config,
        args.workdir,
        RayLaunch(
            address=args.address, workers=args.workers, devices_per_worker=args.devices_per_worker,
            cpus_per_worker=args.cpus_per_worker, max_failures=args.max_failures, use_gpu=args.use_gpu,
        ),
        force=args.force,
    )
    if result.error is not None:
        raise RuntimeError(f"ray train failed: {result.error}")
    print(f"ray train finished: {result.metrics}; Ray records in {result.path}")
    return 0
