"""The examples of the THRML 0.1.4 documentation (shared/reference/thrml-docs.txt), run against distthrml.

Each test reproduces the code of one documented example with only the import name changed
(``thrml`` -> ``distthrml``); plotting code is dropped. On top of "it runs", every test checks the
documented output shapes/dtypes and a behaviour the example demonstrates, with thresholds derived
from the number of samples (see each docstring). Examples that take minutes on a CPU are kept at
full size behind ``@pytest.mark.slow`` and run at a reduced size by default.

Statistical thresholds: whenever a check compares a Monte Carlo estimate with an exact value, the
threshold is set so that a correct sampler fails with probability <= 1e-4 (Bonferroni over all the
quantities of that check; per-chain estimates are i.i.d., so t-tests over chains are valid).
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import equinox as eqx
import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest
from jaxtyping import Array, Key, PyTree

from distthrml.block_management import Block
from distthrml.block_sampling import (
    BlockGibbsSpec,
    BlockSamplingProgram,
    SamplingSchedule,
    sample_states,
    sample_with_observation,
)
from distthrml.conditional_samplers import (
    AbstractConditionalSampler,
    _SamplerState,
    _State,
)
from distthrml.factor import AbstractFactor, FactorSamplingProgram
from distthrml.interaction import InteractionGroup
from distthrml.models.discrete_ebm import SpinEBMFactor, SpinGibbsConditional
from distthrml.observers import MomentAccumulatorObserver
from distthrml.pgm import AbstractNode

from reference_models import assert_not_significant, one_sample_pvalues


def _tree_shapes(tree: PyTree) -> PyTree:
    return jax.tree.map(lambda x: (tuple(x.shape), jnp.dtype(x.dtype)), tree)


# =============================================================================================
# Home page: quick example (5-spin Ising chain)
# =============================================================================================


def test_quick_example_ising_chain() -> None:
    """The Home-page quick example runs as documented and samples the right chain.

    Checks: ``hinton_init`` returns one bool array per free block; ``sample_states`` returns one
    ``[1000, 5]`` bool array. Behaviour: for an open chain with J=0.5, beta=1 and zero bias, the exact
    nearest-neighbour correlation is ``tanh(0.5) = 0.462``. Over 512 independent chains (thrml 0.1.4) the
    per-chain mean over the 4 edges has sd 0.0137 and each edge sd 0.029, so the thresholds 0.08 (mean,
    ~5.8 sd) and 0.16 (each edge, ~5.5 sd) fail a correct sampler with probability < 1e-6.
    """
    import jax
    import jax.numpy as jnp
    from distthrml import SpinNode, Block, SamplingSchedule, sample_states
    from distthrml.models import IsingEBM, IsingSamplingProgram, hinton_init

    nodes = [SpinNode() for _ in range(5)]
    edges = [(nodes[i], nodes[i + 1]) for i in range(4)]
    biases = jnp.zeros((5,))
    weights = jnp.ones((4,)) * 0.5
    beta = jnp.array(1.0)
    model = IsingEBM(nodes, edges, biases, weights, beta)

    free_blocks = [Block(nodes[::2]), Block(nodes[1::2])]
    program = IsingSamplingProgram(model, free_blocks, clamped_blocks=[])

    key = jax.random.key(0)
    k_init, k_samp = jax.random.split(key, 2)
    init_state = hinton_init(k_init, model, free_blocks, ())
    schedule = SamplingSchedule(n_warmup=100, n_samples=1000, steps_per_sample=2)

    samples = sample_states(k_samp, program, schedule, init_state, [], [Block(nodes)])

    assert _tree_shapes(init_state) == [((3,), jnp.dtype(bool)), ((2,), jnp.dtype(bool))]
    assert isinstance(samples, list) and len(samples) == 1
    assert samples[0].shape == (1000, 5)
    assert samples[0].dtype == jnp.bool_

    spins = 2 * np.asarray(samples[0], dtype=np.int64) - 1
    corr = np.mean(spins[:, :-1] * spins[:, 1:], axis=0)
    exact = np.tanh(0.5)
    assert np.all(corr > 0)
    assert abs(corr.mean() - exact) < 0.08, (corr, exact)
    assert np.all(np.abs(corr - exact) < 0.16), (corr, exact)


def test_quick_example_batched_correlations_match_exact_chain() -> None:
    """The quick-example program under ``jit(vmap(...))`` reproduces the exact chain statistics.

    256 chains x 200 samples; per chain we average ``s_i s_{i+1}`` (exact ``tanh(0.5)``),
    ``s_i s_{i+2}`` (exact ``tanh(0.5)**2``) and ``s_i`` (exact 0) and t-test the chain means against the
    exact values (13 quantities, family-wise false-failure rate 1e-4).
    """
    from distthrml import SpinNode, sample_states as _sample_states
    from distthrml.models import IsingEBM, IsingSamplingProgram, hinton_init

    nodes = [SpinNode() for _ in range(5)]
    edges = [(nodes[i], nodes[i + 1]) for i in range(4)]
    model = IsingEBM(nodes, edges, jnp.zeros((5,)), jnp.ones((4,)) * 0.5, jnp.array(1.0))
    free_blocks = [Block(nodes[::2]), Block(nodes[1::2])]
    program = IsingSamplingProgram(model, free_blocks, clamped_blocks=[])
    n_chains = 256
    schedule = SamplingSchedule(n_warmup=20, n_samples=200, steps_per_sample=2)
    k_init, k_samp = jax.random.split(jax.random.key(11), 2)
    init_state = hinton_init(k_init, model, free_blocks, (n_chains,))
    keys = jax.random.split(k_samp, n_chains)
    samples = jax.jit(jax.vmap(lambda k, i: _sample_states(k, program, schedule, i, [], [Block(nodes)])))(
        keys, init_state
    )
    assert samples[0].shape == (n_chains, 200, 5) and samples[0].dtype == jnp.bool_
    s = 2 * np.asarray(samples[0], dtype=np.int64) - 1
    per_chain = np.concatenate(
        [(s[:, :, :-1] * s[:, :, 1:]).mean(1), (s[:, :, :-2] * s[:, :, 2:]).mean(1), s.mean(1)], axis=1
    )
    exact = np.concatenate([np.full(4, np.tanh(0.5)), np.full(3, np.tanh(0.5) ** 2), np.zeros(5)])
    assert_not_significant(one_sample_pvalues(per_chain, exact), "Ising chain correlations vs exact")


# =============================================================================================
# Example: Probabilistic Computing (Potts model)
# =============================================================================================


def _potts_example(n_batches: int, n_samples: int) -> SimpleNamespace:
    """The docs' Potts example (20x20 grid, 5 categories, beta=1) with a configurable batch/sample count."""
    import jax
    import jax.numpy as jnp
    import networkx as nx

    from distthrml.block_management import Block
    from distthrml.block_sampling import BlockGibbsSpec, sample_states, SamplingSchedule
    from distthrml.pgm import CategoricalNode
    from distthrml.models.discrete_ebm import CategoricalEBMFactor, CategoricalGibbsConditional
    from distthrml.factor import FactorSamplingProgram

    side_length = 20
    G = nx.grid_graph(dim=(side_length, side_length), periodic=False)
    coord_to_node = {coord: CategoricalNode() for coord in G.nodes}
    nx.relabel_nodes(G, coord_to_node, copy=False)
    for coord, node in coord_to_node.items():
        G.nodes[node]["coords"] = coord
    bicol = nx.bipartite.color(G)
    color0 = [n for n, c in bicol.items() if c == 0]
    color1 = [n for n, c in bicol.items() if c == 1]
    u, v = map(list, zip(*G.edges()))

    n_cats = 5
    beta = 1.0
    id_mat = jnp.eye(n_cats)
    weights = beta * jnp.broadcast_to(jnp.expand_dims(id_mat, 0), (len(u), *id_mat.shape))
    coupling_interaction = CategoricalEBMFactor([Block(u), Block(v)], weights)
    interactions = [coupling_interaction]

    blocks = [Block(color0), Block(color1)]
    spec = BlockGibbsSpec(blocks, [])
    sampler = CategoricalGibbsConditional(n_cats)
    prog = FactorSamplingProgram(
        spec,
        [sampler for _ in spec.free_blocks],
        interactions,
        [],
    )

    key = jax.random.key(4242)
    init_state = []
    for block in spec.free_blocks:
        key, subkey = jax.random.split(key, 2)
        init_state.append(
            jax.random.randint(subkey, (n_batches, len(block.nodes)), minval=0, maxval=n_cats, dtype=jnp.uint8)
        )
    schedule = SamplingSchedule(n_warmup=0, n_samples=n_samples, steps_per_sample=5)
    keys = jax.random.split(key, n_batches)
    samples = jax.jit(jax.vmap(lambda i, k: sample_states(k, prog, schedule, i, [], [Block(G.nodes)])))(init_state, keys)

    node_index = {n: i for i, n in enumerate(G.nodes)}
    ui = np.array([node_index[a] for a in u])
    vi = np.array([node_index[b] for b in v])
    return SimpleNamespace(samples=samples, init_state=init_state, ui=ui, vi=vi, n_cats=n_cats, prog=prog)


