"""Where the diffusion steps train: all in this process, one after another (`LocalSteps`), or in
Ray actors, each with its own devices, all at once (`RaySteps`). Both expose the same calls and
give the same bits: a step's result depends only on the config, the step and the epoch."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable

from ..ray_launch import RayLaunch
from .config import DTMConfig, config_from_dict


class LocalSteps:
    """Every step's trainer in this process.

    **Arguments:**

    - `config`: the validated config.
    - `workdir`: the run's workdir.
    - `dataset`: the loaded dataset.
    - `init_steps`: `{t: path}` of `--init-step`.
    - `echo`: where to print.
    """

    def __init__(self, config: DTMConfig, workdir: pathlib.Path, dataset, init_steps: dict, echo: Callable):
        from .trainer import StepTrainer

        self.trainers = {}
        try:
            for t in range(1, config.diffusion.steps + 1):
                self.trainers[t] = StepTrainer(config, workdir, t, dataset.train, dataset.shape,
                                               init_from=init_steps.get(t), echo=echo)
        except BaseException:
            self.close()
            raise

    def epochs(self) -> dict[int, int]:
        """Finished epochs of every step."""
        return {t: tr.epoch for t, tr in self.trainers.items()}

    def train_until(self, epoch: int, on_iteration: Callable | None = None) -> dict[int, dict]:
        """Train every step to `epoch`, one after another; `{t: StepTrainer.train_until(...)}`."""
        return {t: tr.train_until(epoch, on_iteration) for t, tr in self.trainers.items()}

    def close(self) -> None:
        for tr in self.trainers.values():
            tr.close()


class StepWorker:
    """A Ray actor's body: the trainers of some steps, in the actor's own process and devices.

    **Arguments:**

    - `raw`: the config as a dict.
    - `workdir`: the run's workdir (shared storage).
    - `steps`: the steps this actor trains.
    - `init_steps`: `{t: path}` of `--init-step`.
    """

    def __init__(self, raw: dict, workdir: str, steps: list[int], init_steps: dict):
        import logging

        logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax logs every save at INFO
        from .data import load_dataset
        from .trainer import StepTrainer

        config = config_from_dict(raw)
        dataset = load_dataset(config.data)
        self.lines: list[str] = []
        self.trainers = {t: StepTrainer(config, workdir, t, dataset.train, dataset.shape, init_from=init_steps.get(t),
                                        echo=self.lines.append) for t in steps}

    def messages(self) -> list[str]:
        out, self.lines[:] = list(self.lines), []
        return out

    def epochs(self) -> dict[int, int]:
        return {t: tr.epoch for t, tr in self.trainers.items()}

    def train_until(self, epoch: int) -> dict[int, dict]:
        return {t: tr.train_until(epoch) for t, tr in self.trainers.items()}

    def pid(self) -> int:
        return os.getpid()

    def close(self) -> None:
        for tr in self.trainers.values():
            tr.close()


class RaySteps:
    """`launch.workers` Ray actors; actor w trains steps w+1, w+1+W, ... (each actor one after
    another, the actors at once). Each actor reserves `cpus_per_worker` CPUs (and a GPU with
    `use_gpu`) and emulates `devices_per_worker` CPU devices for `sharding.parts`.

    **Arguments:**

    - `config`: the validated config.
    - `workdir`: the run's workdir (every actor must reach it).
    - `init_steps`: `{t: path}` of `--init-step`.
    - `launch`: the Ray settings; Ray must be initialised.
    - `echo`: where to print the actors' messages.
    """

    def __init__(self, config: DTMConfig, workdir: pathlib.Path, init_steps: dict, launch: RayLaunch, echo: Callable):
        import ray

        self.echo = echo
        T = config.diffusion.steps
        workers = max(1, min(launch.workers, T))
        devices = max(launch.devices_per_worker or 1, config.sharding.parts)
        env = {"JAX_PLATFORMS": "cuda" if launch.use_gpu else "cpu"}
        if not launch.use_gpu:
            env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
        actor = ray.remote(num_cpus=launch.cpus_per_worker, num_gpus=1 if launch.use_gpu else 0, max_restarts=0)(StepWorker)
        self.actors = [
            actor.options(runtime_env={"env_vars": env}, name=None).remote(
                config.to_dict(), str(workdir), list(range(w + 1, T + 1, workers)), init_steps)
            for w in range(workers)
        ]
        self._flush()

    def _get(self, refs):
        import ray

        return ray.get(refs)

    def _flush(self) -> None:
        for lines in self._get([a.messages.remote() for a in self.actors]):
            for line in lines:
                self.echo(line)

    def epochs(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for part in self._get([a.epochs.remote() for a in self.actors]):
            out.update(part)
        return out

    def train_until(self, epoch: int, on_iteration: Callable | None = None) -> dict[int, dict]:
        out: dict[int, dict] = {}
        for part in self._get([a.train_until.remote(epoch) for a in self.actors]):
            out.update(part)
        self._flush()
        return dict(sorted(out.items()))

    def pids(self) -> list[int]:
        return self._get([a.pid.remote() for a in self.actors])

    def close(self) -> None:
        import ray

        try:
            self._get([a.close.remote() for a in self.actors])
        finally:
            for a in self.actors:
                ray.kill(a)
