"""The DTM driver under Ray: it runs in a process started with `spawn` (Ray starts its processes
with a fork that runs Python code, unsafe where JAX's threads already run), connects to Ray (or
starts a local loopback instance, as `cluster.ray_launch.init_ray` does), trains the steps in
actors and evaluates in that process; the summary comes back through a pipe."""

from __future__ import annotations

import multiprocessing
import pathlib
from collections.abc import Callable

from ..ray_launch import RayLaunch, init_ray
from .config import DTMConfig, config_from_dict


def _child(send, raw: dict, workdir: str, force: bool, init_steps: dict, launch: RayLaunch) -> None:
    import logging
    import traceback

    logging.getLogger("absl").setLevel(logging.WARNING)
    try:
        import ray

        started = init_ray(launch)
        try:
            from .run import drive

            summary = drive(config_from_dict(raw), workdir, force=force, echo=print, init_steps=init_steps,
                            ray_launch=launch)
            message = ("result", summary)
        finally:
            if started:
                ray.shutdown()
    except BaseException as err:  # the parent re-raises it
        from ..config_file import ConfigError

        message = ("config", str(err)) if isinstance(err, ConfigError) else ("raise", traceback.format_exc())
    send.send(message)
    send.close()


def train_in_ray(config: DTMConfig, workdir: str | pathlib.Path, *, force: bool, init_steps: dict, launch: RayLaunch,
                 echo: Callable = print) -> dict:
    """Run the DTM driver with Ray actors in a fresh process and return its summary.

    **Arguments:**

    - `config`: the validated config.
    - `workdir`: the run's workdir (shared storage for every actor).
    - `force`, `init_steps`: as `train_dtm`.
    - `launch`: the Ray settings (`workers` actors, `cpus_per_worker`, `devices_per_worker`).
    - `echo`: unused in the child (it prints); kept for the signature of `train_dtm`.
    """
    from ..config_file import ConfigError

    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(send, config.to_dict(), str(pathlib.Path(workdir).absolute()), force,
                                                 init_steps, launch), name="distthrml-dtm-driver")
    child.start()
    send.close()  # the child holds the other end: a dead child then reads as end of file
    try:
        try:
            kind, value = receive.recv()
        except EOFError:
            kind, value = "crash", None
        child.join()
    finally:
        receive.close()
        if child.is_alive():  # interrupted: stop the driver (a local Ray instance goes with it)
            child.terminate()
            child.join()
    if kind == "crash":
        raise RuntimeError(f"the DTM Ray driver exited with {child.exitcode} without a result")
    if kind == "config":
        raise ConfigError(value)
    if kind == "raise":
        raise RuntimeError(f"the DTM Ray driver failed:\n{value}")
    return value