def test_potts_example_domain_formation() -> None:
    """The Potts example runs under ``jit(vmap(sample_states))`` and shows domain formation.

    Docs' parameters (100 chains x 100 samples, steps_per_sample=5, n_warmup=0). Checks: one uint8
    array of shape ``[100, 100, 400]`` with values in ``[0, 5)``; with ``n_warmup=0`` the first sample
    is the (uniformly random) initial state, whose equal-neighbour fraction is ~1/5 (here 760 edges x 100
    chains: sd 0.0015, tolerance 0.02). Domain formation: at the last sample, the fraction of equal
    neighbour pairs is ~0.46 in thrml 0.1.4 (chain-mean sd 0.0025); requiring > 0.35 (vs 0.2 for
    independent sites) cannot fail by chance.
    """
    ex = _potts_example(n_batches=100, n_samples=100)
    samples = ex.samples
    assert isinstance(samples, list) and len(samples) == 1
    assert samples[0].shape == (100, 100, 400)
    assert samples[0].dtype == jnp.uint8
    x = np.asarray(samples[0])
    assert x.max() < ex.n_cats
    equal = (x[:, :, ex.ui] == x[:, :, ex.vi]).mean(-1)  # [chains, samples]
    assert abs(equal[:, 0].mean() - 1 / ex.n_cats) < 0.02
    assert equal[:, -1].mean() > 0.35, equal[:, -1].mean()
    # the initial states are what the docs' code draws
    assert [(s.shape, s.dtype) for s in ex.init_state] == [((100, 200), jnp.uint8)] * 2


