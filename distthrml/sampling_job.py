"""The `distthrml run` job: build a lattice model from a config, sample it, report and save.

Config (YAML), every key optional; unknown keys are an error naming the key:

    model:    {kind: ising2d | potts2d, rows, cols, beta, coupling, field, categories}
    sampling: {chains, warmup, samples, steps_per_sample, seed}
    output:   {dir, plots}
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import yaml

from . import SamplingSchedule, block_state_to_global, make_block, sample_with_observation
from .errors import DistThrmlError
from .observers import AbstractObserver
from .physics import onsager_energy_per_spin


class ConfigError(DistThrmlError):
    """A run configuration is invalid."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    kind: str = "ising2d"
    rows: int = 128
    cols: int = 128
    beta: float = 0.3
    coupling: float = 1.0
    field: float = 0.0
    categories: int = 3


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    chains: int = 8
    warmup: int = 200
    samples: int = 50
    steps_per_sample: int = 4
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    dir: str = "out/run"
    plots: bool = True


@dataclasses.dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = ModelConfig()
    sampling: SamplingConfig = SamplingConfig()
    output: OutputConfig = OutputConfig()


def _section(cls, raw: Any, name: str):
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"config section '{name}' must be a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) in '{name}': {unknown}; known keys: {sorted(fields)}")
    values = {}
    for key, value in raw.items():
        want = type(getattr(cls(), key))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ConfigError(f"'{name}.{key}' must be {want.__name__}, got {value!r}")
        values[key] = value
    return cls(**values)


