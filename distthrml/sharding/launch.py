"""A local launcher: N processes on 127.0.0.1 that form one `jax.distributed` run.

For tests, and for users trying a multi-process run on one machine (`distthrml launch`, in
`cluster/launch_cli.py`); multi-host runs are started by Ray (`cluster/`). Each process gets the
environment `initialize_from_env` reads.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

from . import distributed

CPUS = "DISTTHRML_CPUS"  # the CPUs a pinned rank runs on, e.g. "2,3"

# exec'd in place of each pinned rank: set the affinity, then become the command (affinity is
# inherited across exec, so every thread the rank starts later stays on its CPUs)
_PIN = "import os, sys; os.sched_setaffinity(0, [int(c) for c in sys.argv[1].split(',')]); os.execvp(sys.argv[2], sys.argv[2:])"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now.

    **Arguments:**

    - `host`: the address to bind (default the loopback).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def launch_local(
    command: Sequence[str],
    n_processes: int,
    devices_per_process: int = 1,
    *,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    capture: bool = True,
    cpus_per_process: int | None = None,
) -> list[subprocess.CompletedProcess]:
    """Run `command` as `n_processes` processes of one `jax.distributed` run and wait for all.

    If one process fails, the others are stopped (they would wait for it forever).

    **Arguments:**

    - `command`: the program and its arguments (e.g. `[sys.executable, "script.py"]`); the
        script calls `distthrml.sharding.distributed.initialize_from_env()` first.
    - `n_processes`: number of processes.
    - `devices_per_process`: CPU devices each process contributes.
    - `timeout`: seconds before every process is killed and `TimeoutError` raised.
    - `env`: extra environment variables.
    - `capture`: collect stdout/stderr (else they go to this process's).
    - `cpus_per_process`: pin rank r to the r-th group of this many of the CPUs this process may
        use (so one machine stands in for several hosts of that many cores); None: no pinning.

    **Returns:** one `CompletedProcess` per rank; raises `RuntimeError` naming the failed rank.
    """
    if n_processes < 1:
        raise ValueError(f"n_processes must be at least 1, got {n_processes}")
    cpus = cpu_groups(n_processes, cpus_per_process)
    address = f"127.0.0.1:{free_port()}"
    procs = []
    for rank in range(n_processes):
        proc_env = {**os.environ, **(env or {})}
        proc_env.update(
            {
                distributed.COORDINATOR: address,
                distributed.NUM_PROCESSES: str(n_processes),
                distributed.PROCESS_ID: str(rank),
                distributed.LOCAL_DEVICES: str(devices_per_process),
            }
        )
        # A device count forced through XLA_FLAGS would fight jax_num_cpu_devices.
        proc_env.pop("XLA_FLAGS", None)
        argv = list(command)
        if cpus is not None:
            proc_env[CPUS] = ",".join(map(str, cpus[rank]))
            argv = [sys.executable, "-c", _PIN, proc_env[CPUS], *argv]
        pipe = subprocess.PIPE if capture else None
        procs.append(subprocess.Popen(argv, env=proc_env, stdout=pipe, stderr=pipe, text=True))
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        return _wait_all(procs, command, deadline)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()  # reaps it and closes its pipes


def cpu_groups(n_processes: int, cpus_per_process: int | None) -> list[list[int]] | None:
    """Disjoint groups of `cpus_per_process` CPUs (of those this process may use), one per rank.

    **Arguments:**

    - `n_processes`: number of ranks.
    - `cpus_per_process`: CPUs per rank, or None (no pinning: returns None).
    """
    if cpus_per_process is None:
        return None
    if cpus_per_process < 1:
        raise ValueError(f"cpus_per_process must be at least 1, got {cpus_per_process}")
    available = sorted(os.sched_getaffinity(0))
    need = n_processes * cpus_per_process
    if need > len(available):
        raise ValueError(
            f"{n_processes} processes x {cpus_per_process} CPUs need {need} CPUs, but this process may use "
            f"{len(available)} ({available})"
        )
    return [available[r * cpus_per_process : (r + 1) * cpus_per_process] for r in range(n_processes)]


def _wait_all(procs, command, deadline) -> list[subprocess.CompletedProcess]:
    outputs: dict[int, tuple[str, str]] = {}
    # communicate() one process at a time could deadlock on a full pipe of another, so drain
    # each process as it finishes and poll the rest.
    while len(outputs) < len(procs):
        for rank, p in enumerate(procs):
            if rank in outputs or p.poll() is None:
                continue
            out, err = p.communicate()
            outputs[rank] = (out or "", err or "")
            if p.returncode != 0:
                raise RuntimeError(
                    f"rank {rank} of {' '.join(command)} exited with {p.returncode}:\n{(err or '')[-4000:]}"
                )
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"{' '.join(command)} did not finish in time")
        time.sleep(0.05)
    return [subprocess.CompletedProcess(p.args, p.returncode, *outputs[r]) for r, p in enumerate(procs)]