# =============================================================================================
# Example: All of THRML (Gaussian PGM with custom nodes/factors/sampler)
# =============================================================================================


class ContinuousNode(AbstractNode):
    pass


def generate_grid_graph(
    *side_lengths: int,
) -> tuple[
    tuple[dict, list[ContinuousNode], list[ContinuousNode]], tuple[list[ContinuousNode], list[ContinuousNode]], nx.Graph
]:
    G = nx.grid_graph(dim=side_lengths, periodic=False)

    coord_to_node = {coord: ContinuousNode() for coord in G.nodes}
    nx.relabel_nodes(G, coord_to_node, copy=False)

    for coord, node in coord_to_node.items():
        G.nodes[node]["coords"] = coord

    # an aperiodic grid is always 2-colorable
    bicol = nx.bipartite.color(G)
    color0 = [n for n, c in bicol.items() if c == 0]
    color1 = [n for n, c in bicol.items() if c == 1]

    u, v = map(list, zip(*G.edges()))

    return (bicol, color0, color1), (u, v), G


class LinearInteraction(eqx.Module):
    """An interaction of the form $c_i x_i$."""

    weights: Array


class QuadraticInteraction(eqx.Module):
    """An interaction of the form $d_i x_i^2$."""

    inverse_weights: Array


class QuadraticFactor(AbstractFactor):
    r"""A factor of the form $w \: x^2$"""

    inverse_weights: Array

    def __init__(self, inverse_weights: Array, block: Block):
        super().__init__([block])
        self.inverse_weights = inverse_weights

    def to_interaction_groups(self) -> list[InteractionGroup]:
        interaction = InteractionGroup(
            interaction=QuadraticInteraction(self.inverse_weights),
            head_nodes=self.node_groups[0],
            tail_nodes=[],
        )
        return [interaction]


class LinearFactor(AbstractFactor):
    r"""A factor of the form $w \: x$"""

    weights: Array

    def __init__(self, weights: Array, block: Block):
        super().__init__([block])
        self.weights = weights

    def to_interaction_groups(self) -> list[InteractionGroup]:
        return [
            InteractionGroup(interaction=LinearInteraction(self.weights), head_nodes=self.node_groups[0], tail_nodes=[])
        ]


class CouplingFactor(AbstractFactor):
    weights: Array

    def __init__(self, weights: Array, blocks: tuple[Block, Block]):
        super().__init__(list(blocks))
        self.weights = weights

    def to_interaction_groups(self) -> list[InteractionGroup]:
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
        states: list[list[_State]],
        sampler_state: _SamplerState,
        output_sd: PyTree[jax.ShapeDtypeStruct],
    ) -> tuple[Array, _SamplerState]:
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
                var = var[..., 0]  # there should only ever be one

        return (jnp.sqrt(var) * jax.random.normal(key, output_sd.shape)) + (bias * var), sampler_state

    def init(self) -> _SamplerState:
        return None


def _gaussian_example() -> SimpleNamespace:
    """The docs' 5x5 Gaussian grid set-up (seed 4242): spec, factors, program and exact covariances."""
    colors, edges, g = generate_grid_graph(5, 5)
    all_nodes = colors[1] + colors[2]
    node_map = dict(zip(all_nodes, list(range(len(all_nodes)))))

    seed = 4242
    key = jax.random.key(seed)
    key, subkey = jax.random.split(key, 2)
    cov_inv_diag = jax.random.uniform(subkey, (len(all_nodes),), minval=1, maxval=2)
    key, subkey = jax.random.split(key, 2)
    cov_inv_off_diag = jax.random.uniform(subkey, (len(edges[0]),), minval=-0.25, maxval=0.25)

    def construct_inv_cov(diag: Array, all_edges: tuple[list[ContinuousNode], list[ContinuousNode]], off_diag: Array):
        inv_cov = np.diag(diag)
        for n1, n2, cov in zip(*all_edges, off_diag):
            inv_cov[node_map[n1], node_map[n2]] = cov
            inv_cov[node_map[n2], node_map[n1]] = cov
        return inv_cov

    inv_cov_mat = construct_inv_cov(cov_inv_diag, edges, cov_inv_off_diag)
    key, subkey = jax.random.split(key, 2)
    mean_vec = jax.random.normal(subkey, (len(all_nodes),))
    b_vec = -1 * jnp.einsum("ij, i -> j", inv_cov_mat, mean_vec)

    free_blocks = [Block(colors[1]), Block(colors[2])]
    clamped_blocks = []
    node_shape_dtypes = {ContinuousNode: jax.ShapeDtypeStruct((), jnp.float32)}
    spec = BlockGibbsSpec(free_blocks, clamped_blocks, node_shape_dtypes)

    lin_fac = LinearFactor(b_vec, Block(all_nodes))
    quad_fac = QuadraticFactor(1 / cov_inv_diag, Block(all_nodes))
    pair_quad_fac = CouplingFactor(cov_inv_off_diag, (Block(edges[0]), Block(edges[1])))
    sampler = GaussianSampler()
    prog = FactorSamplingProgram(
        gibbs_spec=spec,
        samplers=[sampler, sampler],
        factors=[lin_fac, quad_fac, pair_quad_fac],
        other_interaction_groups=[],
    )

    groups = []
    for fac in [lin_fac, quad_fac, pair_quad_fac]:
        groups += fac.to_interaction_groups()
    prog_2 = BlockSamplingProgram(gibbs_spec=spec, samplers=[sampler, sampler], interaction_groups=groups)

    second_moments = [(e1, e2) for e1, e2 in zip(*edges)]
    first_moments = [[(x,) for x in y] for y in edges]
    observer = MomentAccumulatorObserver(first_moments + [second_moments])

    cov = np.linalg.inv(inv_cov_mat)
    real_covs = np.array([cov[node_map[e[0]], node_map[e[1]]] for e in zip(*edges)])
    return SimpleNamespace(
        key=key,
        spec=spec,
        prog=prog,
        prog_2=prog_2,
        observer=observer,
        real_covs=real_covs,
        edges=edges,
        all_nodes=all_nodes,
        sampler=sampler,
        factors=[lin_fac, quad_fac, pair_quad_fac],
        inv_cov_mat=inv_cov_mat,
        mean_vec=np.asarray(mean_vec),
        node_map=node_map,
    )


