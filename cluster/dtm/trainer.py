"""One diffusion step's trainer: its state, its checkpoints (`workdir/steps/t<k>/checkpoints`,
Orbax, per epoch), its per-epoch metrics (`workdir/steps/t<k>/metrics.csv`) and its loop.

Everything a step does at iteration i is a function of the config, the step and i (keys are
`fold_in(fold_in(key(seed), step), i)`, batches `cluster.train.data.batch_at`), and the state
after i iterations is saved whole (parameters, their moving average, optimiser state, both
phases' persistent chains, penalty strength and last autocorrelation, the base key; the data
position in the metadata), so a resumed step ends bit for bit where an uninterrupted one does,
whichever process (or Ray actor) runs it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import pathlib
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

import distthrml as dt

from ..config_file import ConfigError
from .. import checkpoint as ck
from ..train.data import batch_at
from ..train.step import check_finite
from ..train.stops import STOPS
from . import model as m
from . import step as step_lib
from .config import DTMConfig, config_from_dict
from .graph import StepGraph, build_step_graph
from .schedule import Schedule, make_schedule

FIELDS = ["epoch", "iteration", "moment_gap", "grad_norm", "correlation", "autocorrelation", "penalty",
          "samples_per_s", "wall_s"]
GRAPH_KEYS = ("grid_side", "degree", "offsets", "placement", "placement_seed")


def step_dir(workdir: pathlib.Path, t: int) -> pathlib.Path:
    return pathlib.Path(workdir) / "steps" / f"t{t}"


def iterations_per_epoch(n_train: int, batch_size: int) -> int:
    return -(-n_train // batch_size)


@dataclasses.dataclass(frozen=True, eq=False)
class Compiled:
    """What every step of a config shares in one process: the graph and the jitted functions."""

    graph: StepGraph
    iteration: Callable
    measure: Callable
    template: object


_COMPILED: dict = {}


def _build(config: DTMConfig, image_shape: tuple, mesh) -> Compiled:
    c = config.model
    graph = build_step_graph(image_shape, c.grid_side, config.offsets(), c.placement, c.placement_seed)
    template = None
    if config.sharding.parts > 1:
        params = m.init_params(jax.random.key(0), graph, c.init_scale, 0.0)
        positive, negative = step_lib.schedules(config)
        template = dt.shard_training_spec(m.training_spec(graph, params, c.beta, positive, negative),
                                          config.sharding.parts, mesh)
    return Compiled(graph, step_lib.make_iteration(graph, config, template), step_lib.make_measure(graph, config, template),
                    template)


def compiled(config: DTMConfig, image_shape: tuple[int, int], mesh=None) -> Compiled:
    """The shared graph and functions of `config` (built once per process: one config at a time).

    **Arguments:**

    - `config`: the validated config.
    - `image_shape`: the images' rows and columns.
    - `mesh`: the `("chains", "graph")` mesh of sharded steps (default: the first local devices).
    """
    if config.sharding.parts > len(jax.devices()):
        raise ConfigError(f"sharding.parts {config.sharding.parts} needs as many devices, this process has "
                          f"{len(jax.devices())} (the CLI emulates them on CPU; under Ray see --devices-per-worker)")
    # what the functions depend on: the training identity, the parts, the images, the mesh (not
    # the epochs, evaluation or output settings: an extended run reuses them)
    key = (config.fingerprint(), config.sharding.parts, tuple(image_shape), id(mesh) if mesh is not None else None)
    if key not in _COMPILED:
        _COMPILED.clear()  # one config at a time: old programs are not kept alive
        _COMPILED[key] = _build(config, tuple(image_shape), mesh)
    return _COMPILED[key]


@dataclasses.dataclass(frozen=True)
class Progress:
    """Finished iterations and the state after them, replaced in one assignment (a stop at any
    moment saves a state together with its own iteration)."""

    iteration: int
    state: dict


def read_rows(path: pathlib.Path) -> list[dict]:
    """The rows of a metrics CSV as floats (empty fields as NaN)."""
    if not path.is_file():
        return []
    with path.open() as f:
        return [{k: float(v) if v not in ("", None) else math.nan for k, v in row.items()} for row in csv.DictReader(f)]


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(int(v)) if isinstance(v, int) else f"{float(v):.6g}"


def write_rows(path: pathlib.Path, rows: list[dict], fields: list[str]) -> None:
    """Write a metrics CSV whole (to a temporary file, then renamed: never half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _fmt(r.get(k)) for k in fields})
    tmp.replace(path)


