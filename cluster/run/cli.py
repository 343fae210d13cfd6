"""`distthrml run CONFIG`: its parser and its handler."""

from __future__ import annotations

import argparse

from ..progress import add_progress_flag


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
    add_progress_flag(parser)
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
    from .config import as_raw, load_run_config, parse_run_config
    from .job import run_sampling

    config = load_run_config(args.config)
    if any(x is not None for x in (args.out, args.devices, args.parts)) or args.no_progress:
        # re-validate with the overrides applied, so that they get the same checks as the file
        raw = as_raw(config)
        if args.out is not None:
            raw["output"]["dir"] = args.out
        if args.devices is not None:
            raw["devices"] = None if args.devices == 0 else args.devices
        if args.parts is not None:
            raw["sharding"]["parts"] = args.parts
        if args.no_progress:
            raw["output"]["progress"] = False
        config = parse_run_config(raw, source=config.source)
    run_sampling(config)
    return 0