@pytest.fixture(scope="module")
def gaussian_example() -> SimpleNamespace:
    return _gaussian_example()


def _run_gaussian_moments(ex: SimpleNamespace, n_batches: int, n_samples: int) -> tuple[list[Array], np.ndarray]:
    """Run the docs' moment-accumulation code; return per-chain moment sums and the docs' covariances."""
    key = ex.key
    schedule = SamplingSchedule(n_warmup=0, n_samples=n_samples, steps_per_sample=5)
    init_state = []
    for block in ex.spec.free_blocks:
        key, subkey = jax.random.split(key, 2)
        init_state.append(0.1 * jax.random.normal(subkey, (n_batches, len(block.nodes))))
    keys = jax.random.split(key, n_batches)
    init_mem = ex.observer.init()
    per_chain, _ = jax.vmap(lambda k, s: sample_with_observation(k, ex.prog, schedule, s, [], init_mem, ex.observer))(
        keys, init_state
    )
    moments = jax.tree.map(lambda x: jnp.mean(x, axis=0) / schedule.n_samples, per_chain)
    covariances = moments[-1] - (moments[0] * moments[1])
    return per_chain, np.asarray(covariances)


def test_gaussian_factor_program_equals_block_program(gaussian_example: SimpleNamespace) -> None:
    """``FactorSamplingProgram`` is the documented thin wrapper: it equals ``BlockSamplingProgram`` built
    from the factors' interaction groups (same padded interactions, active masks and global slices),
    and the observer's moment spec has the documented shape (2 first-moment types + 1 second-moment type)."""
    ex = gaussian_example
    a, b = ex.prog, ex.prog_2
    for name in (
        "per_block_interactions",
        "per_block_interaction_active",
        "per_block_interaction_global_inds",
        "per_block_interaction_global_slices",
    ):
        la, ta = jax.tree.flatten(getattr(a, name))
        lb, tb = jax.tree.flatten(getattr(b, name))
        assert ta == tb, name
        for x, y in zip(la, lb):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)
    # three factors -> four interaction groups; every node is a head of the linear and the quadratic
    # group, and both colors contain heads of both directed coupling groups
    assert len(a.per_block_interactions) == 2
    assert [len(x) for x in a.per_block_interactions] == [4, 4]
    for block_active in a.per_block_interaction_active:
        assert all(act.shape[0] in (12, 13) for act in block_active)
    n_edges = len(ex.edges[0])
    assert _tree_shapes(ex.observer.init()) == [((n_edges,), jnp.dtype(jnp.float32))] * 3


def test_gaussian_covariances_reduced(gaussian_example: SimpleNamespace) -> None:
    """The Gaussian Gibbs sampler reproduces the exact edge covariances (reduced-size docs run).

    100 chains x 2000 samples (the docs use 1000 x 10000). Two checks:
    (1) t-test of the per-chain covariance estimates against the exact covariance for each of the 40
    edges, family-wise false-failure rate 1e-4 (the per-chain estimator's bias from the docs' x~0
    initial sample, ~m_i m_j / n_samples <= 1.5e-3, is below one standard error ~1.6e-3);
    (2) the docs' error metric ``max|cov - exact| / max(exact)``: the docs assert < 0.01 at 1e7 samples
    per edge; at 2e5 samples the statistical error is sqrt(50) times larger, so the threshold is
    0.01 * sqrt(50) = 0.0707 (about 5 standard errors of the worst edge; thrml 0.1.4 gives ~0.03).
    """
    ex = gaussian_example
    n_batches, n_samples = 100, 2000
    per_chain, covariances = _run_gaussian_moments(ex, n_batches, n_samples)
    assert _tree_shapes(per_chain) == [((n_batches, len(ex.edges[0])), jnp.dtype(jnp.float32))] * 3
    m = [np.asarray(x, np.float64) / n_samples for x in per_chain]
    chain_cov = m[2] - m[0] * m[1]
    assert_not_significant(one_sample_pvalues(chain_cov, ex.real_covs), "Gaussian edge covariances vs exact")
    error = np.max(np.abs(ex.real_covs - covariances)) / np.abs(np.max(ex.real_covs))
    assert error < 0.01 * np.sqrt(1e7 / (n_batches * n_samples)), error


