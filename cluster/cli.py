"""The `distthrml` command line. Every subcommand is one module that holds its parser and its
handler side by side: `add_parser(subparsers)` registers the parser and sets `handler` on the
parsed arguments; the handler returns the exit status and raises on bad input, which `main`
reports as one line. Building the parser imports neither JAX nor Ray (handlers import what
they need), so `--help` and argument errors are instant."""

from __future__ import annotations

import _thread
import argparse
import contextlib
import sys
import threading

from . import launch_cli, partition_cli
from .emulate import cli as emulate_cli
from .run import cli as run_cli
from .train import cli as train_cli

SUBCOMMANDS = (run_cli, partition_cli, train_cli, emulate_cli, launch_cli)  # in help order

INTERRUPTED = 130  # the shell's status for a command stopped by SIGINT (128 + 2)
REDELIVERY_DELAY_S = 0.05


def build_parser() -> argparse.ArgumentParser:
    """The parser of `distthrml` with every subcommand."""
    parser = argparse.ArgumentParser(prog="distthrml", description="Distributed block-Gibbs sampling (THRML-compatible).")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in SUBCOMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `distthrml` with `argv` (default: the process's arguments); returns the exit status:
    0 done, 2 bad input (one line `distthrml: error: ...` on standard error), 130 interrupted.

    **Arguments:**

    - `argv`: the arguments after the program name.
    """
    args = build_parser().parse_args(argv)
    try:
        with interrupts_not_dropped():
            return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print(f"distthrml {args.command}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except (ValueError, OSError) as err:
        # bad input: ConfigError (cluster), PartitionError (partition) and distthrml's errors are ValueErrors
        print(f"distthrml: error: {_one_line(err)}", file=sys.stderr)
        return 2


@contextlib.contextmanager
def interrupts_not_dropped():
    """Inside, a Ctrl-C whose KeyboardInterrupt Python had to drop (its handler ran inside a
    garbage collector callback, as JAX registers one, or a `__del__`) is delivered again, so
    it reaches the code it interrupts instead of being reported as unraisable and lost."""
    previous = sys.unraisablehook
    inside = threading.Event()
    inside.set()

    def redeliver():
        if inside.is_set():  # not once the command has returned
            _thread.interrupt_main()

    def hook(unraisable):
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            # from another thread, a moment later: raised at once, it would be dropped in this
            # hook too; should it land in another callback, it comes back here and is re-sent
            threading.Timer(REDELIVERY_DELAY_S, redeliver).start()
        else:
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        inside.clear()
        sys.unraisablehook = previous


def _one_line(err: Exception) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
