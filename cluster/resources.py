"""How many bytes a config asks for, checked against the memory this machine has, before anything
is built: a huge size ends in one line naming the key and the estimate, not a MemoryError, a hang
or an XLA abort."""

from __future__ import annotations

import os

from .config_file import ConfigError


def available_bytes() -> int:
    """Memory available to this process: `MemAvailable` of /proc/meminfo, else physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits(estimate: int, what: str, key: str) -> None:
    """Raise `ConfigError` naming `key` when `estimate` bytes exceed the available memory.

    **Arguments:**

    - `estimate`: bytes the config asks for.
    - `what`: what those bytes hold, for the message.
    - `key`: the config key that sets the size.
    """
    have = available_bytes()
    if estimate > have:
        raise ConfigError(f"{key}: {what} needs about {estimate / 2**30:.1f} GiB, more than the "
                          f"{have / 2**30:.1f} GiB of memory available")