@pytest.mark.slow
def test_gaussian_covariances_full_docs_size(gaussian_example: SimpleNamespace) -> None:
    """The docs' full run (1000 chains x 10000 samples) meets the documented ``error < 0.01``."""
    _, covariances = _run_gaussian_moments(gaussian_example, 1000, 10000)
    real_covs = gaussian_example.real_covs
    error = np.max(np.abs(real_covs - covariances)) / np.abs(np.max(real_covs))
    assert error < 0.01, error


# =============================================================================================
# Example: All of THRML, part 2 (mixed spin/continuous skip-connected grid)
# =============================================================================================


class SpinNode(AbstractNode):  # the docs define their own SpinNode for this example
    pass


def make_random_typed_grid(
    rows: int,
    cols: int,
    seed: int,
    p_cont: float = 0.5,
):
    rng = random.Random(seed)
    grid = [[ContinuousNode() if rng.random() < p_cont else SpinNode() for _ in range(cols)] for _ in range(rows)]
    bicol = {grid[r][c]: ((r + c) & 1) for r in range(rows) for c in range(cols)}
    colors_by_type = {
        0: {SpinNode: [], ContinuousNode: []},
        1: {SpinNode: [], ContinuousNode: []},
    }
    for r in range(rows):
        for c in range(cols):
            n = grid[r][c]
            color = bicol[n]
            colors_by_type[color][type(n)].append(n)
    return grid, colors_by_type


def build_skip_graph_from_grid(
    grid: list[list[AbstractNode]],
    skips: list[int],
):
    rows, cols = len(grid), len(grid[0])
    G = nx.Graph()
    for r in range(rows):
        for c in range(cols):
            n = grid[r][c]
            G.add_node(n, coords=(r, c))
    u_all = []
    v_all = []
    for k in skips:
        for r in range(rows - k):
            r2 = r + k
            for c in range(cols):
                n1 = grid[r][c]
                n2 = grid[r2][c]
                u_all.append(n1)
                v_all.append(n2)
                G.add_edge(n1, n2)
        for r in range(rows):
            for c in range(cols - k):
                c2 = c + k
                n1 = grid[r][c]
                n2 = grid[r][c2]
                u_all.append(n1)
                v_all.append(n2)
                G.add_edge(n1, n2, skip=k)
    return (u_all, v_all), G


