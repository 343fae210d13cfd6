"""Multi-host launch over Ray Train: a `JaxTrainer` runs one worker per host process.

On GPU/TPU Ray Train's JAX backend initialises `jax.distributed`; on CPU it does nothing, so the
worker loop does it (`distthrml.sharding.distributed.initialize_cpu`: gloo collectives, the
coordinator on rank 0's node at a port rank 0 picks and broadcasts with Ray Train's own
`broadcast_from_rank_zero`). Checkpoints are written by Orbax and reported with
`ray.train.report`; after a failure `FailureConfig(max_failures)` restarts the worker group and
the loop resumes from `ray.train.get_checkpoint()`. No plain Ray actors are needed. The Ray
driver itself runs in a process started with `spawn` (see `_fit`), so that Ray never forks the
caller's process, where JAX may already run.

Without an address (nor `RAY_ADDRESS`) a local Ray instance starts, every one of its servers
listening on 127.0.0.1 only.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import sys
from collections.abc import Callable

from .config_file import ConfigError


@dataclasses.dataclass(frozen=True)
class RayLaunch:
    """How to run under Ray.

    **Attributes:**

    - `address`: Ray address; None uses `RAY_ADDRESS`, else starts a local loopback instance.
    - `workers`: worker processes (one per host in a real cluster).
    - `devices_per_worker`: CPU devices each worker contributes (CPU runs).
    - `cpus_per_worker`: Ray CPUs reserved per worker.
    - `max_failures`: worker-group restarts allowed.
    - `use_gpu`: one GPU per worker; Ray Train's backend sets up `jax.distributed`.
    - `local_cpus`: CPUs of a locally started Ray instance.
    - `object_store_mb`: object store of a locally started instance.
    """

    address: str | None = None
    workers: int = 1
    devices_per_worker: int = 1
    cpus_per_worker: float = 1.0
    max_failures: int = 2
    use_gpu: bool = False
    local_cpus: int | None = None
    object_store_mb: int = 200


def add_ray_arguments(parser, devices_per_worker: int | None) -> None:
    """The Ray flags of a command that may run under Ray (`train`, `emulate`).

    **Arguments:**

    - `parser`: the subcommand's parser.
    - `devices_per_worker`: the default of `--devices-per-worker` (None: the command decides).
    """
    parser.add_argument("--launcher", choices=["auto", "local", "ray"], default="auto",
                        help="auto: Ray Train when --address or RAY_ADDRESS is given, else this process")
    parser.add_argument("--address", help="Ray address (default: RAY_ADDRESS, else a new local loopback instance)")
    parser.add_argument("--workers", type=int, default=1, help="Ray Train workers (one per host process)")
    parser.add_argument("--devices-per-worker", type=int, default=devices_per_worker,
                        help="CPU devices per worker (CPU runs)" + ("" if devices_per_worker else "; default: chips / workers"))
    parser.add_argument("--cpus-per-worker", type=float, default=1, help="Ray CPUs reserved per worker")
    parser.add_argument("--use-gpu", action="store_true", help="one GPU per worker (Ray Train sets up jax.distributed)")


def wants_ray(args) -> bool:
    """Whether the parsed command line asks for Ray: `--launcher ray`, or `auto` with an address
    (`--address` or `RAY_ADDRESS`, as under `ray job submit`).

    **Arguments:**

    - `args`: parsed arguments with the flags of `add_ray_arguments`.
    """
    return args.launcher == "ray" or (args.launcher == "auto" and bool(args.address or os.environ.get("RAY_ADDRESS")))


# Ray's switch for a single-machine instance: its node address becomes 127.0.0.1, so the GCS,
# raylet, workers, dashboard and agents all listen on loopback (by default they listen on every
# interface, or on the host's external address). Read when `ray` is first imported.
LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def init_ray(launch: RayLaunch) -> bool:
    """Connect to (or start) Ray. A locally started instance listens on 127.0.0.1 only; this must
    then run before `ray` is imported in this process (the spawned driver of `_fit` does so).

    **Arguments:**

    - `launch`: the Ray settings.

    **Returns:** True if this call started a local instance.
    """
    address = launch.address or os.environ.get("RAY_ADDRESS")
    imported_before = "ray._private.ray_constants" in sys.modules
    if not address:
        os.environ.update(LOOPBACK_ONLY)
    import ray

    if ray.is_initialized():
        return False
    env = {"env_vars": {"RAY_TRAIN_V2_ENABLED": "1"}}
    if address:
        ray.init(address=address, runtime_env=env, log_to_driver=True)
        return False
    if imported_before:
        raise RuntimeError("init_ray: ray was imported in this process before a local instance was started, so it "
                           "would listen beyond 127.0.0.1; start it from a fresh process (as cluster.ray_launch._fit does)")
    cpus = launch.local_cpus or max(2, int(launch.workers * launch.cpus_per_worker) + 1)
    ray.init(
        address="local", num_cpus=cpus, object_store_memory=launch.object_store_mb * 2**20,
        include_dashboard=True, runtime_env=env,
    )
    return True


def _node_address() -> str:
    """The address this Ray node was started with (127.0.0.1 for a loopback instance);
    `ray.util.get_node_ip_address` would guess from the default route instead."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    for node in ray.nodes():
        if node["NodeID"] == node_id:
            return node["NodeManagerAddress"]
    return "127.0.0.1"