def initial_state(config: DTMConfig, graph: StepGraph, t: int) -> dict:
    """Step `t`'s state before its first iteration.

    **Arguments:**

    - `config`: the validated config.
    - `graph`: the step graph.
    - `t`: the diffusion step.
    """
    base = jax.random.fold_in(jax.random.key(config.train.seed), t)
    k_params, k_pos, k_neg = jax.random.split(jax.random.fold_in(base, -1 % 2**31), 3)
    gamma = make_schedule(config.diffusion).gamma[t]
    params = m.init_params(k_params, graph, config.model.init_scale, gamma / config.model.beta)
    shape = (config.train.batch_size, graph.n_grid)
    lam = config.penalty.initial if config.penalty.enabled else 0.0
    return {
        "params": params, "ema": params, "opt_state": step_lib.make_optimizer(config).init(params),
        "chains": {"positive": jax.random.bernoulli(k_pos, 0.5, shape), "negative": jax.random.bernoulli(k_neg, 0.5, shape)},
        "penalty": np.array([lam, math.nan]), "key": np.asarray(jax.random.key_data(base)),
    }


class StepTrainer:
    """Train diffusion step `t` of a DTM in `workdir`, resuming from its own checkpoints.

    **Arguments:**

    - `config`: the validated config.
    - `workdir`: the run's workdir.
    - `t`: the diffusion step (1..T).
    - `train`: bool `[N, P]` training images.
    - `image_shape`: their rows and columns.
    - `init_from`: a checkpoint (directory, or a workdir of a run with the same step graph) whose
        parameters start this step when it has no checkpoint of its own (`--init-step`).
    - `echo`: where to print what happens.
    - `mesh`: the mesh of sharded sampling (default: local devices).
    """

    def __init__(self, config: DTMConfig, workdir: str | pathlib.Path, t: int, train: np.ndarray,
                 image_shape: tuple[int, int], *, init_from: str | None = None, echo: Callable = print, mesh=None):
        self.config, self.t, self.train, self.echo, self.image_shape = config, t, train, echo, tuple(image_shape)
        self.dir = step_dir(pathlib.Path(workdir).absolute(), t)
        self.compiled = compiled(config, image_shape, mesh)
        self.schedule: Schedule = make_schedule(config.diffusion)
        self.ipe = iterations_per_epoch(len(train), config.train.batch_size)
        self.store = ck.CheckpointStore(self.dir / "checkpoints", config.train.keep_last)
        state = self.initial_state()
        self.target = jax.tree.map(np.asarray, state)
        start = 0
        restored = self.store.restore_latest(self.target)
        if restored is not None:
            tree, meta = restored
            if meta.get("fingerprint") != config.fingerprint():
                raise ConfigError(f"{self.store.directory} holds checkpoints of a different config")
            state, start = tree, int(meta["iteration"])
            echo(f"step {t}: resumed from iteration {start} (epoch {start // self.ipe})")
        elif init_from:
            state = self._init_from(state, pathlib.Path(init_from))
        self.progress = Progress(start, self._placed(state))
        self.base_key = jax.random.wrap_key_data(jnp.asarray(state["key"]))
        self.last_saved = start if restored is not None else -1
        self.rows_path = self.dir / "metrics.csv"
        write_rows(self.rows_path, [r for r in read_rows(self.rows_path) if r["iteration"] <= start], FIELDS)

    @property
    def epoch(self) -> int:
        """Finished epochs (a stopped step may be inside one)."""
        return self.progress.iteration // self.ipe

    def _placed(self, state: dict) -> dict:
        """`state` with the iteration's arguments replicated over the sharded steps' mesh, where
        the iteration leaves its results: the first call then compiles the only variant."""
        if self.compiled.template is None:
            return state
        from jax.sharding import NamedSharding, PartitionSpec

        replicated = NamedSharding(self.compiled.template.program_negative.mesh, PartitionSpec())
        moved = {k: jax.device_put(state[k], replicated) for k in ("params", "ema", "opt_state", "chains")}
        return {**state, **moved}

    def initial_state(self) -> dict:
        """The state before the first iteration."""
        return initial_state(self.config, self.compiled.graph, self.t)

    def _init_from(self, state: dict, path: pathlib.Path) -> dict:
        """`state` with the parameters (and their average) of another run's checkpoint of this step."""
        where = f"--init-step {self.t}={path}"
        if (path / "steps").is_dir():
            path = step_dir(path, self.t)
        if (path / "checkpoints").is_dir():
            path = path / "checkpoints"
        if path.name == "checkpoints" and path.is_dir():
            steps = sorted(int(p.name) for p in path.iterdir() if p.name.isdigit())
            if not steps:
                raise ConfigError(f"{where}: no checkpoint found there")
            path = path / str(steps[-1])
        try:
            meta = json.loads((path / "meta" / "metadata").read_text())
            other = config_from_dict(meta["config"])
        except (OSError, ValueError, KeyError, TypeError):
            raise ConfigError(f"{where}: not a DTM step checkpoint or workdir (no readable DTM metadata)") from None
        theirs, ours = other.model, self.config.model
        differ = [f"model.{k}: {getattr(theirs, k)!r} there, {getattr(ours, k)!r} here" for k in GRAPH_KEYS
                  if getattr(theirs, k) != getattr(ours, k)]
        if meta.get("image_shape") != list(self.image_shape):
            differ.append(f"images {meta.get('image_shape')} there, {list(self.image_shape)} here")
        if differ:
            raise ConfigError(f"{where}: another step graph ({'; '.join(differ)})")
        target = jax.tree.map(np.asarray, initial_state(other, self.compiled.graph, self.t))
        try:
            tree, _ = ck.read_checkpoint_dir(path, target)
        except ck.CheckpointError as err:
            raise ConfigError(f"{where}: {err}") from None
        self.echo(f"step {self.t}: parameters from {path}")
        return dict(state, params=tree["params"], ema=tree["params"])

    def save(self, at: Progress) -> pathlib.Path:
        """Checkpoint `at` (stop signals wait until the save is done)."""
        with STOPS.held():
            _, data_epoch, data_offset = batch_at(self.train, at.iteration, self.config.train.batch_size, self.config.data.seed)
            meta = {"step": at.iteration, "iteration": at.iteration, "epoch": at.iteration // self.ipe, "t": self.t, "data_epoch": data_epoch,
                    "data_offset": data_offset, "image_shape": list(self.image_shape), "fingerprint": self.config.fingerprint(), "identity": self.config.identity(),
                    "config": self.config.to_dict()}
            path = self.store.save(at.iteration, jax.tree.map(np.asarray, at.state), meta)
            self.last_saved = at.iteration
        return path

    def train_until(self, epoch: int, on_iteration: Callable | None = None) -> dict:
        """Run iterations until `epoch` epochs are done (saving every `train.checkpoint_every`
        epochs and at the end); a stop signal or an error saves the progress first.

        **Arguments:**

        - `epoch`: the epoch to reach.
        - `on_iteration`: `f(t, iterations_done)` after every iteration (progress bars).

        **Returns:** `{"ema": the averaged parameters (numpy), "rows": this call's epoch rows}`.
        """
        rows: list[dict] = []
        first_error = None
        try:
            self._loop(epoch, rows, on_iteration)
        except BaseException as err:
            first_error = err
            raise
        finally:
            if self.progress.iteration != self.last_saved and not isinstance(first_error, ck.CheckpointError):
                try:
                    self.save(self.progress)
                except Exception:
                    if first_error is None:
                        raise
        return {"ema": m.as_numpy(self.progress.state["ema"]), "rows": rows}

    def _loop(self, epoch: int, rows: list, on_iteration) -> None:
        c, s, t = self.config, self.schedule, self.t
        q_prev, p_step = jnp.float32(s.marginal[t - 1]), jnp.float32(s.interval[t])
        stop_at = epoch * self.ipe
        batch_size = c.train.batch_size
        observed = batch_size * (c.sampling.positive_samples + c.sampling.negative_samples)
        acc: dict = {}
        started = time.perf_counter()
        while self.progress.iteration < stop_at:
            STOPS.check()  # a stop whose exception Python dropped (see train/stops.py)
            i, st = self.progress.iteration, self.progress.state
            x0 = jnp.asarray(batch_at(self.train, i, batch_size, c.data.seed)[0])
            lam = float(st["penalty"][0])
            params, ema, opt_state, chains, stats, x_t = self.compiled.iteration(
                st["params"], st["ema"], st["opt_state"], st["chains"], jnp.float32(lam),
                jax.random.fold_in(self.base_key, i), x0, q_prev, p_step,
            )
            stats = {k: float(v) for k, v in stats.items()}
            check_finite(stats, i + 1, self.last_saved)
            penalty = st["penalty"]
            if (i + 1) % c.penalty.measure_every == 0:
                key = jax.random.fold_in(jax.random.fold_in(self.base_key, 2**30), i)
                rho = float(self.compiled.measure(ema, key, x_t[: c.penalty.conditions]))
                penalty = step_lib.update_penalty(penalty, rho, c)
                acc.setdefault("autocorrelation", []).append(rho)
            for k in ("moment_gap", "grad_norm", "correlation"):
                acc.setdefault(k, []).append(stats[k])
            self.progress = Progress(i + 1, {**st, "params": params, "ema": ema, "opt_state": opt_state, "chains": chains,
                                             "penalty": penalty})
            if on_iteration is not None:
                on_iteration(t, i + 1)
            if (i + 1) % self.ipe == 0:
                now = time.perf_counter()
                n = len(acc["moment_gap"])
                row = {"epoch": (i + 1) // self.ipe, "iteration": i + 1, "penalty": float(penalty[0]),
                       "samples_per_s": observed * n / (now - started), "wall_s": now - started}
                row.update({k: float(np.mean(v)) for k, v in acc.items()})
                rows.append(row)
                write_rows(self.rows_path, read_rows(self.rows_path) + [row], FIELDS)
                if row["epoch"] % c.train.checkpoint_every == 0 or i + 1 == stop_at:
                    self.save(self.progress)
                acc, started = {}, time.perf_counter()

    def close(self) -> None:
        self.store.close()
