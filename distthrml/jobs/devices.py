"""Choosing the devices of a run: CPU emulation must be set before the JAX backend starts."""

from __future__ import annotations

import jax

from .config import ConfigError


def _backend_started() -> bool:
    try:
        from jax._src import xla_bridge
    except ImportError:  # private module moved: assume started, which only skips emulation
        return True
    started = getattr(xla_bridge, "backends_are_initialized", None)
    return bool(started()) if started is not None else bool(getattr(xla_bridge, "_backends", True))


def run_devices(requested: int | None) -> list:
    """The devices a run uses; with `requested`, emulate that many CPU devices and use them.

    Emulation only works before JAX's backend starts (the first array or `jax.devices()`
    call); later, as in a test process that already emulates devices, the first `requested`
    of the existing devices are used if there are enough.

    **Arguments:**

    - `requested`: number of CPU devices to emulate, or None for JAX's own devices.
    """
    if requested is None:
        return list(jax.devices())
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