class ExtendedSpinGibbsSampler(SpinGibbsConditional):
    def compute_parameters(
        self,
        key: Key,
        interactions: list[PyTree],
        active_flags: list[Array],
        states: list[list[_State]],
        sampler_state: _SamplerState,
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


def _mixed_example() -> SimpleNamespace:
    """The docs' 30x30 skip-grid (skips 1, 3, 5; seed 4242) program and its node lists."""
    seed = 4242
    key = jax.random.key(seed)
    node_shape_dtypes = {ContinuousNode: jax.ShapeDtypeStruct((), jnp.float32)}
    sampler = GaussianSampler()

    grid, coloring = make_random_typed_grid(30, 30, seed)
    edge_lengths = [1, 3, 5]
    edges, graph = build_skip_graph_from_grid(grid, edge_lengths)

    spin_nodes = []
    cont_nodes = []
    for node in graph.nodes:
        if isinstance(node, SpinNode):
            spin_nodes.append(node)
        else:
            cont_nodes.append(node)

    ss_edges = [[], []]
    cc_edges = [[], []]
    sc_edges = [[], []]
    for edge in zip(*edges):
        if isinstance(edge[0], SpinNode) and isinstance(edge[1], SpinNode):
            ss_edges[0].append(edge[0])
            ss_edges[1].append(edge[1])
        elif isinstance(edge[0], ContinuousNode) and isinstance(edge[1], ContinuousNode):
            cc_edges[0].append(edge[0])
            cc_edges[1].append(edge[1])
        elif isinstance(edge[0], SpinNode):
            sc_edges[0].append(edge[0])
            sc_edges[1].append(edge[1])
        else:
            sc_edges[1].append(edge[0])
            sc_edges[0].append(edge[1])

    key, subkey = jax.random.split(key, 2)
    cont_quad = QuadraticFactor(jax.random.uniform(subkey, (len(cont_nodes),), minval=2, maxval=3), Block(cont_nodes))
    key, subkey = jax.random.split(key, 2)
    cont_linear = LinearFactor(jax.random.normal(subkey, (len(cont_nodes),)), Block(cont_nodes))
    key, subkey = jax.random.split(key, 2)
    cont_coupling = CouplingFactor(
        jax.random.uniform(subkey, (len(cc_edges[0]),), minval=-1 / 10, maxval=1 / 10),
        (Block(cc_edges[0]), Block(cc_edges[1])),
    )
    key, subkey = jax.random.split(key, 2)
    spin_con_coupling = CouplingFactor(
        jax.random.normal(subkey, (len(sc_edges[0]),)), (Block(sc_edges[0]), Block(sc_edges[1]))
    )
    key, subkey = jax.random.split(key, 2)
    spin_linear = SpinEBMFactor([Block(spin_nodes)], jax.random.normal(subkey, (len(spin_nodes),)))
    key, subkey = jax.random.split(key, 2)
    spin_coupling = SpinEBMFactor([Block(x) for x in ss_edges], jax.random.normal(subkey, (len(ss_edges[0]),)))

    new_sd = {SpinNode: jax.ShapeDtypeStruct(shape=(), dtype=jnp.bool)}
    blocks = [
        (Block(coloring[0][SpinNode]), Block(coloring[0][ContinuousNode])),
        (Block(coloring[1][SpinNode]), Block(coloring[1][ContinuousNode])),
    ]
    block_spec = BlockGibbsSpec(blocks, [], node_shape_dtypes | new_sd)

    ber_sampler = ExtendedSpinGibbsSampler()
    samplers = []
    for block in block_spec.free_blocks:
        if isinstance(block.nodes[0], SpinNode):
            samplers.append(ber_sampler)
        else:
            samplers.append(sampler)

    factors = [cont_quad, cont_linear, cont_coupling, spin_con_coupling, spin_linear, spin_coupling]
    program = FactorSamplingProgram(block_spec, samplers, factors, [])
    return SimpleNamespace(
        key=key, program=program, block_spec=block_spec, spin_nodes=spin_nodes, cont_nodes=cont_nodes, grid=grid
    )


@pytest.fixture(scope="module")
def mixed_example() -> SimpleNamespace:
    return _mixed_example()


def _run_mixed_sampling(ex: SimpleNamespace, batch_size: int, schedule: SamplingSchedule) -> list[Array]:
    key = ex.key
    init_state = []
    for block in ex.block_spec.free_blocks:
        init_shape = (batch_size, len(block.nodes))
        key, subkey = jax.random.split(key, 2)
        if isinstance(block.nodes[0], ContinuousNode):
            init_state.append(0.1 * jax.random.normal(subkey, init_shape))
        else:
            init_state.append(jax.random.bernoulli(subkey, 0.5, init_shape))
    key, subkey = jax.random.split(key, 2)
    keys = jax.random.split(subkey, batch_size)
    return jax.vmap(
        lambda k, i: sample_states(k, ex.program, schedule, i, [], [Block(ex.spin_nodes), Block(ex.cont_nodes)])
    )(keys, init_state)


def test_mixed_example_padding_matches_docs(mixed_example: SimpleNamespace) -> None:
    """The documented padding output: ``program.per_block_interaction_active[0][0][0]`` is
    ``[True]*5 + [False]*5`` (the first spin node of color 0 has 5 continuous neighbours, the
    block maximum is 10). Also: superblocks give 4 free blocks (spin, cont, spin, cont) in two
    sampling groups, and every active mask is ``[n_block_nodes, k]`` with each row's True entries first."""
    ex = mixed_example
    program = ex.program
    expected = np.array([True] * 5 + [False] * 5)
    got = np.asarray(program.per_block_interaction_active[0][0][0])
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, expected)

    free = ex.block_spec.free_blocks
    assert [type(b.nodes[0]) for b in free] == [SpinNode, ContinuousNode, SpinNode, ContinuousNode]
    assert ex.block_spec.sampling_order == [[0, 1], [2, 3]]
    assert len(free[0]) + len(free[2]) == len(ex.spin_nodes) and len(free[1]) + len(free[3]) == len(ex.cont_nodes)
    for block, actives in zip(free, program.per_block_interaction_active):
        for act in actives:
            act = np.asarray(act)
            assert act.shape[0] == len(block)
            # active entries are packed first in each row, and every column is used by some node
            n_active = act.sum(1)
            np.testing.assert_array_equal(act, np.arange(act.shape[1])[None, :] < n_active[:, None])
            assert n_active.max() == act.shape[1]


def test_mixed_example_sampling_reduced(mixed_example: SimpleNamespace) -> None:
    """Sampling the mixed model with ``vmap(sample_states)`` (reduced: 4 chains, 10 warm-up sweeps,
    20 samples every 3 sweeps) returns ``[bool [4, 20, n_spin], float32 [4, 20, n_cont]]`` with finite
    continuous values, both spin values present and continuous values that moved away from the 0.1-scale
    initialisation (their stationary sd is >= 1/sqrt(3) by the quadratic factor's precision in [2, 3])."""
    ex = mixed_example
    schedule = SamplingSchedule(n_warmup=10, n_samples=20, steps_per_sample=3)
    samples = _run_mixed_sampling(ex, 4, schedule)
    assert _tree_shapes(samples) == [
        ((4, 20, len(ex.spin_nodes)), jnp.dtype(jnp.bool_)),
        ((4, 20, len(ex.cont_nodes)), jnp.dtype(jnp.float32)),
    ]
    spins, cont = np.asarray(samples[0]), np.asarray(samples[1])
    assert np.all(np.isfinite(cont))
    assert 0.05 < spins.mean() < 0.95
    assert cont.std() > 0.3


