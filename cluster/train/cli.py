"""`distthrml train CONFIG --workdir DIR`: its parser and its handler.

Runs in this process by default; under Ray (`--launcher ray`, `--address`, or `RAY_ADDRESS`
set, as in a `ray job submit` entrypoint) it launches a Ray Train `JaxTrainer` instead.
"""

from __future__ import annotations

import argparse

from ..progress import add_progress_flag
from ..ray_launch import add_ray_arguments


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `distthrml train` on an argparse subparsers object.

    **Arguments:**

    - `subparsers`: the result of `ArgumentParser.add_subparsers()`.
    """
    parser = subparsers.add_parser("train", help="train a Boltzmann machine or a denoising thermodynamic model (model.kind: dtm)")
    parser.add_argument("config", help="YAML training config (see configs/train_digits.yaml)")
    parser.add_argument("--workdir", required=True, help="checkpoints, metrics and plots go here; rerun to resume")
    parser.add_argument("--force", action="store_true", help="start over in a workdir holding another config's checkpoints")
    add_progress_flag(parser)
    add_ray_arguments(parser, devices_per_worker=1)
    parser.add_argument("--max-failures", type=int, default=2, help="worker-group restarts Ray Train may do")
    parser.add_argument("--init-step", action="append", metavar="T=PATH",
                        help="model.kind dtm: start diffusion step T from another run's parameters (a workdir or "
                             "a step checkpoint); repeatable")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run `distthrml train` with parsed arguments; returns the exit status.

    **Arguments:**

    - `args`: from the parser `add_parser` made.
    """
    import dataclasses
    import logging
    import sys

    from ..dtm.cli import wants_dtm

    if wants_dtm(args.config):  # model.kind: dtm (cluster/dtm/)
        from ..dtm.cli import run as run_dtm

        return run_dtm(args)
    from ..ray_launch import wants_ray
    from .stops import STOPS, Stopped

    if not wants_ray(args):
        # before JAX loads: a SIGTERM or Ctrl-C during start-up waits for a safe point, then exits
        STOPS.install()
        STOPS.hold()
    try:
        from .config import ConfigError, load_config
        from .inputs import check_training_inputs

        config = load_config(args.config)
        if args.init_step:
            raise ConfigError("--init-step applies to model.kind: dtm configs only")
        check_training_inputs(config, args.workdir)  # on the driver, before training or Ray starts
        if args.no_progress:
            config = dataclasses.replace(config, output=dataclasses.replace(config.output, progress=False))
        logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax logs every save at INFO
        if not wants_ray(args):
            from .run import train

            STOPS.release()
            summary = train(config, args.workdir, force=args.force)
            if "stopped_by" in summary:
                saved = f"; progress saved at step {summary['steps']}" if summary["steps"] else ""
                print(f"distthrml train: stopped by {summary['stopped_by']}{saved}", file=sys.stderr)
                return summary["exit_code"]
            return 0
    except Stopped as stop:
        print(f"distthrml train: stopped by {stop} during start-up", file=sys.stderr)
        return stop.exit_code
    finally:
        STOPS.uninstall()
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
