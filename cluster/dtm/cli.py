"""`distthrml train CONFIG` for `model.kind: dtm` configs: the handler `cluster/train/cli.py`
hands them to, with the same flags (`--workdir`, `--force`, `--no-progress`, the Ray flags) and
`--init-step t=PATH`."""

from __future__ import annotations

import argparse
import pathlib


def wants_dtm(path: str | pathlib.Path) -> bool:
    """Whether the config file asks for a DTM (`model.kind: dtm`); unreadable files are left to
    the Boltzmann machine's loader, which names the problem."""
    from ..config_file import ConfigError, read_yaml
    from .config import is_dtm

    try:
        return is_dtm(read_yaml(path))
    except ConfigError:
        return False


def run(args: argparse.Namespace) -> int:
    """Run a DTM training job with parsed `distthrml train` arguments; returns the exit status.

    **Arguments:**

    - `args`: from `cluster.train.cli.add_parser`'s parser.
    """
    import dataclasses
    import logging
    import sys

    from ..ray_launch import RayLaunch, wants_ray
    from ..train.stops import STOPS, Stopped

    ray = wants_ray(args)
    if not ray:
        STOPS.install()
        STOPS.hold()  # before JAX loads: a stop during start-up waits for a safe point
    try:
        from .config import load_dtm_config
        from .inputs import check_dtm_inputs, parse_init_steps

        config = load_dtm_config(args.config)
        check_dtm_inputs(config, args.workdir)
        init_steps = parse_init_steps(getattr(args, "init_step", None), config.diffusion.steps)
        if args.no_progress:
            config = dataclasses.replace(config, output=dataclasses.replace(config.output, progress=False))
        logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax logs every save at INFO
        launch = None
        if ray:
            launch = RayLaunch(address=args.address, workers=args.workers, devices_per_worker=args.devices_per_worker,
                               cpus_per_worker=args.cpus_per_worker, use_gpu=args.use_gpu)
        elif config.sharding.parts > 1:
            from ..devices import run_devices

            run_devices(config.sharding.parts)  # emulated CPU devices, before JAX starts
        from .job import train_dtm

        if not ray:
            STOPS.release()
        summary = train_dtm(config, args.workdir, force=args.force, init_steps=init_steps, ray_launch=launch)
    except Stopped as stop:
        print(f"distthrml train: stopped by {stop} during start-up", file=sys.stderr)
        return stop.exit_code
    finally:
        if not ray:
            STOPS.uninstall()
    if "stopped_by" in summary:
        at = f"; progress saved at epoch {summary['epochs']}" if summary.get("epochs") is not None else ""
        print(f"distthrml train: stopped by {summary['stopped_by']}{at}", file=sys.stderr)
        return summary["exit_code"]
    return 0
