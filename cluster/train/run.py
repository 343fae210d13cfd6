"""The training loop of `distthrml train`: resume, step, evaluate, checkpoint, report, plot."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import signal
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import yaml

import distthrml as dt

from . import checkpoint as ck
from . import data as data_lib
from . import model as m
from . import plots
from . import step as step_lib
from .config import Config, ConfigError, diff_identity
from .metrics import MetricsLog, read_csv

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


def to_host(x) -> np.ndarray:
    """A numpy copy of `x`, also when `x` is a global array of a multi-process run (replicated
    results are read from a local shard)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


class _Stop(Exception):
    """Raised from the SIGTERM handler so that the loop saves a final checkpoint."""


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

    **Arguments:**

    - `config`: the validated config.
    - `workdir`: outputs go here (checkpoints, metrics, plots).
    - `force`: start over in a workdir that holds another config's checkpoints.
    - `echo`: where to print progress lines.
    - `resume_from`: a checkpoint directory to resume from instead of the workdir's latest (Ray
        Train hands one over after a restart).
    - `on_checkpoint`: `f(step, directory_or_None, metrics)` called after every checkpoint
        (Ray reporting); every process calls it, only the primary one with a directory.
    - `mesh`: the `("chains", "graph")` mesh for sharded sampling (default: local devices).

    **Returns:** the summary also written to `summary.json`.
    """
    workdir = pathlib.Path(workdir).absolute()
    primary = jax.process_index() == 0
    workdir.mkdir(parents=True, exist_ok=True)
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
    start = 0
    restored = ck.read_checkpoint_dir(resume_from, target) if resume_from else (store.restore_latest(target) if store else None)
    if restored is not None:
        tree, meta = restored
        if meta.get("fingerprint") != config.fingerprint():
            raise ConfigError(f"checkpoint {resume_from or store.directory} belongs to a different config")
        state = TrainState(tree["params"], tree["opt_state"], tree["chains"], tree["key"])
        start = int(meta["step"])
        echo(f"resumed from step {start} ({resume_from or store.step_dir(start)})")
    if primary:
        (workdir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))

    heldout = jnp.asarray(dataset.heldout)
    base_key = jax.random.wrap_key_data(jnp.asarray(state.key))
    params, opt_state, chains = state.params, state.opt_state, list(state.chains)
    total = config.train.steps
    log = MetricsLog(workdir, start, total, tensorboard=config.output.tensorboard,
                     progress=config.output.progress) if primary else None
    observed = config.train.batch_size * config.sampling.positive_samples + config.sampling.negative_chains * config.sampling.negative_samples
    last_saved = start if restored is not None else -1
    previous_handler = signal.signal(signal.SIGTERM, _raise_stop) if _main_thread() else None
    step = start
    started = previous_time = time.perf_counter()

    def save(at_step: int, row: dict) -> None:
        nonlocal last_saved
        batch_meta = data_lib.batch_at(dataset.train, at_step, config.train.batch_size, config.data.seed)
        path = None
        if store is not None:
            tree = jax.tree.map(to_host, TrainState(params, opt_state, chains, state.key).tree())
            meta = {"step": at_step, "data_epoch": batch_meta[1], "data_offset": batch_meta[2],
                    "fingerprint": config.fingerprint(), "identity": config.identity(), "config": config.to_dict()}
            path = store.save(at_step, tree, meta)
        last_saved = at_step
        if on_checkpoint is not None:
            on_checkpoint(at_step, path, row)

    row: dict = {}
    save_failed = False
    try:
        for step in range(start, total):
            batch, _, _ = data_lib.batch_at(dataset.train, step, config.train.batch_size, config.data.seed)
            params, opt_state, chains, stats = train_step(
                params, opt_state, chains, jax.random.fold_in(base_key, step), jnp.asarray(batch)
            )
            stats = {k: float(to_host(v)) for k, v in stats.items()}
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
                save(step + 1, row)
            step += 1
    except (KeyboardInterrupt, _Stop):
        echo(f"interrupted at step {step}; saving a checkpoint")
    except ck.CheckpointError:
        save_failed = True  # do not retry at exit: the error already says what is intact
        raise
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
        if log is not None:
            log.close()
        if step != last_saved and step > 0 and not save_failed:
            save(step, row)
        if store is not None:
            store.close()

    summary = {"steps": step, "total_steps": total}
    if step >= total:
        summary.update(_finish(config, workdir, arch, dataset, params, chains, base_key, pll, echo, primary, template))
    if primary:
        (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _raise_stop(signum, frame):
    raise _Stop()


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
    # every process samples (the sharded run is collective); only the primary one draws
    energies = _chain_energies(config, arch, params, chains, base_key, template)
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
