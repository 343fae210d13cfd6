"""Shared model builders, exact references and statistical checks for the THRML-compatibility tests.

Everything that builds a model takes the library *module* (``thrml`` or ``distthrml``) as its first
argument, so the same model can be built once per library from the same seeds and compared.
The node/factor/sampler classes of the "All of THRML" example are re-created per library by
:func:`make_gaussian_toolkit`, because they must subclass that library's base classes.

Statistical helpers compare *per-chain* statistics: independent chains give i.i.d. estimates, so a
t-test on chain means is valid whatever the autocorrelation inside a chain. Every check uses a
Bonferroni-corrected family-wise false-failure rate ``alpha`` (default 1e-4 per call).
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from types import ModuleType, SimpleNamespace
from typing import Any, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
from jaxtyping import Array, Key, PyTree
from scipy import stats

# default family-wise false-failure probability of one statistical assertion
ALPHA = 1e-4


# --------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------


def one_sample_pvalues(chain_values: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """Two-sided p-values of ``mean(chain_values, axis=0) == exact`` (one-sample t-test over chains).

    ``chain_values`` has shape ``[n_chains, ...]`` with i.i.d. rows. Quantities with zero spread across
    chains get p=1 if they equal ``exact`` (to 1e-6) and p=0 otherwise.
    """
    x = np.asarray(chain_values, dtype=np.float64)
    exact = np.broadcast_to(np.asarray(exact, dtype=np.float64), x.shape[1:])
    n = x.shape[0]
    mean = x.mean(0)
    se = x.std(0, ddof=1) / np.sqrt(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (mean - exact) / se
    p = 2 * stats.t.sf(np.abs(t), df=n - 1)
    degenerate = se == 0
    p = np.where(degenerate, np.where(np.abs(mean - exact) < 1e-6, 1.0, 0.0), p)
    return p


def two_sample_pvalues(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two-sided Welch t-test p-values of ``mean(a, 0) == mean(b, 0)`` for i.i.d. rows (chains)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    va = a.var(0, ddof=1) / a.shape[0]
    vb = b.var(0, ddof=1) / b.shape[0]
    se = np.sqrt(va + vb)
    diff = a.mean(0) - b.mean(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = diff / se
        df = (va + vb) ** 2 / (va**2 / (a.shape[0] - 1) + vb**2 / (b.shape[0] - 1))
    p = 2 * stats.t.sf(np.abs(t), df=np.where(np.isfinite(df), df, 1.0))
    degenerate = se == 0
    return np.where(degenerate, np.where(np.abs(diff) < 1e-6, 1.0, 0.0), p)


def assert_not_significant(pvalues: np.ndarray, what: str, alpha: float = ALPHA) -> None:
    """Fail if any p-value is below the Bonferroni threshold ``alpha / n_tests``.

    If all null hypotheses hold, this fails with probability at most ``alpha``.
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    threshold = alpha / max(p.size, 1)
    worst = int(np.argmin(p))
    assert p[worst] >= threshold, (
        f"{what}: {int(np.sum(p < threshold))} of {p.size} quantities differ significantly; "
        f"smallest p={p[worst]:.3g} at flat index {worst} (Bonferroni threshold {threshold:.3g})"
    )


# --------------------------------------------------------------------------------------------
# exact enumeration
# --------------------------------------------------------------------------------------------


