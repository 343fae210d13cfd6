"""Joining a multi-process JAX run (`jax.distributed`), with CPU collectives over gloo.

Every process runs the same program; `shard_program`'s default mesh then spans the devices of all
processes and the sharded engine exchanges halos across them. A launcher (`distthrml launch`,
`launch_local`, or Ray in `cluster/`) sets the variables `initialize_from_env` reads.
"""

from __future__ import annotations

import os

import jax

COORDINATOR = "DISTTHRML_COORDINATOR"
NUM_PROCESSES = "DISTTHRML_NUM_PROCESSES"
PROCESS_ID = "DISTTHRML_PROCESS_ID"
LOCAL_DEVICES = "DISTTHRML_LOCAL_DEVICES"


def initialize_cpu(coordinator_address: str, num_processes: int, process_id: int, local_devices: int) -> None:
    """Join a `jax.distributed` run on CPU: `local_devices` CPU devices in this process, gloo
    collectives between processes. Call before anything creates a JAX array.

    **Arguments:**

    - `coordinator_address`: `host:port` of process 0's coordinator service (e.g. `127.0.0.1:23456`).
    - `num_processes`: processes in the run.
    - `process_id`: this process's rank, `0 <= process_id < num_processes`.
    - `local_devices`: CPU devices this process contributes.
    """
    if not 0 <= process_id < num_processes:
        raise ValueError(f"process_id {process_id} is outside [0, {num_processes})")
    if local_devices < 1:
        raise ValueError(f"local_devices must be at least 1, got {local_devices}")
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.config.update("jax_num_cpu_devices", int(local_devices))
    # jax binds process 0's coordinator to every interface unless told otherwise; bind it to the
    # host the other processes were given (127.0.0.1 for local launches) so nothing else can reach it
    jax.distributed.initialize(
        coordinator_address, int(num_processes), int(process_id),
        coordinator_bind_address=coordinator_address,
    )


def initialize_from_env() -> bool:
    """Join the run described by the launcher's environment variables, if any.

    **Returns:** True if this process joined a multi-process run, False if it runs alone.
    """
    if COORDINATOR not in os.environ:
        return False
    initialize_cpu(
        os.environ[COORDINATOR],
        int(os.environ[NUM_PROCESSES]),
        int(os.environ[PROCESS_ID]),
        int(os.environ.get(LOCAL_DEVICES, "1")),
    )
    return True