@pytest.mark.slow
def test_mixed_example_sampling_full_docs_size(mixed_example: SimpleNamespace) -> None:
    """The docs' full sampling run (50 chains, warm-up 100, 300 samples every 15 sweeps) and the PCA
    post-processing: shapes as documented, finite values, a 3-component PCA of the standardised samples."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    ex = mixed_example
    schedule = SamplingSchedule(n_warmup=100, n_samples=300, steps_per_sample=15)
    samples = _run_mixed_sampling(ex, 50, schedule)
    assert samples[0].shape == (50, 300, len(ex.spin_nodes)) and samples[0].dtype == jnp.bool_
    assert samples[1].shape == (50, 300, len(ex.cont_nodes)) and samples[1].dtype == jnp.float32
    all_samples = jnp.concatenate(samples, axis=-1)
    pca = PCA(n_components=3)
    preproc_data = StandardScaler().fit_transform(jnp.reshape(all_samples, (-1, all_samples.shape[-1])))
    transformed_data = pca.fit_transform(preproc_data)
    assert transformed_data.shape == (50 * 300, 3)
    assert np.all(np.isfinite(transformed_data))


# =============================================================================================
# Example: Spin Models (pegasus Ising model, KL gradients, cubic factor)
# =============================================================================================


def _spin_models_example(pegasus_m: int, n_data: int, data_batch_size: int, schedule_args: tuple) -> SimpleNamespace:
    """The docs' spin-models example with a configurable pegasus size / data size / schedule."""
    import dwave_networkx
    import jax
    import jax.numpy as jnp
    import jax.random
    import networkx as nx
    import numpy as np

    from distthrml.block_management import Block
    from distthrml.block_sampling import sample_states, SamplingSchedule
    from distthrml.models.discrete_ebm import SpinEBMFactor
    from distthrml.models.ising import (
        estimate_kl_grad,
        hinton_init,
        IsingEBM,
        IsingSamplingProgram,
        IsingTrainingSpec,
    )
    from distthrml.pgm import SpinNode

    graph = dwave_networkx.pegasus_graph(pegasus_m)
    coord_to_node = {coord: SpinNode() for coord in graph.nodes}
    nx.relabel_nodes(graph, coord_to_node, copy=False)

    nodes = list(graph.nodes)
    edges = list(graph.edges)
    seed = 4242
    key = jax.random.key(seed)
    key, subkey = jax.random.split(key, 2)
    biases = jax.random.normal(subkey, (len(nodes),))
    key, subkey = jax.random.split(key, 2)
    weights = jax.random.normal(subkey, (len(edges),))
    beta = jnp.array(1.0)
    model = IsingEBM(nodes, edges, biases, weights, beta)
    factor_classes = [x.__class__ for x in model.factors]

    np.random.seed(seed)
    data_inds = np.random.choice(len(graph.nodes), n_data, replace=False)
    data_nodes = [nodes[x] for x in data_inds]

    coloring = nx.coloring.greedy_color(graph, strategy="DSATUR")
    n_colors = max(coloring.values()) + 1
    free_coloring = [[] for _ in range(n_colors)]
    for node in graph.nodes:
        free_coloring[coloring[node]].append(node)
    free_blocks = [Block(x) for x in free_coloring]

    graph_copy = graph.copy()
    graph_copy.remove_nodes_from(data_nodes)
    clamped_coloring = [[] for _ in range(n_colors)]
    for node in graph_copy.nodes:
        clamped_coloring[coloring[node]].append(node)
    clamped_blocks = [Block(x) for x in clamped_coloring]

    key, subkey = jax.random.split(key, 2)
    data = jax.random.bernoulli(subkey, 0.5, (data_batch_size, len(data_nodes))).astype(jnp.bool)
    schedule = SamplingSchedule(*schedule_args)
    training_spec = IsingTrainingSpec(model, [Block(data_nodes)], [], clamped_blocks, free_blocks, schedule, schedule)

    n_chains_free = data_batch_size
    n_chains_clamped = 1
    key, subkey = jax.random.split(key, 2)
    init_state_free = hinton_init(subkey, model, free_blocks, (n_chains_free,))
    key, subkey = jax.random.split(key, 2)
    init_state_clamped = hinton_init(subkey, model, clamped_blocks, (n_chains_clamped, data_batch_size))

    key, subkey = jax.random.split(key, 2)
    weight_grads, bias_grads, clamped_moments, free_moments = estimate_kl_grad(
        subkey,
        training_spec,
        nodes,
        edges,
        [data],
        [],
        init_state_clamped,
        init_state_free,
    )

    # the benchmark's call pattern (single device, small batch, short chain)
    timing_program = IsingSamplingProgram(model, free_blocks, [])
    timing_chain_len = 10
    schedule = SamplingSchedule(timing_chain_len, 1, 1)
    call_f = jax.jit(
        jax.vmap(lambda k: sample_states(k, timing_program, schedule, [x[0] for x in init_state_free], [], [Block(nodes)]))
    )
    key, subkey = jax.random.split(key, 2)
    keys = jax.random.split(key, 4)
    timing_out = jax.block_until_ready(call_f(keys))
    timing_out_again = jax.block_until_ready(call_f(keys))

    cubic = SpinEBMFactor([Block(nodes[:10]), Block(nodes[10:20]), Block(nodes[20:30])], jax.random.normal(key, (10,)))
    return SimpleNamespace(**locals())


