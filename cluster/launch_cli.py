"""`distthrml launch -- SCRIPT`: run a script as N local processes of one `jax.distributed` run
(`distthrml.sharding.launch.launch_local`); its parser and its handler."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `distthrml launch` on an argparse subparsers object.

    **Arguments:**

    - `subparsers`: the result of `ArgumentParser.add_subparsers()`.
    """
    parser = subparsers.add_parser("launch", help="run a script as N local processes of one jax.distributed run")
    parser.add_argument("-n", "--processes", type=int, default=2, help="number of processes")
    parser.add_argument("-d", "--devices-per-process", type=int, default=1, help="CPU devices per process")
    parser.add_argument("--timeout", type=float, default=None, help="seconds before all processes are killed")
    parser.add_argument("--cpus-per-process", type=int, default=None,
                        help="pin each rank to its own CPUs, this many each (one machine as several hosts)")
    parser.add_argument("command", nargs="+", help="the program to run, after --")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run `distthrml launch` with parsed arguments; returns the exit status.

    **Arguments:**

    - `args`: from the parser `add_parser` made.
    """
    from distthrml.sharding.launch import launch_local

    command = list(args.command)
    if command and command[0].endswith(".py"):
        command = [sys.executable, *command]
    launch_local(command, args.processes, args.devices_per_process, timeout=args.timeout, capture=False,
                 cpus_per_process=args.cpus_per_process)
    return 0