def all_spin_states(n: int) -> np.ndarray:
    """All ``2**n`` spin configurations as a ``[2**n, n]`` array of +-1 (float64)."""
    bits = (np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1
    return 2.0 * bits - 1.0


def ising_log_weights(s: np.ndarray, biases: np.ndarray, edge_index: np.ndarray, weights: np.ndarray, beta: float):
    """``-E(s) = beta * (b.s + sum_e J_e s_i s_j)`` for a batch of spin configurations ``s`` ([m, n])."""
    field = s @ np.asarray(biases, np.float64)
    pair = (s[:, edge_index[:, 0]] * s[:, edge_index[:, 1]]) @ np.asarray(weights, np.float64)
    return float(beta) * (field + pair)


def exact_ising_moments(
    biases: np.ndarray, edge_index: np.ndarray, weights: np.ndarray, beta: float
) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``<s_i>`` and ``<s_i s_j>`` (per edge) of an Ising model by enumeration (n <= ~18)."""
    n = len(biases)
    s = all_spin_states(n)
    logw = ising_log_weights(s, biases, edge_index, weights, beta)
    p = np.exp(logw - logw.max())
    p /= p.sum()
    first = p @ s
    second = p @ (s[:, edge_index[:, 0]] * s[:, edge_index[:, 1]])
    return first, second


def exact_clamped_ising_moments(
    biases: np.ndarray,
    edge_index: np.ndarray,
    weights: np.ndarray,
    beta: float,
    visible: Sequence[int],
    visible_spins: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact moments conditioned on ``s[visible] = visible_spins`` (enumerating the other spins)."""
    n = len(biases)
    hidden = [i for i in range(n) if i not in set(visible)]
    h = all_spin_states(len(hidden))
    s = np.empty((h.shape[0], n))
    s[:, list(visible)] = np.asarray(visible_spins, np.float64)[None, :]
    s[:, hidden] = h
    logw = ising_log_weights(s, biases, edge_index, weights, beta)
    p = np.exp(logw - logw.max())
    p /= p.sum()
    return p @ s, p @ (s[:, edge_index[:, 0]] * s[:, edge_index[:, 1]])


# --------------------------------------------------------------------------------------------
# random Ising models
# --------------------------------------------------------------------------------------------


def random_graph(n: int, p: float, seed: int) -> np.ndarray:
    """Edge index ``[E, 2]`` of a connected Erdos-Renyi graph on ``n`` vertices (re-drawn until connected)."""
    for s in range(seed, seed + 1000):
        g = nx.gnp_random_graph(n, p, seed=s)
        if nx.is_connected(g):
            return np.array(sorted(g.edges()), dtype=int)
    raise RuntimeError("could not draw a connected graph")


def coloring_groups(n: int, edge_index: np.ndarray) -> list[list[int]]:
    """Index groups of a proper greedy (DSATUR) coloring of the graph."""
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(map(tuple, edge_index))
    col = nx.coloring.greedy_color(g, strategy="DSATUR")
    groups = [[] for _ in range(max(col.values()) + 1)]
    for i in range(n):
        groups[col[i]].append(i)
    return groups


def build_ising(lib: ModuleType, biases: np.ndarray, edge_index: np.ndarray, weights: np.ndarray, beta: float):
    """Build ``IsingEBM`` with fresh ``SpinNode``s of ``lib``; returns ``(nodes, edges, model)``."""
    nodes = [lib.SpinNode() for _ in range(len(biases))]
    edges = [(nodes[i], nodes[j]) for i, j in edge_index]
    model = lib.models.IsingEBM(
        nodes, edges, jnp.asarray(biases, jnp.float32), jnp.asarray(weights, jnp.float32), jnp.array(beta, jnp.float32)
    )
    return nodes, edges, model


# --------------------------------------------------------------------------------------------
# the classes of the "All of THRML" example, re-created for a given library
# --------------------------------------------------------------------------------------------


def make_gaussian_toolkit(lib: ModuleType) -> SimpleNamespace:
    """The node/interaction/factor/sampler classes of the docs' "All of THRML" example, bound to ``lib``.

    Mirrors the docs' code (``ContinuousNode``, ``LinearInteraction``, ``QuadraticInteraction``,
    ``QuadraticFactor``, ``LinearFactor``, ``CouplingFactor``, ``GaussianSampler``, the local
    ``SpinNode`` and ``ExtendedSpinGibbsSampler``) with the base classes taken from ``lib``.
    """
    AbstractNode = lib.pgm.AbstractNode
    AbstractFactor = lib.factor.AbstractFactor
    InteractionGroup = lib.interaction.InteractionGroup
    AbstractConditionalSampler = lib.conditional_samplers.AbstractConditionalSampler
    SpinGibbsConditional = lib.models.discrete_ebm.SpinGibbsConditional

    class ContinuousNode(AbstractNode):
        pass

    class SpinNode(AbstractNode):
        pass

    class LinearInteraction(eqx.Module):
        weights: Array

    class QuadraticInteraction(eqx.Module):
        inverse_weights: Array

    class QuadraticFactor(AbstractFactor):
        inverse_weights: Array

        def __init__(self, inverse_weights: Array, block: Any):
            super().__init__([block])
            self.inverse_weights = inverse_weights

        def to_interaction_groups(self) -> list:
            return [
                InteractionGroup(
                    interaction=QuadraticInteraction(self.inverse_weights),
                    head_nodes=self.node_groups[0],
                    tail_nodes=[],
                )
            ]

    class LinearFactor(AbstractFactor):
        weights: Array

        def __init__(self, weights: Array, block: Any):
            super().__init__([block])
            self.weights = weights

        def to_interaction_groups(self) -> list:
            return [
                InteractionGroup(
                    interaction=LinearInteraction(self.weights), head_nodes=self.node_groups[0], tail_nodes=[]
                )
            ]

    class CouplingFactor(AbstractFactor):
        weights: Array

        def __init__(self, weights: Array, blocks: tuple):
            super().__init__(list(blocks))
            self.weights = weights

        def to_interaction_groups(self) -> list:
            return [
                InteractionGroup(LinearInteraction(self.weights), self.node_groups[0], [self.node_groups[1]]),
                InteractionGroup(LinearInteraction(self.weights), self.node_groups[1], [self.node_groups[0]]),
            ]

    class GaussianSampler(AbstractConditionalSampler):
        def sample(
            self,
            key: Key,
            interactions: list[PyTree],
            active_flags: list[Array],
            states: list[list[Any]],
            sampler_state: Any,
            output_sd: PyTree[jax.ShapeDtypeStruct],
        ) -> tuple[Array, Any]:
            bias = jnp.zeros(shape=output_sd.shape, dtype=output_sd.dtype)
            var = jnp.zeros(shape=output_sd.shape, dtype=output_sd.dtype)
            for active, interaction, state in zip(active_flags, interactions, states):
                if isinstance(interaction, LinearInteraction):
                    state_prod = jnp.array(1.0)
                    if len(state) > 0:
                        state_prod = jnp.prod(jnp.stack(state, -1), -1)
                    bias -= jnp.sum(interaction.weights * active * state_prod, axis=-1)
                if isinstance(interaction, QuadraticInteraction):
                    var = active * interaction.inverse_weights
                    var = var[..., 0]
            return (jnp.sqrt(var) * jax.random.normal(key, output_sd.shape)) + (bias * var), sampler_state

        def init(self) -> None:
            return None

    class ExtendedSpinGibbsSampler(SpinGibbsConditional):
        def compute_parameters(
            self,
            key: Key,
            interactions: list[PyTree],
            active_flags: list[Array],
            states: list[list[Any]],
            sampler_state: Any,
            output_sd: PyTree[jax.ShapeDtypeStruct],
        ) -> PyTree:
            field = jnp.zeros(output_sd.shape, dtype=float)
            unprocessed_interactions = []
            unprocessed_active = []
            unprocessed_states = []
            for interaction, active, state in zip(interactions, active_flags, states):
                if isinstance(interaction, LinearInteraction):
                    state_prod = jnp.prod(jnp.stack(state, -1), -1)
                    field -= jnp.sum(interaction.weights * active * state_prod, axis=-1)
                else:
                    unprocessed_interactions.append(interaction)
                    unprocessed_active.append(active)
                    unprocessed_states.append(state)
            field -= super().compute_parameters(
                key, unprocessed_interactions, unprocessed_active, unprocessed_states, sampler_state, output_sd
            )[0]
            return field, sampler_state

    return SimpleNamespace(
        lib=lib,
        ContinuousNode=ContinuousNode,
        SpinNode=SpinNode,
        LinearInteraction=LinearInteraction,
        QuadraticInteraction=QuadraticInteraction,
        QuadraticFactor=QuadraticFactor,
        LinearFactor=LinearFactor,
        CouplingFactor=CouplingFactor,
        GaussianSampler=GaussianSampler,
        ExtendedSpinGibbsSampler=ExtendedSpinGibbsSampler,
    )


def build_skip_grid_program(
    lib: ModuleType, rows: int, cols: int, seed: int, skips: Sequence[int], p_cont: float = 0.5
) -> SimpleNamespace:
    """The docs' mixed spin/continuous skip-connected grid program, built with ``lib``.

    Node types are drawn with ``random.Random(seed)`` exactly as in the docs, weights with
    ``jax.random.key(seed)``, so two calls with different libraries build the same model.
    The returned namespace has ``program``, ``grid``, ``coords`` (node -> (r, c)), ``spin_nodes``,
    ``cont_nodes``, ``block_spec``, ``tk`` (the toolkit) and ``key`` (unused key for sampling).
    """
    tk = make_gaussian_toolkit(lib)
    Block = lib.block_management.Block
    rng = random.Random(seed)
    grid = [[tk.ContinuousNode() if rng.random() < p_cont else tk.SpinNode() for _ in range(cols)] for _ in range(rows)]
    coords = {grid[r][c]: (r, c) for r in range(rows) for c in range(cols)}
    coloring = {0: {tk.SpinNode: [], tk.ContinuousNode: []}, 1: {tk.SpinNode: [], tk.ContinuousNode: []}}
    for r in range(rows):
        for c in range(cols):
            coloring[(r + c) & 1][type(grid[r][c])].append(grid[r][c])

    u_all, v_all = [], []
    for k in skips:
        for r in range(rows - k):
            for c in range(cols):
                u_all.append(grid[r][c])
                v_all.append(grid[r + k][c])
        for r in range(rows):
            for c in range(cols - k):
                u_all.append(grid[r][c])
                v_all.append(grid[r][c + k])

    all_nodes = [grid[r][c] for r in range(rows) for c in range(cols)]
    spin_nodes = [n for n in all_nodes if isinstance(n, tk.SpinNode)]
    cont_nodes = [n for n in all_nodes if not isinstance(n, tk.SpinNode)]
    ss_edges, cc_edges, sc_edges = [[], []], [[], []], [[], []]
    for e0, e1 in zip(u_all, v_all):
        if isinstance(e0, tk.SpinNode) and isinstance(e1, tk.SpinNode):
            ss_edges[0].append(e0)
            ss_edges[1].append(e1)
        elif isinstance(e0, tk.ContinuousNode) and isinstance(e1, tk.ContinuousNode):
            cc_edges[0].append(e0)
            cc_edges[1].append(e1)
        elif isinstance(e0, tk.SpinNode):
            sc_edges[0].append(e0)
            sc_edges[1].append(e1)
        else:
            sc_edges[1].append(e0)
            sc_edges[0].append(e1)

    key = jax.random.key(seed)
    key, k1, k2, k3, k4, k5, k6 = jax.random.split(key, 7)
    factors = [
        tk.QuadraticFactor(jax.random.uniform(k1, (len(cont_nodes),), minval=2, maxval=3), Block(cont_nodes)),
        tk.LinearFactor(jax.random.normal(k2, (len(cont_nodes),)), Block(cont_nodes)),
        tk.CouplingFactor(
            jax.random.uniform(k3, (len(cc_edges[0]),), minval=-1 / 10, maxval=1 / 10),
            (Block(cc_edges[0]), Block(cc_edges[1])),
        ),
        tk.CouplingFactor(jax.random.normal(k4, (len(sc_edges[0]),)), (Block(sc_edges[0]), Block(sc_edges[1]))),
        lib.models.discrete_ebm.SpinEBMFactor([Block(spin_nodes)], jax.random.normal(k5, (len(spin_nodes),))),
        lib.models.discrete_ebm.SpinEBMFactor([Block(x) for x in ss_edges], jax.random.normal(k6, (len(ss_edges[0]),))),
    ]
    sds = {
        tk.ContinuousNode: jax.ShapeDtypeStruct((), jnp.float32),
        tk.SpinNode: jax.ShapeDtypeStruct(shape=(), dtype=jnp.bool_),
    }
    blocks = [
        (Block(coloring[0][tk.SpinNode]), Block(coloring[0][tk.ContinuousNode])),
        (Block(coloring[1][tk.SpinNode]), Block(coloring[1][tk.ContinuousNode])),
    ]
    block_spec = lib.block_sampling.BlockGibbsSpec(blocks, [], sds)
    ber_sampler = tk.ExtendedSpinGibbsSampler()
    gauss_sampler = tk.GaussianSampler()
    samplers = [ber_sampler if isinstance(b.nodes[0], tk.SpinNode) else gauss_sampler for b in block_spec.free_blocks]
    program = lib.factor.FactorSamplingProgram(block_spec, samplers, factors, [])
    return SimpleNamespace(
        program=program,
        grid=grid,
        coords=coords,
        spin_nodes=spin_nodes,
        cont_nodes=cont_nodes,
        block_spec=block_spec,
        tk=tk,
        key=key,
        factors=factors,
    )


# --------------------------------------------------------------------------------------------
# small heterogeneous discrete model (spins + categoricals) with exact enumeration
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MixedDiscreteParams:
    """Parameters of a small spin/categorical model (plain numpy arrays, library independent).

    Energy: ``E = -( sum_i h_i s_i + sum_(i,j) J_ij s_i s_j + sum_a B_a[c_a] + sum_(a,b) W_ab[c_a, c_b]
    + sum_(i,a) U_ia s_i V_ia[c_a] )`` where the last term is a ``DiscreteEBMFactor`` with one spin and one
    categorical group (weights ``[b, n_cat]``).
    """

    n_spin: int
    n_cat: int
    n_states: int
    h: np.ndarray
    ss: np.ndarray
    J: np.ndarray
    B: np.ndarray
    cc: np.ndarray
    W: np.ndarray
    sc: np.ndarray
    V: np.ndarray


def make_mixed_discrete_params(seed: int, n_spin: int = 5, n_cat: int = 4, n_states: int = 3) -> MixedDiscreteParams:
    """Random parameters with a ring of spin-spin, a ring of (asymmetric) cat-cat and a few spin-cat edges."""
    rng = np.random.default_rng(seed)
    ss = np.array([(i, (i + 1) % n_spin) for i in range(n_spin)])
    cc = np.array([(a, (a + 1) % n_cat) for a in range(n_cat)])
    sc = np.array([(i, i % n_cat) for i in range(n_spin)])
    return MixedDiscreteParams(
        n_spin=n_spin,
        n_cat=n_cat,
        n_states=n_states,
        h=rng.normal(0, 0.5, n_spin).astype(np.float32),
        ss=ss,
        J=rng.normal(0, 0.6, len(ss)).astype(np.float32),
        B=rng.normal(0, 0.5, (n_cat, n_states)).astype(np.float32),
        cc=cc,
        W=rng.normal(0, 0.8, (len(cc), n_states, n_states)).astype(np.float32),
        sc=sc,
        V=rng.normal(0, 0.6, (len(sc), n_states)).astype(np.float32),
    )


def mixed_discrete_energy(p: MixedDiscreteParams, s: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Energy of configurations ``s`` ([m, n_spin] of +-1) and ``c`` ([m, n_cat] ints)."""
    s = np.asarray(s, np.float64)
    c = np.asarray(c)
    e = s @ p.h.astype(np.float64)
    e = e + (s[:, p.ss[:, 0]] * s[:, p.ss[:, 1]]) @ p.J.astype(np.float64)
    e = e + sum(p.B[a][c[:, a]] for a in range(p.n_cat))
    e = e + sum(p.W[k][c[:, a], c[:, b]] for k, (a, b) in enumerate(p.cc))
    e = e + sum(s[:, i] * p.V[k][c[:, a]] for k, (i, a) in enumerate(p.sc))
    return -e


def exact_mixed_marginals(p: MixedDiscreteParams) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``P(s_i = +1)`` ([n_spin]) and ``P(c_a = k)`` ([n_cat, n_states]) by enumeration."""
    s = all_spin_states(p.n_spin)
    c = np.array(list(itertools.product(range(p.n_states), repeat=p.n_cat)))
    ss = np.repeat(s, len(c), axis=0)
    cc = np.tile(c, (len(s), 1))
    e = mixed_discrete_energy(p, ss, cc)
    w = np.exp(-(e - e.min()))
    w /= w.sum()
    p_spin = w @ (ss > 0)
    p_cat = np.stack([w @ (cc == k) for k in range(p.n_states)], axis=-1)
    return p_spin, p_cat


def build_mixed_discrete(lib: ModuleType, p: MixedDiscreteParams) -> SimpleNamespace:
    """Build the spin/categorical model of ``p`` with ``lib``: factors, superblock spec and program.

    Spins use ``SpinGibbsConditional``, categoricals ``CategoricalGibbsConditional``; each color of the
    joint interaction graph is one superblock ``(spin block, categorical block)``.
    """
    Block = lib.block_management.Block
    debm = lib.models.discrete_ebm
    spins = [lib.SpinNode() for _ in range(p.n_spin)]
    cats = [lib.CategoricalNode() for _ in range(p.n_cat)]
    factors = [
        debm.SpinEBMFactor([Block(spins)], jnp.asarray(p.h)),
        debm.SpinEBMFactor([Block([spins[i] for i in p.ss[:, 0]]), Block([spins[i] for i in p.ss[:, 1]])], jnp.asarray(p.J)),
        debm.CategoricalEBMFactor([Block(cats)], jnp.asarray(p.B)),
        debm.CategoricalEBMFactor(
            [Block([cats[a] for a in p.cc[:, 0]]), Block([cats[a] for a in p.cc[:, 1]])], jnp.asarray(p.W)
        ),
        debm.DiscreteEBMFactor([Block([spins[i] for i in p.sc[:, 0]])], [Block([cats[a] for a in p.sc[:, 1]])], jnp.asarray(p.V)),
    ]
    # joint graph: spins 0..n_spin-1, cats n_spin..; color it and split every color by type
    edges = np.concatenate([p.ss, p.cc + p.n_spin, np.stack([p.sc[:, 0], p.sc[:, 1] + p.n_spin], -1)])
    groups = coloring_groups(p.n_spin + p.n_cat, edges)
    allnodes = spins + cats
    superblocks = []
    for g in groups:
        sb = tuple(
            Block(x) for x in ([allnodes[i] for i in g if i < p.n_spin], [allnodes[i] for i in g if i >= p.n_spin]) if x
        )
        superblocks.append(sb)
    spec = lib.block_sampling.BlockGibbsSpec(superblocks, [])
    samplers = [
        debm.SpinGibbsConditional() if isinstance(b.nodes[0], lib.SpinNode) else debm.CategoricalGibbsConditional(p.n_states)
        for b in spec.free_blocks
    ]
    program = lib.factor.FactorSamplingProgram(spec, samplers, factors, [])
    return SimpleNamespace(spins=spins, cats=cats, factors=factors, spec=spec, program=program)


# --------------------------------------------------------------------------------------------
# the docs' Potts model
# --------------------------------------------------------------------------------------------


def build_potts(lib: ModuleType, side_length: int = 20, n_cats: int = 5, beta: float = 1.0) -> SimpleNamespace:
    """The docs' Potts program (grid, identity couplings times beta, two-color blocks) built with ``lib``.

    Returns ``prog``, ``spec``, ``nodes`` (grid order), and ``ui``/``vi``: the edge endpoints as indices
    into ``nodes``.
    """
    Block = lib.block_management.Block
    G = nx.grid_graph(dim=(side_length, side_length), periodic=False)
    coord_to_node = {coord: lib.pgm.CategoricalNode() for coord in G.nodes}
    nx.relabel_nodes(G, coord_to_node, copy=False)
    bicol = nx.bipartite.color(G)
    color0 = [n for n, c in bicol.items() if c == 0]
    color1 = [n for n, c in bicol.items() if c == 1]
    u, v = map(list, zip(*G.edges()))
    id_mat = jnp.eye(n_cats)
    weights = beta * jnp.broadcast_to(jnp.expand_dims(id_mat, 0), (len(u), *id_mat.shape))
    factor = lib.models.discrete_ebm.CategoricalEBMFactor([Block(u), Block(v)], weights)
    spec = lib.block_sampling.BlockGibbsSpec([Block(color0), Block(color1)], [])
    sampler = lib.models.discrete_ebm.CategoricalGibbsConditional(n_cats)
    prog = lib.factor.FactorSamplingProgram(spec, [sampler for _ in spec.free_blocks], [factor], [])
    nodes = list(G.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    return SimpleNamespace(
        prog=prog,
        spec=spec,
        nodes=nodes,
        n_cats=n_cats,
        ui=np.array([index[a] for a in u]),
        vi=np.array([index[b] for b in v]),
    )
