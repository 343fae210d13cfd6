"""`distthrml run CONFIG`: its parser and its handler."""

from __future__ import annotations

import argparse

from ..progress import add_progress_flag
from ..ray_launch import add_ray_arguments


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `distthrml run CONFIG` on an argparse subparsers object.

    **Arguments:**

    - `subparsers`: the result of `ArgumentParser.add_subparsers()`.
    """
    parser = subparsers.add_parser(
        "run",
        help="sample a model described by a config file",
        description="Build, partition, shard and sample the model of a YAML config; print a report and write "
        "summary.json, samples.npz / moments.npz and run.png.",
    )
    parser.add_argument("config", help="YAML run configuration (see configs/quickstart.yaml)")
    parser.add_argument("--out", help="output directory (overrides output.dir)")
    parser.add_argument("--devices", type=_devices, help="'auto' (one CPU device per core), a number of CPU devices to "
                        "emulate, or 0 for JAX's own devices (overrides devices)")
    parser.add_argument("--parts", type=int, help="number of graph parts (overrides sharding.parts)")
    parser.add_argument("--workdir", help="output folder with checkpoints (overrides output.dir); rerun the same "
                        "command to resume, on any number of devices or workers")
    add_progress_flag(parser)
    add_ray_arguments(parser, devices_per_worker=1)
    parser.add_argument("--max-failures", type=int, default=2,
                        help="worker-group restarts Ray Train may do (each resumes from the newest checkpoint)")
    parser.set_defaults(handler=run)
    return parser


def _devices(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number of devices, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    """Run `distthrml run` with parsed arguments; returns the exit status.

    **Arguments:**

    - `args`: from the parser `add_parser` made.
    """
    from ..config_file import ConfigError
    from ..ray_launch import RayLaunch, wants_ray
    from .config import as_raw, load_run_config, parse_run_config

    config = load_run_config(args.config)
    if args.out is not None and args.workdir is not None:
        raise ConfigError("give --out or --workdir, not both (--workdir is the output folder, with checkpoints)")
    out = args.workdir if args.workdir is not None else args.out
    if any(x is not None for x in (out, args.devices, args.parts)) or args.no_progress:
        # re-validate with the overrides applied, so that they get the same checks as the file
        raw = as_raw(config)
        if out is not None:
            raw["output"]["dir"] = out
        if args.devices is not None:
            raw["devices"] = None if args.devices == 0 else args.devices
        if args.parts is not None:
            raw["sharding"]["parts"] = args.parts
        if args.no_progress:
            raw["output"]["progress"] = False
        config = parse_run_config(raw, source=config.source)
    checkpointing = args.workdir is not None or config.output.checkpoint_every is not None
    if wants_ray(args):
        from .ray_job import launch_run

        launch = RayLaunch(address=args.address, workers=args.workers, devices_per_worker=args.devices_per_worker,
                           cpus_per_worker=args.cpus_per_worker, max_failures=args.max_failures, use_gpu=args.use_gpu)
        launch_run(config, launch, checkpointing=checkpointing)  # rank 0 printed the report
        print(f"distthrml run: finished on {launch.workers} Ray worker(s); files in {config.output.dir}")
        return 0
    from .job import run_sampling

    run_sampling(config, checkpointing=checkpointing)
    return 0
