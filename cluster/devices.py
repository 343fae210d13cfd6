"""The devices of a run and the mesh over them: CPU emulation must be set before the JAX backend
starts, and every sharded job lays its devices out as a `("chains", "graph")` mesh."""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh

from .config_file import ConfigError


def _backend_started() -> bool:
    try:
        from jax._src import xla_bridge
    except ImportError:  # private module moved: assume started, which only skips emulation
        return True
    started = getattr(xla_bridge, "backends_are_initialized", None)
    return bool(started()) if started is not None else bool(getattr(xla_bridge, "_backends", True))


def usable_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0))


def run_devices(requested: int | str | None, mesh_devices: int | None = None) -> list:
    """The devices a run uses; with `requested`, emulate that many CPU devices and use them.

    Emulation only works before JAX's backend starts (the first array or `jax.devices()`
    call); later, as in a test process that already emulates devices, the first `requested`
    of the existing devices are used if there are enough.

    **Arguments:**

    - `requested`: number of CPU devices to emulate, `"auto"` (on CPU one per usable core, or
        `mesh_devices` if more; else JAX's accelerators), or None for JAX's own devices.
    - `mesh_devices`: the devices a mesh the config fixes needs (`auto` only), if any.
    """
    if requested is None:
        return list(jax.devices())
    if requested == "auto":
        wanted = max(usable_cores(), mesh_devices or 0)
        if not _backend_started() and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
            jax.config.update("jax_num_cpu_devices", wanted)  # only the CPU backend reads it
        devices = list(jax.devices())
        return devices[:wanted] if devices[0].platform == "cpu" else devices
    if not _backend_started():
        # Emulated devices are CPU devices: pin the platform so that a GPU box runs the same job.
        jax.config.update("jax_platforms", "cpu")
        jax.config.update("jax_num_cpu_devices", requested)
    devices = list(jax.devices())
    if len(devices) < requested:
        raise ConfigError(
            f"devices: {requested} requested but JAX already started with {len(devices)} devices; run the job in a "
            f"fresh process (distthrml run ...) or start Python with XLA_FLAGS=--xla_force_host_platform_device_count={requested}"
        )
    return devices[:requested]


def device_mesh(devices: list, chains_axis: int = 1) -> Mesh:
    """The `("chains", "graph")` mesh `shard_program` takes, over `devices` in order: `chains_axis`
    rows of chain groups, each spanning `len(devices) / chains_axis` graph parts. Built with
    `Mesh` (Auto axes): `jax.make_mesh` defaults to Explicit axes, which the sharded engine's
    `shard_map` under `jax.jit` rejects for unsharded intermediate values.

    **Arguments:**

    - `devices`: the devices, shard p of chain group g on `devices[g * parts + p]`.
    - `chains_axis`: devices along the chains axis; must divide `len(devices)`.
    """
    return Mesh(np.array(devices).reshape(chains_axis, -1), ("chains", "graph"))
