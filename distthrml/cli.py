"""The `distthrml` command line."""

from __future__ import annotations

import argparse
import sys

from .errors import DistThrmlError


def _run(args) -> int:
    from .sampling_job import load_run_config, run_sampling

    config = load_run_config(args.config)
    if args.out:
        import dataclasses

        config = dataclasses.replace(config, output=dataclasses.replace(config.output, dir=args.out))
    run_sampling(config)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distthrml", description="Distributed block-Gibbs sampling (THRML-compatible).")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="sample a model described by a config file")
    run.add_argument("config", help="YAML run configuration (see configs/quickstart.yaml)")
    run.add_argument("--out", help="output directory (overrides output.dir)")
    run.set_defaults(handler=_run)
    try:
        from partition import cli as partition_cli
    except ImportError:
        partition_cli = None
    if partition_cli is not None and hasattr(partition_cli, "add_parser"):
        partition_cli.add_parser(commands)
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
