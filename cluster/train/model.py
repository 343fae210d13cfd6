"""The Boltzmann machine: visible spins (one per pixel) and hidden spins on a sparse graph.

Hidden units are never coupled to each other, so given the visible spins they are independent:
the positive phase is exact in one sweep, and the free energy (hence the held-out
pseudo-likelihood) is exact. Everything that depends only on the graph (blocks, colouring,
index tables) is built once; `training_spec(params)` only threads the parameters through and
can run under `jax.jit`.
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

import distthrml as dt
from distthrml.models import IsingEBM, IsingTrainingSpec
from partition.generators import grid_edges

from ..workloads.graphs import color_classes, color_nodes
from ..npz_file import integer_array, read_npz
from .config import ConfigError, ModelConfig, SamplingConfig


@dataclasses.dataclass(frozen=True, eq=False)
class Architecture:
    n_visible: int
    n_hidden: int
    edges: np.ndarray  # int [E, 2], node numbers: visible 0..V-1, hidden V..V+H-1
    nodes: dt.Block  # all nodes, visible first
    visible: dt.Block
    hidden: dt.Block
    negative_blocks: list  # colour classes of the whole graph
    beta: float

    @property
    def n_nodes(self) -> int:
        return self.n_visible + self.n_hidden


def _local_edges(shape: tuple[int, int], config: ModelConfig) -> tuple[np.ndarray, int]:
    rows, cols = shape
    hr, hc = config.hidden_rows, config.hidden_cols
    vy, vx = np.divmod(np.arange(rows * cols), cols)
    hy, hx = np.divmod(np.arange(hr * hc), hc)
    # hidden units spread evenly over the image plane
    hy = (hy + 0.5) * rows / hr - 0.5
    hx = (hx + 0.5) * cols / hc - 0.5
    dist = np.maximum(np.abs(hy[:, None] - vy[None]), np.abs(hx[:, None] - vx[None]))
    h, v = np.nonzero(dist <= config.window)
    parts = [np.stack([v, rows * cols + h], axis=1)]
    if config.visible_edges:
        parts.insert(0, grid_edges(rows, cols))
    return np.concatenate(parts).astype(np.int64), hr * hc


def read_graph_file(n_visible: int, path: str) -> tuple[np.ndarray, int]:
    """The edges and hidden-unit count of a `model.graph: npz` file, checked.

    **Arguments:**

    - `n_visible`: pixels of the dataset's images.
    - `path`: `model.graph_path`.
    """
    p = pathlib.Path(path)
    arrays = read_npz(p, "model.graph_path", "graph")
    missing = {"edges", "n_hidden"} - set(arrays)
    if missing:
        raise ConfigError(f"model.graph_path: {p} lacks array(s) {sorted(missing)}")
    key = f"model.graph_path: {p}"
    edges = integer_array(arrays["edges"], key, "'edges'")
    n_hidden = integer_array(arrays["n_hidden"], key, "'n_hidden'")
    if n_hidden.shape != () or n_hidden < 0:
        raise ConfigError(f"{key}: 'n_hidden' must be one integer >= 0, got {arrays['n_hidden']!r}")
    n_hidden = int(n_hidden)
    n = n_visible + n_hidden
    if edges.ndim != 2 or edges.shape[1] != 2 or (edges.size and (edges.min() < 0 or edges.max() >= n)):
        raise ConfigError(f"model.graph_path: {p}: 'edges' must be [E, 2] node numbers in [0, {n})")
    if np.any((edges[:, 0] >= n_visible) & (edges[:, 1] >= n_visible)):
        raise ConfigError(f"model.graph_path: {p}: hidden-hidden edges are not supported (hidden units must be conditionally independent)")
    return edges, n_hidden


def build_architecture(image_shape: tuple[int, int], config: ModelConfig) -> Architecture:
    """The graph, nodes and sampling blocks of the model.

    **Arguments:**

    - `image_shape`: rows and columns of the visible layer.
    - `config`: the `model` section.
    """
    n_visible = image_shape[0] * image_shape[1]
    if config.graph == "local":
        edges, n_hidden = _local_edges(image_shape, config)
    else:
        edges, n_hidden = read_graph_file(n_visible, config.graph_path)
    if len(edges) == 0:
        raise ConfigError("model: the graph has no edges (increase model.window or set model.visible_edges)")
    nodes = dt.make_block(dt.SpinNode, n_visible + n_hidden)
    blocks = [nodes[ids] for ids in color_classes(color_nodes(edges, n_visible + n_hidden))]
    return Architecture(
        n_visible, n_hidden, edges, nodes, nodes[:n_visible], nodes[n_visible:], blocks, config.beta
    )


def init_params(key: jax.Array, arch: Architecture, scale: float) -> dict:
    """Small random couplings, zero biases."""
    return {
        "biases": jnp.zeros(arch.n_nodes, jnp.float32),
        "weights": scale * jax.random.normal(key, (len(arch.edges),), jnp.float32),
    }


def schedules(config: SamplingConfig) -> tuple[dt.SamplingSchedule, dt.SamplingSchedule]:
    """(positive, negative) schedules. The negative chains persist across steps, so they need no
    warmup; the positive phase starts from random hidden states and needs one sweep."""
    positive = dt.SamplingSchedule(1, config.positive_samples, config.positive_steps_per_sample)
    negative = dt.SamplingSchedule(config.negative_steps_per_sample, config.negative_samples, config.negative_steps_per_sample)
    return positive, negative


def ebm(arch: Architecture, params: dict) -> IsingEBM:
    e = arch.edges
    return IsingEBM(arch.nodes, (arch.nodes[e[:, 0]], arch.nodes[e[:, 1]]), params["biases"], params["weights"],
                    jnp.asarray(arch.beta, jnp.float32))


def training_spec(arch: Architecture, params: dict, config: SamplingConfig) -> IsingTrainingSpec:
    """The positive (visible clamped) and negative (all free) programs for `params`; traceable."""
    positive, negative = schedules(config)
    return IsingTrainingSpec(ebm(arch, params), [arch.visible], [], [arch.hidden], arch.negative_blocks, positive, negative)


def log_unnormalised(arch: Architecture, params: dict, visible: jax.Array) -> jax.Array:
    r"""$\log \sum_h e^{-E(v, h)}$ for visible spins `[..., V]` (bool), exact because hidden
    units are conditionally independent."""
    e, V = arch.edges, arch.n_visible
    beta = jnp.asarray(arch.beta, jnp.float32)
    s = jnp.where(visible, 1.0, -1.0).astype(jnp.float32)
    b, w = params["biases"], params["weights"]
    vv = (e[:, 0] < V) & (e[:, 1] < V)
    vh = ~vv
    lo, hi = np.minimum(e[vh, 0], e[vh, 1]), np.maximum(e[vh, 0], e[vh, 1]) - V
    out = beta * (s @ b[:V]) + beta * jnp.sum(w[vv] * s[..., e[vv, 0]] * s[..., e[vv, 1]], axis=-1)
    field = jnp.zeros((*s.shape[:-1], arch.n_hidden), jnp.float32).at[..., hi].add(w[vh] * s[..., lo])
    x = beta * (b[V:] + field)
    # log(2 cosh x), stable for large |x|
    return out + jnp.sum(jnp.abs(x) + jnp.log1p(jnp.exp(-2 * jnp.abs(x))) + jnp.log(2.0), axis=-1)


def pseudo_log_likelihood(arch: Architecture, params: dict, visible: jax.Array) -> jax.Array:
    """Mean over examples and pixels of $\\log p(v_i \\mid v_{-i})$ (exact; hidden summed out).
    An untrained model (all parameters zero) scores $\\log(1/2) = -0.693$."""
    base = log_unnormalised(arch, params, visible)
    flipped = jnp.logical_xor(visible[:, None, :], jnp.eye(arch.n_visible, dtype=bool)[None])
    other = log_unnormalised(arch, params, flipped)
    return jnp.mean(jax.nn.log_sigmoid(base[:, None] - other))
