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


# bytes of a sampling job per node and edge, before any chain exists: the graph's arrays, its CSR
# and colouring, METIS's copy, the program's index tables and parameters (22.5 B per edge). An
# upper bound from `benchmarks/build_scale.py` (1M-node torus: 0.75 GB peak; 16M: 6.9 GB).
BYTES_PER_NODE_AND_EDGE = 200
BYTES_PER_STATE = 16  # a chain's state (and its copies in flight) per node
BYTES_PER_OBSERVATION = 64  # per chain and sample: energy, magnetisation and sweep traces


def check_sampling_fits(nodes: int, edges: int, chains: int, samples: int, key: str) -> None:
    """Refuse a sampling job (`run`, `emulate`) whose graph, chains and traces cannot fit in memory.

    **Arguments:**

    - `nodes`, `edges`: the graph's size.
    - `chains`, `samples`: chains, and observations per chain.
    - `key`: the config key that sets the graph's size, for the message.
    """
    graph = BYTES_PER_NODE_AND_EDGE * (nodes + edges)
    check_fits(graph, f"a graph of {nodes:,} nodes and {edges:,} edges", key)
    check_fits(graph + BYTES_PER_STATE * chains * nodes + BYTES_PER_OBSERVATION * chains * samples,
               f"{chains:,} chains of {nodes:,} nodes with {samples:,} observations", key)