def join_jax_distributed(devices_per_worker: int, use_gpu: bool) -> None:
    """Inside a Ray Train worker, before any JAX array exists: make this process one process of a
    `jax.distributed` run over the worker group (CPU only; Ray Train's backend does GPU/TPU)."""
    import ray.train
    from ray.train.collective import broadcast_from_rank_zero

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    if use_gpu:
        return
    # an inherited emulated-device count (e.g. from a test driver) would fight jax_num_cpu_devices
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform_device_count")]
    os.environ["XLA_FLAGS"] = " ".join(flags)
    import jax

    if world == 1:
        jax.config.update("jax_platforms", "cpu")
        jax.config.update("jax_num_cpu_devices", int(devices_per_worker))
        return
    from distthrml.sharding.distributed import initialize_cpu
    from distthrml.sharding.launch import free_port

    coordinator = None
    if rank == 0:
        host = _node_address()
        coordinator = f"{host}:{free_port(host)}"
    # a fresh port for every (re)start of the group: a dead group's port may still be taken
    coordinator = broadcast_from_rank_zero(coordinator)
    initialize_cpu(coordinator, world, rank, devices_per_worker)


def global_mesh():
    """The `("chains", "graph")` mesh over every process's devices, all on `graph`."""
    import jax

    from .devices import device_mesh

    return device_mesh(jax.devices())


def _pid_file(workdir: str, rank: int) -> pathlib.Path:
    return pathlib.Path(workdir) / f"ray-worker-{rank}.pid"


def train_loop(loop_config: dict) -> None:
    """The Ray Train worker loop of `distthrml train`."""
    import logging

    import ray.train

    join_jax_distributed(loop_config["devices_per_worker"], loop_config["use_gpu"])
    import jax

    logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax logs every save at INFO

    from cluster.train.config import config_from_dict
    from cluster.train.run import train

    rank = ray.train.get_context().get_world_rank()
    workdir = loop_config["workdir"]
    pathlib.Path(workdir).mkdir(parents=True, exist_ok=True)
    # operators (and the fault-tolerance test) find the worker processes here
    _pid_file(workdir, rank).write_text(str(os.getpid()))
    config = config_from_dict(loop_config["config"])
    mesh = None
    if jax.process_count() > 1:
        mesh = global_mesh()

    def report(step: int, directory, row: dict) -> None:
        metrics = {k: float(v) for k, v in row.items() if v is not None}
        metrics["step"] = step
        checkpoint = ray.train.Checkpoint.from_directory(str(directory)) if directory is not None else None
        ray.train.report(metrics, checkpoint=checkpoint)

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            train(config, workdir, force=False, resume_from=directory, on_checkpoint=report, mesh=mesh)
    else:
        train(config, workdir, force=loop_config["force"], on_checkpoint=report, mesh=mesh)


