"""The `distthrml` command line. Each subcommand registers itself through an `add_*_parser`
function listed in `_subcommands`; its handler is stored as `handler` on the parsed args."""

from __future__ import annotations

import argparse
import sys

from .errors import DistThrmlError


def _subcommands() -> list:
    """The `add_*_parser(subparsers)` functions of the subcommands, in help order."""
    from .jobs.command import add_run_parser

    adders = [add_run_parser]
    try:
        from partition import cli as partition_cli
    except ImportError:
        partition_cli = None
    if partition_cli is not None and hasattr(partition_cli, "add_parser"):
        adders.append(partition_cli.add_parser)
    adders.append(_add_train_parser)
    adders.append(_add_emulate_parser)
    adders.append(_add_launch_parser)
    return adders


def _add_launch_parser(subparsers) -> None:
    from .sharding import launch

    parser = subparsers.add_parser("launch", help="run a script as N local processes of one jax.distributed run")
    launch.add_arguments(parser)
    parser.set_defaults(handler=launch.run_from_args)


def _train(args) -> int:
    # cluster (and Ray) load only when `distthrml train` runs: distthrml never imports Ray
    from cluster.train.cli import run

    return run(args)


def _add_train_parser(subparsers) -> None:
    # declared here, not in cluster/, so that building the parser imports neither cluster nor Ray
    parser = subparsers.add_parser("train", help="train a Boltzmann machine (checkpointed; optionally under Ray Train)")
    parser.set_defaults(handler=_train)
    parser.add_argument("config", help="YAML training config (see configs/train_digits.yaml)")
    parser.add_argument("--workdir", required=True, help="checkpoints, metrics and plots go here; rerun to resume")
    parser.add_argument("--force", action="store_true", help="start over in a workdir holding another config's checkpoints")
    _add_ray_arguments(parser, devices_per_worker=1)
    parser.add_argument("--max-failures", type=int, default=2, help="worker-group restarts Ray Train may do")


def _add_ray_arguments(parser, devices_per_worker: int | None) -> None:
    parser.add_argument("--launcher", choices=["auto", "local", "ray"], default="auto",
                        help="auto: Ray Train when --address or RAY_ADDRESS is given, else this process")
    parser.add_argument("--address", help="Ray address (default: RAY_ADDRESS, else a new local loopback instance)")
    parser.add_argument("--workers", type=int, default=1, help="Ray Train workers (one per host process)")
    parser.add_argument("--devices-per-worker", type=int, default=devices_per_worker,
                        help="CPU devices per worker (CPU runs)" + ("" if devices_per_worker else "; default: chips / workers"))
    parser.add_argument("--cpus-per-worker", type=float, default=1, help="Ray CPUs reserved per worker")
    parser.add_argument("--use-gpu", action="store_true", help="one GPU per worker (Ray Train sets up jax.distributed)")


def _emulate(args) -> int:
    # cluster loads only when `distthrml emulate` runs: building the parser imports no cluster code
    from cluster.emulate.cli import run

    return run(args)


def _add_emulate_parser(subparsers) -> None:
    parser = subparsers.add_parser("emulate", help="map a model onto a many-chip system, sample it on emulated chips, "
                                   "report link traffic and projected sweep time / energy")
    parser.set_defaults(handler=_emulate)
    parser.add_argument("config", help="YAML chip-system config (see configs/chips/small.yaml)")
    parser.add_argument("--out", help="output folder (default: the config's output.dir)")
    parser.add_argument("--sweep", help="sweep mode: parts=4,8,16 or bandwidth=1e10,2e10,... (plots sweep.png)")
    parser.add_argument("--parts", type=int, help="number of parts K (default: mapping.parts, else ceil(nodes / capacity))")
    parser.add_argument("--bandwidth", type=float, help="override links.bandwidth (bits/s per direction)")
    parser.add_argument("--no-sample", action="store_true", help="map and project only, do not sample")
    parser.add_argument("--no-plots", action="store_true", help="write no PNGs")
    _add_ray_arguments(parser, devices_per_worker=None)  # Ray: the chips are the workers' devices


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distthrml", description="Distributed block-Gibbs sampling (THRML-compatible).")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in _subcommands():
        add(commands)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    try:
        if handler is not None:
            return int(handler(args) or 0)
        from partition import cli as partition_cli

        return int(partition_cli.run(args) or 0)
    except (DistThrmlError, ValueError, FileNotFoundError) as err:
        print(f"distthrml: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