def load_run_config(path: str | pathlib.Path) -> RunConfig:
    """Read and validate a run config file.

    **Arguments:**

    - `path`: a YAML file.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    unknown = sorted(set(raw) - {"model", "sampling", "output"})
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {unknown}; known: ['model', 'output', 'sampling']")
    config = RunConfig(
        _section(ModelConfig, raw.get("model"), "model"),
        _section(SamplingConfig, raw.get("sampling"), "sampling"),
        _section(OutputConfig, raw.get("output"), "output"),
    )
    m, s = config.model, config.sampling
    if m.kind not in ("ising2d", "potts2d"):
        raise ConfigError(f"model.kind must be 'ising2d' or 'potts2d', got {m.kind!r}")
    if m.rows < 2 or m.cols < 2 or m.rows % 2 or m.cols % 2:
        raise ConfigError(f"model.rows and model.cols must be even and >= 2 (checkerboard coloring), got {m.rows}x{m.cols}")
    if min(s.chains, s.samples, s.steps_per_sample) < 1 or s.warmup < 0:
        raise ConfigError("sampling.chains, samples and steps_per_sample must be >= 1 and warmup >= 0")
    return config


class LatticeObserver(AbstractObserver):
    """Records the energy per site and the order parameter; carries the latest state."""

    u: jax.Array
    v: jax.Array
    kind: str = eqx.field(static=True)
    n_categories: int = eqx.field(static=True)

    def __call__(self, program, state_free, state_clamped, carry, iteration):
        global_state = block_state_to_global(list(state_free) + list(state_clamped), program.gibbs_spec)
        return self.observe_global(program, global_state, carry, iteration)

    def observe_global(self, program, global_state, carry, iteration):
        state = global_state[program.gibbs_spec.block_sd_index[0]]
        if self.kind == "ising2d":
            spins = jnp.where(state, 1.0, -1.0)
            energy = -jnp.mean(spins[self.u] * spins[self.v]) * self.u.shape[0] / state.shape[0]
            order = jnp.mean(spins)
        else:
            energy = -jnp.mean((state[self.u] == state[self.v]).astype(jnp.float32)) * self.u.shape[0] / state.shape[0]
            counts = jnp.bincount(state.astype(jnp.int32), length=self.n_categories)
            order = jnp.max(counts).astype(jnp.float32) / state.shape[0]
        return state, {"energy": energy, "order": order}

    def init(self):
        return None


def build_lattice(config: ModelConfig):
    """The lattice model, its program and its blocks, built array-natively."""
    from partition.generators import checkerboard_colors, torus_edges

    from .block_sampling import BlockGibbsSpec
    from .factor import FactorSamplingProgram
    from .models import CategoricalEBMFactor, CategoricalGibbsConditional, IsingEBM, IsingSamplingProgram
    from .pgm import CategoricalNode, SpinNode

    n = config.rows * config.cols
    edges = torus_edges(config.rows, config.cols)
    colors = checkerboard_colors(config.rows, config.cols)
    if config.kind == "ising2d":
        nodes = make_block(SpinNode, n)
        model = IsingEBM(
            nodes,
            (nodes[edges[:, 0]], nodes[edges[:, 1]]),
            jnp.full(n, config.field, jnp.float32),
            jnp.full(len(edges), config.coupling, jnp.float32),
            jnp.array(config.beta, jnp.float32),
        )
        blocks = [nodes[np.flatnonzero(colors == c)] for c in (0, 1)]
        program = IsingSamplingProgram(model, blocks, [])
    else:
        nodes = make_block(CategoricalNode, n)
        k = config.categories
        weights = np.broadcast_to(config.beta * config.coupling * np.eye(k, dtype=np.float32), (len(edges), k, k))
        factor = CategoricalEBMFactor([nodes[edges[:, 0]], nodes[edges[:, 1]]], jnp.asarray(weights))
        blocks = [nodes[np.flatnonzero(colors == c)] for c in (0, 1)]
        spec = BlockGibbsSpec(blocks, [])
        program = FactorSamplingProgram(spec, [CategoricalGibbsConditional(k)] * 2, [factor], [])
    return program, blocks, nodes, edges


def run_sampling(config: RunConfig, *, echo=print) -> dict:
    """Run the sampling job of `config`; returns the summary that is also written to `summary.json`."""
    m, s = config.model, config.sampling
    out = pathlib.Path(config.output.dir)
    out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    program, blocks, nodes, edges = build_lattice(m)
    build_seconds = time.perf_counter() - start
    n = len(nodes)
    echo(f"model: {m.kind} {m.rows}x{m.cols} torus, {n} nodes, {len(edges)} edges; built in {build_seconds:.2f} s")

    spec = program.gibbs_spec
    position = spec.node_sd_position[spec.node_index.lookup(nodes.ids)]  # lattice site -> global-state slot
    observer = LatticeObserver(
        jnp.asarray(position[edges[:, 0]].astype(np.int32)),
        jnp.asarray(position[edges[:, 1]].astype(np.int32)),
        m.kind,
        m.categories,
    )
    schedule = SamplingSchedule(s.warmup, s.samples, s.steps_per_sample)
    keys = jax.random.split(jax.random.key(s.seed), s.chains)
    init_key = jax.random.fold_in(jax.random.key(s.seed), 1)
    if m.kind == "ising2d":
        init = [jax.random.bernoulli(jax.random.fold_in(init_key, i), 0.5, (s.chains, len(b))) for i, b in enumerate(blocks)]
    else:
        init = [
            jax.random.randint(jax.random.fold_in(init_key, i), (s.chains, len(b)), 0, m.categories, jnp.uint8)
            for i, b in enumerate(blocks)
        ]
    run = jax.jit(jax.vmap(lambda k, i: sample_with_observation(k, program, schedule, i, [], None, observer)))
    start = time.perf_counter()
    compiled = run.lower(keys, init).compile()
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    last_state, records = jax.block_until_ready(compiled(keys, init))
    sample_seconds = time.perf_counter() - start
    sweeps = s.warmup + (s.samples - 1) * s.steps_per_sample
    flips_per_ns = n * s.chains * sweeps / sample_seconds / 1e9

    energy = np.asarray(records["energy"])  # [chains, samples]
    order = np.asarray(records["order"])
    tail = energy[:, energy.shape[1] // 2 :]
    chain_means = tail.mean(axis=1)
    summary = {
        "model": dataclasses.asdict(m),
        "sampling": dataclasses.asdict(s),
        "nodes": n,
        "edges": int(len(edges)),
        "build_seconds": round(build_seconds, 3),
        "compile_seconds": round(compile_seconds, 3),
        "sample_seconds": round(sample_seconds, 3),
        "flips_per_ns": round(flips_per_ns, 5),
        "energy_per_site": float(chain_means.mean()),
        "energy_per_site_stderr": float(chain_means.std(ddof=1) / np.sqrt(len(chain_means))) if s.chains > 1 else None,
        "order_parameter": float(np.abs(order[:, order.shape[1] // 2 :]).mean()),
    }
    echo(f"sampled {s.chains} chains x {sweeps} sweeps in {sample_seconds:.2f} s (compile {compile_seconds:.2f} s): "
         f"{flips_per_ns:.4f} flips/ns")
    if m.kind == "ising2d" and m.field == 0.0:
        exact = onsager_energy_per_spin(m.beta, m.coupling)
        summary["onsager_energy_per_site"] = exact
        echo(f"energy per spin {summary['energy_per_site']:.5f} +- {summary['energy_per_site_stderr'] or 0:.5f} "
             f"(Onsager, infinite lattice: {exact:.5f}); |magnetisation| {summary['order_parameter']:.4f}")
    else:
        echo(f"energy per site {summary['energy_per_site']:.5f}; order parameter {summary['order_parameter']:.4f}")

    lattice = np.asarray(last_state)[:, position]
    np.savez_compressed(out / "samples.npz", energy=energy, order=order, final_state=lattice.reshape(s.chains, m.rows, m.cols))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if config.output.plots:
        _plot(out, lattice[0].reshape(m.rows, m.cols), energy, order, summary)
    echo(f"wrote {out / 'samples.npz'}, {out / 'summary.json'}" + (f", {out / 'run.png'}" if config.output.plots else ""))
    return summary


def _plot(out: pathlib.Path, lattice: np.ndarray, energy: np.ndarray, order: np.ndarray, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    axes[0].imshow(lattice, cmap="viridis", interpolation="nearest")
    axes[0].set_title("final state, chain 0")
    axes[0].set_axis_off()
    for chain in energy:
        axes[1].plot(chain, lw=0.8, alpha=0.6)
    if "onsager_energy_per_site" in summary:
        axes[1].axhline(summary["onsager_energy_per_site"], color="k", ls="--", label="Onsager (exact)")
        axes[1].legend()
    axes[1].set(title="energy per site", xlabel="sample", ylabel="energy / site")
    for chain in order:
        axes[2].plot(chain, lw=0.8, alpha=0.6)
    axes[2].set(title="order parameter (magnetisation or majority fraction)", xlabel="sample")
    fig.tight_layout()
    fig.savefig(out / "run.png", dpi=110)
    plt.close(fig)