def launch_training(config, workdir: str | pathlib.Path, launch: RayLaunch, *, force: bool = False,
                    loop: Callable = train_loop):
    """Run `distthrml train` as a Ray Train job and wait for it.

    **Arguments:**

    - `config`: the validated training config.
    - `workdir`: shared outputs folder (checkpoints, metrics, plots; Ray's run records under `ray/`).
    - `launch`: the Ray settings.
    - `force`: as `distthrml train --force`.
    - `loop`: the worker loop (the default trains).

    **Returns:** the run's `RunResult`.
    """
    workdir = pathlib.Path(workdir).absolute()
    loop_config = {"config": config.to_dict(), "workdir": str(workdir), "force": force}
    return _fit(loop, loop_config, launch, name="distthrml-train", storage=workdir / "ray",
                max_failures=launch.max_failures, keep_checkpoints=config.train.keep_last)


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What a Ray Train run ended with.

    **Attributes:**

    - `metrics`: the last reported metrics.
    - `path`: the run's folder in the storage folder.
    - `error`: the run's error as text, or None if it finished.
    - `return_value`: what rank 0's worker loop returned.
    """

    metrics: dict
    path: str
    error: str | None
    return_value: object = None


def _fit(loop: Callable, loop_config: dict, launch: RayLaunch, *, name: str, storage: pathlib.Path,
         max_failures: int, keep_checkpoints: int | None = None) -> RunResult:
    """Run `loop(loop_config)` (plus the launch's device settings) as a Ray Train `JaxTrainer` of
    `launch.workers` workers, driven from a spawned process (`in_spawned_driver`), and wait for it."""
    return in_spawned_driver(_fit_here, (loop, loop_config, launch, name, str(storage), max_failures, keep_checkpoints),
                             name=name)


def in_spawned_driver(function: Callable, arguments: tuple, *, name: str):
    """`function(*arguments)` run in a fresh process started with `spawn`, which is where a Ray
    driver belongs: Ray starts its processes with a Python `preexec_fn` (a fork that runs Python
    code before exec), unsafe in a process where JAX's threads already run, as in a test or a
    notebook. The process dies with this one (`_die_with`), and a local Ray instance with it. No
    Ray object may be among the arguments: unpickling it would import ray before `init_ray` sets
    up a loopback-only instance.

    **Arguments:**

    - `function`: a module-level function; it returns a picklable value.
    - `arguments`: its positional arguments (picklable).
    - `name`: the process's name, for messages.

    **Returns:** what `function` returned; a `ConfigError` it raised is raised again here, any other
    error as a `RuntimeError` holding its traceback.
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    driver = context.Process(target=_driver_main, args=(send, function, arguments), name=f"{name}-driver")
    driver.start()
    send.close()  # the driver holds the other end: a dead driver then reads as end of file
    try:
        try:
            kind, value = receive.recv()
        except EOFError:
            kind, value = "crash", None
        driver.join()
    finally:
        receive.close()
        if driver.is_alive():  # interrupted: stop the driver (a local Ray instance shares its fate)
            driver.terminate()
            driver.join()
    if kind == "crash":
        raise RuntimeError(f"the Ray driver process of {name!r} exited with {driver.exitcode} without a result")
    if kind == "config":
        raise ConfigError(value)
    if kind == "raise":
        raise RuntimeError(f"the Ray driver of {name!r} failed:\n{value}")
    return value


def _driver_main(send, function: Callable, arguments: tuple) -> None:
    """The spawned process of `in_spawned_driver`: send `("result", value)`, `("config", message)`
    or `("raise", traceback text)` back through `send`."""
    import traceback

    _die_with(parent=os.getppid())
    try:
        message = ("result", function(*arguments))
    except ConfigError as err:
        message = ("config", str(err))
    except BaseException:  # the parent re-raises it; the driver must exit either way
        message = ("raise", traceback.format_exc())
    send.send(message)
    send.close()


def _die_with(parent: int) -> None:
    """Have the kernel send this process SIGTERM when `parent` dies (Linux), so that a killed
    command (SIGKILL, which it cannot pass on) does not leave its Ray driver running the job on:
    SIGTERM ends the driver, and with it the local Ray instance and its workers."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the driver then outlives a killed parent
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _fit_here(loop: Callable, loop_config: dict, launch: RayLaunch, name: str, storage: str, max_failures: int,
              keep_checkpoints: int | None) -> RunResult:
    started = init_ray(launch)  # before the imports below load ray
    import ray
    from ray.train import CheckpointConfig, FailureConfig
    from ray.train.v2.api.config import RunConfig, ScalingConfig
    from ray.train.v2.jax import JaxTrainer

    try:
        resources = {"CPU": launch.cpus_per_worker}
        if launch.use_gpu:
            resources["GPU"] = 1
        trainer = JaxTrainer(
            loop,
            train_loop_config={**loop_config, "devices_per_worker": launch.devices_per_worker, "use_gpu": launch.use_gpu},
            scaling_config=ScalingConfig(num_workers=launch.workers, use_gpu=launch.use_gpu, resources_per_worker=resources),
            run_config=RunConfig(
                name=name, storage_path=str(pathlib.Path(storage).absolute()),
                failure_config=FailureConfig(max_failures=max_failures),
                checkpoint_config=CheckpointConfig(num_to_keep=keep_checkpoints),
                worker_runtime_env={"env_vars": {"JAX_PLATFORMS": "cuda" if launch.use_gpu else "cpu"}},
            ),
        )
        result = trainer.fit()
        return RunResult(dict(result.metrics or {}), str(result.path), None if result.error is None else str(result.error),
                         getattr(result, "return_value", None))
    finally:
        if started:
            ray.shutdown()


def _joined_worker(loop_config: dict):
    """Ray Train worker loop of `run_on_workers`: join the `jax.distributed` run, then call the
    job's function with its arguments."""
    join_jax_distributed(loop_config["devices_per_worker"], loop_config["use_gpu"])
    return loop_config["function"](loop_config["arguments"])


def run_on_workers(function: Callable, arguments, launch: RayLaunch, storage: str | pathlib.Path, *,
                   name: str = "distthrml", max_failures: int = 0):
    """Run `function(arguments)` on every worker of a Ray Train group, the workers joined into one
    `jax.distributed` run (so `jax.devices()` lists every worker's devices), and return what
    rank 0's call returned.

    **Arguments:**

    - `function`: a picklable (module-level) function of one argument.
    - `arguments`: its argument (picklable; every worker gets a copy).
    - `launch`: the Ray settings.
    - `storage`: Ray Train's storage folder.
    - `name`: the Ray Train run's name.
    - `max_failures`: restarts of the whole group after a worker fails (each restart calls
        `function` afresh on every worker: it must resume on its own, e.g. from checkpoints).

    **Raises:** `RuntimeError` with the worker's error when the run fails.
    """
    result = _fit(_joined_worker, {"function": function, "arguments": arguments}, launch, name=name,
                  storage=pathlib.Path(storage), max_failures=max_failures)
    if result.error is not None:
        raise RuntimeError(f"ray run {name!r} failed: {result.error}")
    return result.return_value
