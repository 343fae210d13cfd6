"""The progress bar of every long command (`run`, `train`, `emulate`): one behaviour for all of
them. The bar is drawn only when standard error is a terminal; in a log, a pipe or a test it is
off, so that no `\\r`-separated bar lines end up in files. `--no-progress` turns it off on a
terminal too."""

from __future__ import annotations

import argparse
import sys


def add_progress_flag(parser: argparse.ArgumentParser) -> None:
    """Add `--no-progress` to a command's parser.

    **Arguments:**

    - `parser`: the subcommand's parser.
    """
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (there is none anyway when standard error is not a terminal)")


def progress_bar(total: int, *, enabled: bool = True, **options):
    """A tqdm bar of `total` steps, shown only if `enabled` and standard error is a terminal.

    **Arguments:**

    - `total`: the number of steps.
    - `enabled`: the command's progress setting (`--no-progress`, `output.progress`).
    - `options`: further `tqdm` options (`desc`, `unit`, `initial`, ...).
    """
    from tqdm import tqdm

    shown = enabled and sys.stderr.isatty()
    return tqdm(total=total, disable=not shown, dynamic_ncols=True, **options)