def _check_spin_models_example(ex: SimpleNamespace) -> None:
    """Assertions shared by the reduced and the full spin-models test (see their docstrings)."""
    from distthrml.models.discrete_ebm import SpinEBMFactor
    from distthrml.pgm import SpinNode

    n_nodes, n_edges, B = len(ex.nodes), len(ex.edges), ex.data_batch_size
    assert ex.factor_classes == [SpinEBMFactor, SpinEBMFactor]
    assert [b.shape for b in ex.init_state_free] == [(B, len(b)) for b in ex.free_blocks]
    assert [b.shape for b in ex.init_state_clamped] == [(1, B, len(b)) for b in ex.clamped_blocks]
    assert all(x.dtype == jnp.bool_ for x in ex.init_state_free + ex.init_state_clamped)

    assert ex.weight_grads.shape == (n_edges,) and ex.bias_grads.shape == (n_nodes,)
    (mb_pos, mw_pos), (mb_neg, mw_neg) = ex.clamped_moments, ex.free_moments
    assert mb_pos.shape == (1, B, n_nodes) and mw_pos.shape == (1, B, n_edges)
    assert mb_neg.shape == (B, n_nodes) and mw_neg.shape == (B, n_edges)
    for m in (mb_pos, mw_pos, mb_neg, mw_neg):
        assert np.all(np.abs(np.asarray(m)) <= 1 + 1e-6)

    # positive phase: data nodes are clamped, so their moments equal the data exactly
    node_index = {n: i for i, n in enumerate(ex.nodes)}
    data_idx = np.array([node_index[n] for n in ex.data_nodes])
    data_spins = 2 * np.asarray(ex.data, np.float64) - 1
    np.testing.assert_array_equal(np.asarray(mb_pos)[0][:, data_idx], data_spins)
    col = {node_index[n]: j for j, n in enumerate(ex.data_nodes)}
    both = [k for k, (a, b) in enumerate(ex.edges) if node_index[a] in col and node_index[b] in col]
    assert len(both) > 0
    expected = np.stack(
        [data_spins[:, col[node_index[ex.edges[k][0]]]] * data_spins[:, col[node_index[ex.edges[k][1]]]] for k in both], 1
    )
    np.testing.assert_array_equal(np.asarray(mw_pos)[0][:, both], expected)

    # the gradients are the documented estimator of the returned moments
    beta = float(ex.beta)
    np.testing.assert_allclose(
        ex.bias_grads, -beta * (np.mean(mb_pos, axis=(0, 1)) - np.mean(mb_neg, axis=0)), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        ex.weight_grads, -beta * (np.mean(mw_pos, axis=(0, 1)) - np.mean(mw_neg, axis=0)), rtol=1e-5, atol=1e-5
    )

    # benchmark call: vmap over keys of a single-chain program, n_samples=1 -> [batch, 1, n_nodes]
    assert ex.timing_out[0].shape == (4, 1, n_nodes) and ex.timing_out[0].dtype == jnp.bool_
    np.testing.assert_array_equal(ex.timing_out[0], ex.timing_out_again[0])

    # the cubic factor of the docs
    cubic = ex.cubic
    assert isinstance(cubic, SpinEBMFactor)
    assert [tuple(b.nodes) for b in cubic.node_groups] == [tuple(ex.nodes[i : i + 10]) for i in (0, 10, 20)]
    assert [tuple(b.nodes) for b in cubic.spin_node_groups] == [tuple(b.nodes) for b in cubic.node_groups]
    assert cubic.categorical_node_groups == []
    assert cubic.is_spin == {SpinNode: True}
    assert cubic.weights.shape == (10,) and cubic.weights.dtype == jnp.float32


def test_spin_models_example_reduced() -> None:
    """The spin-models example on pegasus(4) (264 spins) with 100 data nodes, a data batch of 8 and
    ``SamplingSchedule(5, 20, 5)``; the docs use pegasus(14), 500 data nodes, 50 and (5, 100, 5).

    Checks: ``IsingEBM.factors`` are two ``SpinEBMFactor``s; ``hinton_init`` shapes for free
    ``(n_chains,)`` and clamped ``(1, batch)`` batch shapes; ``estimate_kl_grad`` returns
    ``(weight_grads [E], bias_grads [N], (pos_b [1, B, N], pos_w [1, B, E]), (neg_b [B, N], neg_w [B, E]))``;
    in the positive phase the data nodes' first moments equal the clamped data exactly, and so do the
    second moments of data-data edges; the gradients equal ``-beta * (<.>_+ - <.>_-)`` of the returned
    moments; the benchmark's ``jit(vmap(sample_states))`` call pattern works on CPU; the cubic
    ``SpinEBMFactor`` has the documented attributes.
    """
    ex = _spin_models_example(pegasus_m=4, n_data=100, data_batch_size=8, schedule_args=(5, 20, 5))
    _check_spin_models_example(ex)


@pytest.mark.slow
def test_spin_models_example_full_docs_size() -> None:
    """The spin-models example at the docs' size (pegasus(14), 4264 spins, 500 data nodes, batch 50)."""
    ex = _spin_models_example(pegasus_m=14, n_data=500, data_batch_size=50, schedule_args=(5, 100, 5))
    assert len(ex.nodes) == 4264 and len(ex.edges) == 30404
    _check_spin_models_example(ex)

