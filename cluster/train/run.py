"""The training loop of `distthrml train`: resume, step, evaluate, checkpoint, report, plot."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import pathlib
import time
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import yaml

import distthrml as dt

from .. import checkpoint as ck
from . import data as data_lib
from . import model as m
from . import plots
from . import step as step_lib
from ..config_file import diff_identity
from .config import Config, ConfigError
from ..lock import WorkdirLock
from .metrics import MetricsLog, read_csv
from ..multihost import broadcast_tree, to_host
from .stops import STOPS, Stopped

OUTPUTS = ["checkpoints", "metrics.csv", "tensorboard", "config.yaml", "summary.json",
           "curves.png", "data.png", "samples.png", "autocorrelation.png"]


@dataclasses.dataclass
class TrainState:
    params: dict
    opt_state: object
    chains: list
    key: np.ndarray  # uint32 key data of the run's base key

    def tree(self) -> dict:
        return {"params": self.params, "opt_state": self.opt_state, "chains": list(self.chains), "key": self.key}


def _initial_state(config: Config, arch: m.Architecture, optimizer) -> TrainState:
    base = jax.random.key(config.train.seed)
    k_params, k_chains = jax.random.split(jax.random.fold_in(base, -1 % 2**31))
    params = m.init_params(k_params, arch, config.model.init_scale)
    chains = [
        jax.random.bernoulli(jax.random.fold_in(k_chains, i), 0.5, (config.sampling.negative_chains, len(b)))
        for i, b in enumerate(arch.negative_blocks)
    ]
    return TrainState(params, optimizer.init(params), chains, np.asarray(jax.random.key_data(base)))


_COMPILED: dict = {}


def _compiled(config: Config, image_shape, mesh):
    """The graph and the jitted step and metric of a config, built once per process: reruns and
    resumes in the same process (tests, notebooks) reuse the compiled step."""
    key = (config.fingerprint(), tuple(image_shape), id(mesh) if mesh is not None else None)
    if key not in _COMPILED:
        arch = m.build_architecture(image_shape, config.model)
        template = None
        if config.sharding.parts > 1:
            params = m.init_params(jax.random.key(0), arch, config.model.init_scale)
            template = step_lib.sharded_template(arch, params, config.sampling, config.sharding.parts, mesh)
        step = step_lib.make_train_step(arch, config.sampling, step_lib.make_optimizer(config.optim), template)
        pll = jax.jit(lambda p, v: m.pseudo_log_likelihood(arch, p, v))
        _COMPILED.clear()  # one config at a time: old programs are not kept alive
        _COMPILED[key] = (arch, step, pll, template)
    return _COMPILED[key]


def check_workdir(config: Config, store: ck.CheckpointStore, workdir: pathlib.Path, force: bool, echo) -> None:
    """Refuse a workdir whose checkpoints belong to another config (unless `force`: then the old
    outputs are moved to `workdir/replaced-N/`)."""
    meta = store.latest_meta()
    if meta is None or meta.get("fingerprint") == config.fingerprint():
        return
    diffs = diff_identity(config.identity(), meta.get("identity", {}))
    if not force:
        raise ConfigError(
            f"{workdir} holds checkpoints of a different config ({'; '.join(diffs) or 'fingerprint differs'}); "
            "use another --workdir, or --force to move the old run aside and start over"
        )
    store.close()
    dest = ck.move_aside(workdir, OUTPUTS)
    echo(f"--force: moved the earlier run's outputs to {dest}")


@dataclasses.dataclass(frozen=True)
class Progress:
    """The number of finished steps and the state after them: replaced in one assignment, so a
    stop at any moment saves a state together with its own step."""

    step: int
    state: TrainState


def train(
    config: Config,
    workdir: str | pathlib.Path,
    *,
    force: bool = False,
    echo: Callable = print,
    resume_from: str | pathlib.Path | None = None,
    on_checkpoint: Callable | None = None,
    mesh=None,
) -> dict:
    """Train the configured Boltzmann machine in `workdir`, resuming from its checkpoints.

    A SIGTERM or SIGINT (in the main thread) lets the current save finish, saves the progress
    and returns early with `summary["stopped_by"]` naming the signal. Non-finite statistics or
    parameters save the last finite progress and raise `TrainingDiverged`.

    **Arguments:**

    - `config`: the validated config.
    - `workdir`: outputs go here (checkpoints, metrics, plots).
    - `force`: start over in a workdir that holds another config's checkpoints.
    - `echo`: where to print progress lines.
    - `resume_from`: another checkpoint directory (Ray Train hands one over after a restart): the
        newer of it and the workdir's newest intact checkpoint is resumed.
    - `on_checkpoint`: `f(step, directory_or_None, metrics)` called after every checkpoint
        (Ray reporting); every process calls it, only the primary one with a directory.
    - `mesh`: the `("chains", "graph")` mesh for sharded sampling (default: local devices).

    **Returns:** the summary also written to `summary.json`.
    """
    workdir = pathlib.Path(workdir).absolute()
    primary = jax.process_index() == 0
    with STOPS.for_a_run():  # a stop signal during start-up waits until there is a loop to stop
        try:
            workdir.mkdir(parents=True, exist_ok=True)
            # locked before anything in the workdir is read or written
            with WorkdirLock(workdir) if primary else contextlib.nullcontext():
                return _train_locked(config, workdir, primary, force, echo, resume_from, on_checkpoint, mesh)
        except Stopped as stop:
            # stopped before the loop began: nothing new to save
            echo(f"stopped by {stop} during start-up")
            return {"steps": None, "total_steps": config.train.steps, "stopped_by": str(stop), "exit_code": stop.exit_code}


def _train_locked(config, workdir, primary, force, echo, resume_from, on_checkpoint, mesh) -> dict:
    """`train` once the workdir is locked; stop signals are held on entry."""
    dataset = data_lib.load_dataset(config.data)
    arch, train_step, pll, template = _compiled(config, dataset.shape, mesh)
    optimizer = step_lib.make_optimizer(config.optim)
    state = _initial_state(config, arch, optimizer)
    target = jax.tree.map(to_host, state.tree())

    store = ck.CheckpointStore(workdir / "checkpoints", config.train.keep_last) if primary else None
    if store is not None:
        check_workdir(config, store, workdir, force, echo)
        if not store.directory.exists():
            store = ck.CheckpointStore(workdir / "checkpoints", config.train.keep_last)
    sent = None  # the state and step every process resumes from, chosen by the primary one
    if primary:
        found = ck.newest_checkpoint(store, resume_from, target)
        if found is not None:
            tree, meta, source = found
            if meta.get("fingerprint") != config.fingerprint():
                raise ConfigError(f"checkpoint {source} belongs to a different config")
            echo(f"resumed from step {meta['step']} ({source})")
            # broadcast_tree takes dicts: the state's leaves go by their position
            sent = {"step": np.array(int(meta["step"])), "leaves": {str(i): x for i, x in enumerate(jax.tree.leaves(tree))}}
    # every process continues from the primary's choice: a restarted group must not mix steps
    sent = broadcast_tree(sent)
    resuming = sent is not None
    start = int(sent["step"]) if resuming else 0
    if resuming:
        leaves = [sent["leaves"][str(i)] for i in range(len(sent["leaves"]))]
        tree = jax.tree.unflatten(jax.tree.structure(target), leaves)
        state = TrainState(tree["params"], tree["opt_state"], tree["chains"], tree["key"])
    if primary:
        (workdir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))

    heldout = jnp.asarray(dataset.heldout)
    base_key = jax.random.wrap_key_data(jnp.asarray(state.key))
    progress = Progress(start, TrainState(state.params, state.opt_state, list(state.chains), state.key))
    total = config.train.steps
    observed = config.train.batch_size * config.sampling.positive_samples + config.sampling.negative_chains * config.sampling.negative_samples
    last_saved = start if resuming else -1

    def save(at: Progress, row: dict) -> None:
        nonlocal last_saved
        batch_meta = data_lib.batch_at(dataset.train, at.step, config.train.batch_size, config.data.seed)
        path = None
        with STOPS.held():  # a stop signal lets the save finish, then stops the loop
            if store is not None:
                tree = jax.tree.map(to_host, at.state.tree())
                meta = {"step": at.step, "data_epoch": batch_meta[1], "data_offset": batch_meta[2],
                        "fingerprint": config.fingerprint(), "identity": config.identity(), "config": config.to_dict()}
                path = store.save(at.step, tree, meta)
            last_saved = at.step
            if on_checkpoint is not None:
                on_checkpoint(at.step, path, row)

    row: dict = {}
    stop: Stopped | None = None
    first_error: BaseException | None = None
    log = None
    try:
        log = MetricsLog(workdir, start, total, tensorboard=config.output.tensorboard,
                         progress=config.output.progress) if primary else None
        started = previous_time = time.perf_counter()
        STOPS.release()  # from here on a stop signal stops the loop (a pending one does now)
        while progress.step < total:
            STOPS.check()  # a stop whose exception Python dropped (see stops.py) stops here
            step = progress.step
            batch, _, _ = data_lib.batch_at(dataset.train, step, config.train.batch_size, config.data.seed)
            s = progress.state
            params, opt_state, chains, stats = train_step(
                s.params, s.opt_state, s.chains, jax.random.fold_in(base_key, step), jnp.asarray(batch)
            )
            stats = {k: float(to_host(v)) for k, v in stats.items()}
            step_lib.check_finite(stats, step + 1, progress.step)
            # the new state and its step become current together, only after its stats were read
            progress = Progress(step + 1, TrainState(params, opt_state, list(chains), s.key))
            now = time.perf_counter()
            # wall time between rows: includes evaluation and saving, not only the jitted step
            row = {"step": step + 1, **stats, "samples_per_s": observed / (now - previous_time), "wall_s": now - started}
            previous_time = now
            if (step + 1) % config.train.eval_every == 0 or step + 1 == total:
                row["heldout_pll"] = float(to_host(pll(params, heldout)))
                row["train_pll"] = float(to_host(pll(params, jnp.asarray(batch))))
            if log is not None:
                log.log(row)
            if (step + 1) % config.train.checkpoint_every == 0:
                save(progress, row)
    except Stopped as err:
        stop = err
        echo(f"stopped by {err} at step {progress.step}; saving a checkpoint")
    except BaseException as err:
        first_error = err
        raise
    finally:
        STOPS.hold()  # the exit save and clean-up run to their end; later signals are ignored
        cleanup = [lambda: log.close() if log is not None else None]
        # after a failed save the error already says what is intact: no retry at exit
        if progress.step != last_saved and progress.step > 0 and not isinstance(first_error, ck.CheckpointError):
            cleanup.append(lambda: save(progress, row))
        cleanup.append(lambda: store.close() if store is not None else None)
        _run_cleanup(cleanup, first_error)
        if stop is not None:
            STOPS.pending = None  # further signals only repeat the stop being handled

    summary = {"steps": progress.step, "total_steps": total}
    if stop is not None:
        summary.update(stopped_by=str(stop), exit_code=stop.exit_code)
    if progress.step >= total and stop is None:
        s = progress.state
        try:
            STOPS.release()  # training is saved: a stop signal (also one held during the last save) ends the evaluation
            try:
                evaluation = _finish(config, workdir, arch, dataset, s.params, s.chains, base_key, pll, echo, primary,
                                     template)
                STOPS.check()
                summary.update(evaluation)
            finally:
                STOPS.hold()
        except Stopped as err:
            echo(f"stopped by {err} during the final evaluation; training is finished and saved (rerun to evaluate)")
            summary.update(stopped_by=str(err), exit_code=err.exit_code)
    if primary:
        write_summary(workdir / "summary.json", summary)
    return summary


def _run_cleanup(steps: list[Callable], first_error: BaseException | None) -> None:
    """Run every clean-up step. The first error (the run's own, else the first clean-up one) is
    what the caller sees; later ones are only warned about, so clean-up never hides it.

    **Arguments:**

    - `steps`: callables run in order, each whatever happens to the others.
    - `first_error`: the error already propagating, or None.
    """
    raised = None
    for fn in steps:
        try:
            fn()
        except Exception as err:
            if first_error is None and raised is None:
                raised = err
            else:
                first = first_error or raised
                warnings.warn(f"while cleaning up after {type(first).__name__}: {type(err).__name__}: {err}",
                              stacklevel=2)
    if raised is not None:
        raise raised


def write_summary(path: pathlib.Path, summary: dict) -> None:
    """Write `summary.json` as strict JSON: non-finite numbers become null.

    **Arguments:**

    - `path`: the file.
    - `summary`: a flat dict of JSON-able values.
    """
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in summary.items()}
    path.write_text(json.dumps(clean, indent=2, allow_nan=False))


def _finish(config, workdir, arch, dataset, params, chains, base_key, pll, echo, primary, template) -> dict:
    """Final evaluation and figures."""
    init = m.init_params(jax.random.split(jax.random.fold_in(jax.random.key(config.train.seed), -1 % 2**31))[0], arch,
                         config.model.init_scale)
    heldout = jnp.asarray(dataset.heldout)
    out = {
        "heldout_pll_untrained": float(to_host(pll(init, heldout))),
        "heldout_pll_trained": float(to_host(pll(params, heldout))),
        "dataset": dataset.name, "n_train": int(len(dataset.train)), "n_heldout": int(len(dataset.heldout)),
        "n_visible": arch.n_visible, "n_hidden": arch.n_hidden, "n_edges": int(len(arch.edges)),
    }
    echo(f"held-out pseudo-log-likelihood per pixel: {out['heldout_pll_untrained']:.4f} untrained -> "
         f"{out['heldout_pll_trained']:.4f} trained")
    if not config.output.plots:
        return out
    STOPS.check()
    # every process samples (the sharded run is collective); only the primary one draws
    energies = _chain_energies(config, arch, params, chains, base_key, template)
    STOPS.check()
    if not primary:
        return out
    # the visible part of the persistent chains is the model's current sample set
    visible = _global_states(arch, chains)[:, : arch.n_visible]
    plots.training_curves(read_csv(workdir / "metrics.csv"), workdir / "curves.png")
    plots.image_grid(dataset.train, dataset.shape, workdir / "data.png", "training data")
    plots.image_grid(visible, dataset.shape, workdir / "samples.png", "model samples (persistent chains)")
    acf = plots.autocorrelation(energies, min(50, energies.shape[1] // 2))
    plots.autocorrelation_plot(acf, workdir / "autocorrelation.png", "the energy")
    out["energy_acf_lag1"] = float(acf[1])
    echo(f"wrote {workdir}/{{metrics.csv,tensorboard/,curves.png,data.png,samples.png,autocorrelation.png,summary.json}}")
    return out


def _global_states(arch: m.Architecture, chains) -> np.ndarray:
    """Chains' block states as `[chains, n_nodes]` in node order (visible first)."""
    n = to_host(chains[0]).shape[0]
    out = np.zeros((n, arch.n_nodes), bool)
    first = int(arch.nodes.ids[0])
    for block, x in zip(arch.negative_blocks, chains):
        out[:, np.asarray(block.ids) - first] = to_host(x)
    return out


def _chain_energies(config, arch, params, chains, base_key, template) -> np.ndarray:
    """Energy of each persistent chain after every sweep of a continuation run, `[chains, T]`."""
    spec = m.training_spec(arch, params, config.sampling)
    program = spec.program_negative
    if template is not None:
        program = dt.shard_training_spec(spec, template).program_negative
    schedule = dt.SamplingSchedule(0, config.output.autocorrelation_sweeps, 1)
    keys = jax.random.split(jax.random.fold_in(base_key, 2**30), to_host(chains[0]).shape[0])
    if isinstance(program, dt.ShardedProgram):
        states = dt.sample_states(keys, program, schedule, list(chains), [], [arch.nodes])[0]
    else:
        states = jax.jit(jax.vmap(lambda k, i: dt.sample_states(k, program, schedule, i, [], [arch.nodes])[0]))(keys, list(chains))
    s = np.where(to_host(states), 1.0, -1.0)  # [chains, T, nodes]
    p = jax.tree.map(to_host, params)
    e = arch.edges
    return -arch.beta * (s @ p["biases"] + np.sum(p["weights"] * s[..., e[:, 0]] * s[..., e[:, 1]], axis=-1))
