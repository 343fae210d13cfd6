"""Samplers checked against exact distributions computed by enumeration.

Every stationary test follows the same recipe:

1. write the model's energy independently in numpy (``exact.DiscreteModel``) and enumerate all
   joint states to get the exact Boltzmann (or conditional) distribution;
2. build the same model through the public ``distthrml`` API and run many independent chains
   with ``jax.vmap(sample_states)``, thinning with ``steps_per_sample``;
3. build the exact block-Gibbs kernel of the *same* block schedule and use it to certify the
   test design (``exact.mixing_report``): the blocks are valid (the Boltzmann distribution is
   stationary for the kernel), the warm-up is long enough that the bias is negligible for all
   chains together, and the thinned chain's L2 contraction gives the variance-inflation factor
   that makes the statistics below conservative in spite of autocorrelation;
4. compare the samples with ``exact.assert_samples_match``: a Pearson chi-square test of the
   full joint histogram plus Bonferroni-corrected z-scores of all one- and two-variable
   marginals, at a combined false-failure rate of ``ALPHA`` = 1e-6 per test.

With N = 8192 chains x 32 samples (8 sweeps apart) = 262144 draws, a marginal probability is
resolved to about 1e-3 (one standard error), so a few-percent error in any bias, coupling or
clamped value is detected; the joint test catches distortions that keep the low-order marginals
intact. The exact thinned-kernel contraction of every model here is <= 0.05 (variance inflation
<= 1.11) and the warm-up bias bound is far below 1e-7 for all chains together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import distthrml
from scipy import stats as sps

from exact import (
    DiscreteModel,
    DiscreteTerm,
    MixingReport,
    assert_independent_sets,
    assert_samples_match,
    boltzmann,
    categorical_term,
    encode_states,
    greedy_coloring,
    matrix_power,
    mixing_report,
    restrict,
    spin_term,
    sweep_kernel,
)

from distthrml import (
    Block,
    BlockGibbsSpec,
    CategoricalNode,
    FactorSamplingProgram,
    SamplingSchedule,
    SpinNode,
    sample_states,
)
from distthrml.models import (
    CategoricalEBMFactor,
    CategoricalGibbsConditional,
    DiscreteEBMFactor,
    FactorizedEBM,
    IsingEBM,
    IsingSamplingProgram,
    SpinEBMFactor,
    SpinGibbsConditional,
    SquareCategoricalEBMFactor,
    estimate_moments,
)

ALPHA = 1e-6  # false-failure rate allowed per statistical test (for a correct sampler)

# A superblock is a list of blocks; a block is a list of variable indices (all of one node type).
SuperBlockSpec = list[list[int]]


@dataclass(frozen=True)
class Design:
    """Chain layout of a stationary test."""

    n_chains: int = 8192
    n_warmup: int = 128
    n_samples: int = 32
    thin: int = 8

    @property
    def schedule(self) -> SamplingSchedule:
        return SamplingSchedule(n_warmup=self.n_warmup, n_samples=self.n_samples, steps_per_sample=self.thin)


# --------------------------------------------------------------------------------------------
# Helpers: model construction
# --------------------------------------------------------------------------------------------


def make_nodes(cards: Sequence[int]) -> list[SpinNode | CategoricalNode]:
    """One node per variable: a SpinNode for cardinality 2, a CategoricalNode otherwise."""
    return [SpinNode() if k == 2 else CategoricalNode() for k in cards]


def block_of(nodes: Sequence, indices: Sequence[int]) -> Block:
    return Block([nodes[i] for i in indices])


def to_free_super_blocks(nodes: Sequence, superblocks: Sequence[SuperBlockSpec]) -> list[Block | tuple[Block, ...]]:
    """Translate index superblocks into distthrml superblocks (a bare Block when alone)."""
    out: list[Block | tuple[Block, ...]] = []
    for sb in superblocks:
        blocks = tuple(block_of(nodes, blk) for blk in sb)
        out.append(blocks[0] if len(blocks) == 1 else blocks)
    return out


def discrete_factor(nodes: Sequence, term: DiscreteTerm) -> DiscreteEBMFactor:
    """The distthrml factor implementing one numpy ``DiscreteTerm``."""
    return DiscreteEBMFactor(
        [block_of(nodes, g) for g in term.spin_vars],
        [block_of(nodes, g) for g in term.cat_vars],
        jnp.asarray(term.weights, dtype=jnp.float32),
    )


def samplers_for(cards: Sequence[int], superblocks: Sequence[SuperBlockSpec]) -> list:
    """One conditional per free block (flattened superblock order), chosen by node type."""
    out = []
    for sb in superblocks:
        for blk in sb:
            k = cards[blk[0]]
            out.append(SpinGibbsConditional() if k == 2 else CategoricalGibbsConditional(k))
    return out


def coloring_superblocks(
    model: DiscreteModel, free_vars: Sequence[int] | None = None, split: bool = False
) -> list[SuperBlockSpec]:
    """Greedy colouring of the model's primal graph; one superblock per colour holding one block
    per node type (``split=True`` additionally halves every block into two blocks)."""
    n = model.n_vars
    free = list(range(n)) if free_vars is None else list(free_vars)
    colors = greedy_coloring(n, model.interaction_cliques())
    out: list[SuperBlockSpec] = []
    for c in sorted({colors[i] for i in free}):
        members = [i for i in free if colors[i] == c]
        sb: SuperBlockSpec = []
        for kind in sorted({model.cards[i] for i in members}):
            blk = [i for i in members if model.cards[i] == kind]
            if split and len(blk) > 1:
                sb += [blk[::2], blk[1::2]]
            else:
                sb.append(blk)
        out.append(sb)
    flat = [blk for sb in out for blk in sb]
    assert_independent_sets(n, model.interaction_cliques(), [sum(sb, []) for sb in out])
    assert sorted(sum(flat, [])) == sorted(free)
    return out


def ising_model(n: int, edges: Sequence[tuple[int, int]], biases: np.ndarray, weights: np.ndarray, beta: float):
    """Numpy Ising model E = -beta (sum b_i s_i + sum J_ij s_i s_j)."""
    u = [e[0] for e in edges]
    v = [e[1] for e in edges]
    b64 = np.asarray(biases, dtype=np.float64)
    w64 = np.asarray(weights, dtype=np.float64)
    return DiscreteModel((2,) * n, [spin_term([range(n)], beta * b64), spin_term([u, v], beta * w64)])


# --------------------------------------------------------------------------------------------
# Helpers: sampling and checking
# --------------------------------------------------------------------------------------------


def random_init(key: jax.Array, cards: Sequence[int], blocks: Sequence[Sequence[int]], n_chains: int) -> list:
    """Uniformly random initial state for every free block, with a leading chain axis."""
    keys = jax.random.split(key, len(blocks))
    init = []
    for k, blk in zip(keys, blocks):
        card = cards[blk[0]]
        if card == 2:
            init.append(jax.random.bernoulli(k, 0.5, (n_chains, len(blk))))
        else:
            init.append(jax.random.randint(k, (n_chains, len(blk)), 0, card, dtype=jnp.int32).astype(jnp.uint8))
    return init


def record_blocks(cards: Sequence[int], nodes: Sequence) -> tuple[list[Block], list[int]]:
    """Blocks (one per node type) covering every variable, and the variable order they produce."""
    spin_vars = [i for i, k in enumerate(cards) if k == 2]
    cat_vars = [i for i, k in enumerate(cards) if k != 2]
    blocks, order = [], []
    for group in (spin_vars, cat_vars):
        if group:
            blocks.append(block_of(nodes, group))
            order += group
    return blocks, order


def run_chains(
    program,
    schedule: SamplingSchedule,
    init_state: list,
    clamp_state: list,
    cards: Sequence[int],
    nodes: Sequence,
    seed: int,
) -> np.ndarray:
    """Run ``n_chains`` independent chains (vmapped ``sample_states``) and return the digits of
    every variable, shape ``[n_chains, n_samples, n_vars]`` in variable order."""
    blocks, order = record_blocks(cards, nodes)
    n_chains = init_state[0].shape[0]
    keys = jax.random.split(jax.random.key(seed), n_chains)

    def one_chain(key, init):
        return sample_states(key, program, schedule, init, clamp_state, blocks)

    recorded = jax.jit(jax.vmap(one_chain))(keys, init_state)
    stacked = np.concatenate([np.asarray(x).astype(np.int64) for x in recorded], axis=-1)
    assert stacked.shape == (n_chains, schedule.n_samples, len(cards))
    digits = np.empty_like(stacked)
    digits[..., order] = stacked
    return digits


def certify_design(
    energies: np.ndarray,
    cards: Sequence[int],
    superblocks: Sequence[Sequence[int]],
    design: Design,
) -> MixingReport:
    """Exact kernel of the block schedule; assert the design assumptions the statistics rely on."""
    pi = boltzmann(energies)
    kernel = sweep_kernel(energies, cards, superblocks)
    report = mixing_report(kernel, pi, design.n_warmup, design.thin)
    # the blocks are valid Gibbs blocks: Boltzmann is stationary for the exact kernel
    assert report.stationarity_error < 1e-9, report
    # all chains together are exactly stationary after warm-up except with probability < 1e-7
    assert design.n_chains * report.warmup_tv < 1e-7, report
    # thinned samples are only mildly correlated; `inflation` accounts for what remains
    assert report.thin_l2 < 0.5, report
    return report


def check_stationary(
    model: DiscreteModel,
    nodes: Sequence,
    superblocks: Sequence[SuperBlockSpec],
    program_factory: Callable[[], object],
    design: Design,
    seed: int,
    label: str,
    clamp: dict[int, int] | None = None,
    clamp_blocks: Sequence[Sequence[int]] = (),
) -> None:
    """Sample ``program_factory()`` and compare the free variables with the exact (conditional)
    Boltzmann distribution of ``model``; clamped variables must never move."""
    clamp = clamp or {}
    energies, free_cards, free_vars = restrict(model.energies(), model.cards, clamp)
    pos = {v: j for j, v in enumerate(free_vars)}
    sb_sites = [[pos[i] for blk in sb for i in blk] for sb in superblocks]
    report = certify_design(energies, free_cards, sb_sites, design)

    flat_blocks = [blk for sb in superblocks for blk in sb]
    init = random_init(jax.random.key(seed + 1), model.cards, flat_blocks, design.n_chains)
    clamp_state = [
        jnp.asarray([clamp[i] for i in blk], dtype=jnp.bool_ if model.cards[blk[0]] == 2 else jnp.uint8)
        for blk in clamp_blocks
    ]
    digits = run_chains(program_factory(), design.schedule, init, clamp_state, model.cards, nodes, seed)

    for var, value in clamp.items():
        assert np.all(digits[..., var] == value), f"clamped variable {var} moved"
    free_digits = digits[..., free_vars].reshape(-1, len(free_vars))
    assert_samples_match(free_digits, free_cards, boltzmann(energies), report.inflation, ALPHA, label)


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

ISING_N = 10
# ring plus three chords; (0, 4) closes an odd cycle, so three colours are needed
ISING_EDGES = [(i, (i + 1) % ISING_N) for i in range(ISING_N)] + [(0, 4), (3, 7), (2, 8)]
ISING_BETA = 0.7


def ising_parameters(seed: int = 1234) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    biases = rng.normal(0.0, 0.5, ISING_N).astype(np.float32)
    weights = rng.normal(0.0, 0.8, len(ISING_EDGES)).astype(np.float32)
    return biases, weights


def ising_setup() -> tuple[DiscreteModel, list, IsingEBM]:
    biases, weights = ising_parameters()
    model = ising_model(ISING_N, ISING_EDGES, biases, weights, ISING_BETA)
    nodes = make_nodes(model.cards)
    ebm = IsingEBM(
        nodes,
        [(nodes[a], nodes[b]) for a, b in ISING_EDGES],
        jnp.asarray(biases),
        jnp.asarray(weights),
        jnp.asarray(ISING_BETA, dtype=jnp.float32),
    )
    return model, nodes, ebm


POTTS_N, POTTS_K = 6, 3
POTTS_EDGES = [(i, (i + 1) % POTTS_N) for i in range(POTTS_N)] + [(0, 2), (3, 5)]


def potts_setup(seed: int = 77) -> tuple[DiscreteModel, DiscreteTerm, DiscreteTerm]:
    """Potts-like model: non-symmetric random pairwise tables plus unary biases."""
    rng = np.random.default_rng(seed)
    pair_w = rng.normal(0.0, 0.7, (len(POTTS_EDGES), POTTS_K, POTTS_K)).astype(np.float32)
    unary_w = rng.normal(0.0, 0.5, (POTTS_N, POTTS_K)).astype(np.float32)
    pair = categorical_term([[e[0] for e in POTTS_EDGES], [e[1] for e in POTTS_EDGES]], pair_w)
    unary = categorical_term([range(POTTS_N)], unary_w)
    return DiscreteModel((POTTS_K,) * POTTS_N, [unary, pair]), unary, pair


MIXED_SPINS = [0, 1, 2, 3, 4]
MIXED_CATS = [5, 6, 7]
MIXED_K = 3


def mixed_setup(seed: int = 2024) -> DiscreteModel:
    """Spins 0-4 and 3-category variables 5-7 with spin-categorical factors of several shapes."""
    rng = np.random.default_rng(seed)

    def w(*shape: int, scale: float = 0.6) -> np.ndarray:
        return rng.normal(0.0, scale, shape).astype(np.float32)

    terms = [
        spin_term([MIXED_SPINS], w(5, scale=0.4)),  # h_i s_i
        categorical_term([MIXED_CATS], w(3, MIXED_K, scale=0.5)),  # b_j[c_j]
        spin_term([[0, 1, 2], [1, 2, 3]], w(3)),  # J s_i s_j
        DiscreteTerm((np.array([0, 1, 2, 3]),), (np.array([5, 6, 7, 5]),), w(4, MIXED_K)),  # s_i W[c_j]
        DiscreteTerm((np.array([0, 2]), np.array([4, 3])), (np.array([6, 7]),), w(2, MIXED_K)),  # s s W[c]
        DiscreteTerm((np.array([4]),), (np.array([5]), np.array([7])), w(1, MIXED_K, MIXED_K)),  # s W[c, c]
        categorical_term([[6], [7]], w(1, MIXED_K, MIXED_K)),  # W[c_6, c_7]
    ]
    return DiscreteModel((2,) * len(MIXED_SPINS) + (MIXED_K,) * len(MIXED_CATS), terms)


CUBIC_N = 8
CUBIC_TRIPLES = [(0, 2, 4), (5, 1, 3), (2, 7, 5), (6, 0, 3)]


def cubic_setup(seed: int = 99) -> DiscreteModel:
    """Spins with unary, ring-pairwise and third-order s_i s_j s_k terms."""
    rng = np.random.default_rng(seed)
    ring = [(i, (i + 1) % CUBIC_N) for i in range(CUBIC_N)]
    terms = [
        spin_term([range(CUBIC_N)], rng.normal(0.0, 0.4, CUBIC_N).astype(np.float32)),
        spin_term([[a for a, _ in ring], [b for _, b in ring]], rng.normal(0.0, 0.5, CUBIC_N).astype(np.float32)),
        spin_term([[t[0] for t in CUBIC_TRIPLES], [t[1] for t in CUBIC_TRIPLES], [t[2] for t in CUBIC_TRIPLES]],
                  rng.normal(0.0, 0.8, len(CUBIC_TRIPLES)).astype(np.float32)),
    ]
    return DiscreteModel((2,) * CUBIC_N, terms)


# --------------------------------------------------------------------------------------------
# 1. Ising model
# --------------------------------------------------------------------------------------------


def test_ising_ebm_program_matches_boltzmann() -> None:
    """IsingEBM + IsingSamplingProgram (beta = 0.7, random biases/couplings on a 3-colourable
    10-spin graph) samples the exact Boltzmann distribution over all 1024 states.

    Threshold: joint Pearson test and Bonferroni marginal z-scores at total level 1e-6, with
    variance inflation from the exact thinned-kernel contraction (see module docstring). Detects
    wrong beta scaling, wrong sign/factor in the conditional, wrong bias or coupling wiring.
    """
    model, nodes, ebm = ising_setup()
    superblocks = coloring_superblocks(model)
    assert len(superblocks) == 3

    def program() -> IsingSamplingProgram:
        return IsingSamplingProgram(ebm, to_free_super_blocks(nodes, superblocks), [])

    check_stationary(model, nodes, superblocks, program, Design(), seed=11, label="ising/IsingSamplingProgram")


def test_spin_factor_program_matches_boltzmann() -> None:
    """The same Ising distribution built from SpinEBMFactors (beta folded into the weights, the
    couplings split over two factor batches) + FactorSamplingProgram + SpinGibbsConditional,
    sweeping the colours in reverse order, samples the exact Boltzmann distribution.

    Same statistics and threshold rationale as the IsingEBM test.
    """
    biases, weights = ising_parameters()
    model = ising_model(ISING_N, ISING_EDGES, biases, weights, ISING_BETA)
    nodes = make_nodes(model.cards)
    superblocks = coloring_superblocks(model)[::-1]
    beta = np.float32(ISING_BETA)
    u = [e[0] for e in ISING_EDGES]
    v = [e[1] for e in ISING_EDGES]
    half = len(ISING_EDGES) // 2
    factors = [
        SpinEBMFactor([block_of(nodes, range(ISING_N))], jnp.asarray(beta * biases)),
        SpinEBMFactor([block_of(nodes, u[:half]), block_of(nodes, v[:half])], jnp.asarray(beta * weights[:half])),
        SpinEBMFactor([block_of(nodes, v[half:]), block_of(nodes, u[half:])], jnp.asarray(beta * weights[half:])),
    ]

    def program() -> FactorSamplingProgram:
        spec = BlockGibbsSpec(to_free_super_blocks(nodes, superblocks), [])
        return FactorSamplingProgram(spec, samplers_for(model.cards, superblocks), factors, [])

    check_stationary(model, nodes, superblocks, program, Design(), seed=12, label="ising/SpinEBMFactor")


def test_ising_estimate_moments_match_exact() -> None:
    """``estimate_moments`` (MomentAccumulatorObserver path) returns per-chain averages of s_i and
    s_i s_j whose mean over chains equals the exact Boltzmann moments.

    z-scores use the exact variances 1 - <x>^2 divided by the total number of draws, times the
    exact inflation bound; Bonferroni over all moments at level 1e-6.
    """
    model, nodes, ebm = ising_setup()
    superblocks = coloring_superblocks(model)
    design = Design()
    sb_sites = [[i for blk in sb for i in blk] for sb in superblocks]
    report = certify_design(model.energies(), model.cards, sb_sites, design)

    program = IsingSamplingProgram(ebm, to_free_super_blocks(nodes, superblocks), [])
    flat_blocks = [blk for sb in superblocks for blk in sb]
    init = random_init(jax.random.key(5), model.cards, flat_blocks, design.n_chains)
    edges = [(nodes[a], nodes[b]) for a, b in ISING_EDGES]
    keys = jax.random.split(jax.random.key(6), design.n_chains)

    def one_chain(key, state):
        return estimate_moments(key, nodes, edges, program, design.schedule, state, [])

    node_m, edge_m = jax.jit(jax.vmap(one_chain))(keys, init)
    est = np.concatenate([np.asarray(node_m).mean(0), np.asarray(edge_m).mean(0)])

    s = 2.0 * model.states() - 1.0
    p = model.probabilities()
    exact = np.concatenate([p @ s, p @ np.stack([s[:, a] * s[:, b] for a, b in ISING_EDGES], 1)])
    n_draws = design.n_chains * design.n_samples
    z = (est - exact) / np.sqrt(report.inflation * (1.0 - exact**2) / n_draws)
    threshold = sps.norm.isf(ALPHA / (2 * len(z)))
    assert np.max(np.abs(z)) < threshold, f"moments off: z={np.round(z, 2)}, threshold={threshold:.2f}"


# --------------------------------------------------------------------------------------------
# 2. Categorical (Potts-like) model
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pair_factor_cls", [CategoricalEBMFactor, SquareCategoricalEBMFactor])
def test_potts_matches_boltzmann(pair_factor_cls: type) -> None:
    """Six 3-category variables with non-symmetric random pairwise tables W_e[x_u, x_v] and unary
    biases b_i[x_i] (CategoricalEBMFactor with one node group), CategoricalGibbsConditional(3):
    the joint over all 729 states is exactly Boltzmann. Because the tables are not symmetric, a
    transposed table for the tail/head orientation is detected; running both the plain and the
    Square factor covers both interaction-group constructions.

    Threshold rationale as in the module docstring (level 1e-6, exact inflation bound).
    """
    model, unary, pair = potts_setup()
    nodes = make_nodes(model.cards)
    superblocks = coloring_superblocks(model)
    assert len(superblocks) == 3
    factors = [
        CategoricalEBMFactor([block_of(nodes, g) for g in unary.cat_vars], jnp.asarray(unary.weights, jnp.float32)),
        pair_factor_cls([block_of(nodes, g) for g in pair.cat_vars], jnp.asarray(pair.weights, jnp.float32)),
    ]

    def program() -> FactorSamplingProgram:
        spec = BlockGibbsSpec(to_free_super_blocks(nodes, superblocks), [])
        return FactorSamplingProgram(spec, samplers_for(model.cards, superblocks), factors, [])

    check_stationary(model, nodes, superblocks, program, Design(), seed=21, label=f"potts/{pair_factor_cls.__name__}")


# --------------------------------------------------------------------------------------------
# 3. Mixed spin + categorical
# --------------------------------------------------------------------------------------------


def test_mixed_spin_categorical_matches_boltzmann() -> None:
    """Five spins and three 3-category variables coupled by DiscreteEBMFactors with spin and
    categorical node groups (s_i W[c_j], s_i s_j W[c_k], s_i W[c_j, c_k]) plus pure unary and
    pairwise terms. Each colour is a superblock (spin block, categorical block) sampled at the
    same algorithmic time with SpinGibbsConditional / CategoricalGibbsConditional. The joint
    over all 864 states is exactly Boltzmann.

    Threshold rationale as in the module docstring.
    """
    model = mixed_setup()
    nodes = make_nodes(model.cards)
    superblocks = coloring_superblocks(model)
    assert any(len(sb) == 2 for sb in superblocks), "some colour must mix node types"
    factors = [discrete_factor(nodes, t) for t in model.terms]

    def program() -> FactorSamplingProgram:
        spec = BlockGibbsSpec(to_free_super_blocks(nodes, superblocks), [])
        return FactorSamplingProgram(spec, samplers_for(model.cards, superblocks), factors, [])

    check_stationary(model, nodes, superblocks, program, Design(), seed=31, label="mixed")


def test_factorized_ebm_energy_matches_enumeration() -> None:
    """FactorizedEBM.energy of the mixed model and IsingEBM.energy of the Ising model equal the
    independent numpy energies on every enumerated state (float32 tolerance)."""
    model = mixed_setup()
    nodes = make_nodes(model.cards)
    ebm = FactorizedEBM([discrete_factor(nodes, t) for t in model.terms])
    states = model.states()
    blocks = [block_of(nodes, MIXED_SPINS), block_of(nodes, MIXED_CATS)]
    spins = jnp.asarray(states[:, MIXED_SPINS].astype(bool))
    cats = jnp.asarray(states[:, MIXED_CATS].astype(np.uint8))
    energy = jax.jit(jax.vmap(lambda s, c: ebm.energy([s, c], blocks)))(spins, cats)
    np.testing.assert_allclose(np.asarray(energy), model.energies(), atol=1e-4)

    ising, inodes, iebm = ising_setup()
    istates = ising.states()
    ienergy = jax.jit(jax.vmap(lambda s: iebm.energy([s], [Block(inodes)])))(jnp.asarray(istates.astype(bool)))
    np.testing.assert_allclose(np.asarray(ienergy), ising.energies(), atol=1e-4)


# --------------------------------------------------------------------------------------------
# 4. Cubic spin factors
# --------------------------------------------------------------------------------------------


def test_cubic_spin_factors_match_boltzmann() -> None:
    """SpinEBMFactor with three node groups (s_i s_j s_k terms, nodes appearing in different group
    positions) plus pairwise and unary SpinEBMFactors; colouring of the hypergraph's primal
    graph. The joint over all 256 states is exactly Boltzmann. A sampler that mishandles the
    product of two tail spins (e.g. uses one of them only) is detected.

    Threshold rationale as in the module docstring.
    """
    model = cubic_setup()
    nodes = make_nodes(model.cards)
    superblocks = coloring_superblocks(model)
    factors = [
        SpinEBMFactor([block_of(nodes, g) for g in t.spin_vars], jnp.asarray(t.weights, jnp.float32))
        for t in model.terms
    ]

    def program() -> FactorSamplingProgram:
        spec = BlockGibbsSpec(to_free_super_blocks(nodes, superblocks), [])
        return FactorSamplingProgram(spec, samplers_for(model.cards, superblocks), factors, [])

    check_stationary(model, nodes, superblocks, program, Design(), seed=41, label="cubic")


@pytest.mark.parametrize("k", [3, 5])
def test_three_way_categorical_factors_match_boltzmann(k: int) -> None:
    """Four k-category variables with unary tables and two three-way tables W[c_a, c_b, c_c]
    (nodes in different group positions). The categorical kernel picks a head's weights by selects
    over the k^2 tail combinations up to `SELECT_COMBINATIONS` (k = 3: 9) and by a gather above it
    (k = 5: 25); the joint over all k^4 states is exactly Boltzmann either way. A transposed or
    misindexed table is detected.

    Threshold rationale as in the module docstring.
    """
    from distthrml.models.discrete_ebm import SELECT_COMBINATIONS

    assert (k * k > SELECT_COMBINATIONS) == (k == 5)
    rng = np.random.default_rng(300 + k)
    triples = [(0, 1, 2), (3, 2, 1)]
    unary = categorical_term([range(4)], rng.normal(0.0, 0.5, (4, k)).astype(np.float32))
    triple = categorical_term(
        [[t[0] for t in triples], [t[1] for t in triples], [t[2] for t in triples]],
        rng.normal(0.0, 0.7, (len(triples), k, k, k)).astype(np.float32),
    )
    model = DiscreteModel((k,) * 4, [unary, triple])
    nodes = make_nodes(model.cards)
    superblocks = coloring_superblocks(model)
    factors = [
        CategoricalEBMFactor([block_of(nodes, g) for g in t.cat_vars], jnp.asarray(t.weights, jnp.float32))
        for t in model.terms
    ]

    def program() -> FactorSamplingProgram:
        spec = BlockGibbsSpec(to_free_super_blocks(nodes, superblocks), [])
        return FactorSamplingProgram(spec, samplers_for(model.cards, superblocks), factors, [])

    check_stationary(model, nodes, superblocks, program, Design(), seed=60 + k, label=f"three-way/{k}")


# --------------------------------------------------------------------------------------------
# 5. Clamped blocks
# --------------------------------------------------------------------------------------------


def test_clamped_ising_matches_conditional() -> None:
    """IsingSamplingProgram with three spins clamped (values +1, -1, +1): the free spins follow the
    exact conditional Boltzmann distribution and the clamped spins never change. A sampler that
    ignores clamped neighbours, or reads a wrong clamped value, shifts the conditional by the
    clamped couplings and fails.

    Threshold rationale as in the module docstring (exact conditional on 128 free states).
    """
    model, nodes, ebm = ising_setup()
    clamp = {1: 1, 6: 0, 9: 1}
    clamp_blocks = [[1, 6, 9]]
    free = [i for i in range(ISING_N) if i not in clamp]
    superblocks = coloring_superblocks(model, free)

    def program() -> IsingSamplingProgram:
        return IsingSamplingProgram(
            ebm, to_free_super_blocks(nodes, superblocks), [block_of(nodes, b) for b in clamp_blocks]
        )

    check_stationary(
        model, nodes, superblocks, program, Design(), seed=51, label="ising/clamped", clamp=clamp,
        clamp_blocks=clamp_blocks,
    )


def test_clamped_mixed_matches_conditional() -> None:
    """Mixed spin/categorical model with one spin and one categorical variable clamped (two
    clamped blocks of different node types) and mixed-type free superblocks: the free variables
    follow the exact conditional distribution and the clamped ones never change.

    Threshold rationale as in the module docstring.
    """
    model = mixed_setup()
    nodes = make_nodes(model.cards)
    clamp = {3: 1, 6: 2}
    clamp_blocks = [[6], [3]]
    free = [i for i in range(model.n_vars) if i not in clamp]
    superblocks = coloring_superblocks(model, free)
    assert any(len(sb) == 2 for sb in superblocks), "some colour must mix node types"
    factors = [discrete_factor(nodes, t) for t in model.terms]

    def program() -> FactorSamplingProgram:
        spec = BlockGibbsSpec(to_free_super_blocks(nodes, superblocks), [block_of(nodes, b) for b in clamp_blocks])
        return FactorSamplingProgram(spec, samplers_for(model.cards, superblocks), factors, [])

    check_stationary(
        model, nodes, superblocks, program, Design(), seed=52, label="mixed/clamped", clamp=clamp,
        clamp_blocks=clamp_blocks,
    )


# --------------------------------------------------------------------------------------------
# 6. Superblocks of a single node type
# --------------------------------------------------------------------------------------------


def test_single_type_superblocks_match_boltzmann() -> None:
    """IsingSamplingProgram where every colour is split into two blocks given together as a tuple
    superblock. Both blocks of each superblock must be updated (a dropped or frozen block
    breaks ergodicity and the distribution) and the result is the exact Boltzmann distribution.

    Threshold rationale as in the module docstring.
    """
    model, nodes, ebm = ising_setup()
    superblocks = coloring_superblocks(model, split=True)
    assert all(len(sb) == 2 for sb in superblocks)

    def program() -> IsingSamplingProgram:
        return IsingSamplingProgram(ebm, to_free_super_blocks(nodes, superblocks), [])

    check_stationary(model, nodes, superblocks, program, Design(), seed=61, label="ising/superblocks")


def check_transitions(
    model: DiscreteModel,
    nodes: Sequence,
    program,
    superblocks: Sequence[SuperBlockSpec],
    x0: np.ndarray,
    n_chains: int,
    seed: int,
    label: str,
) -> None:
    """All chains start at ``x0``; the states after one and two sweeps must be i.i.d. draws from
    rows ``x0`` of the exact kernels K and K^2 of the superblock schedule (level ALPHA overall)."""
    sb_sites = [[i for blk in sb for i in blk] for sb in superblocks]
    kernel = sweep_kernel(model.energies(), model.cards, sb_sites)
    init = [
        jnp.broadcast_to(jnp.asarray(x0[blk].astype(bool)), (n_chains, len(blk))) for sb in superblocks for blk in sb
    ]
    schedule = SamplingSchedule(n_warmup=0, n_samples=3, steps_per_sample=1)
    digits = run_chains(program, schedule, init, [], model.cards, nodes, seed)

    assert np.all(digits[:, 0, :] == x0), "the first recorded sample must be the initial state"
    x0_index = int(encode_states(x0[None, :], model.cards)[0])
    for sweeps in (1, 2):
        expected = matrix_power(kernel, sweeps)[x0_index]
        assert_samples_match(digits[:, sweeps, :], model.cards, expected, 1.0, ALPHA / 2, f"{label}, {sweeps} sweep(s)")


def test_sweep_transition_kernel_is_exact() -> None:
    """One sweep is exactly one visit of every superblock, in the given order.

    The 10-spin Ising model with colour superblocks (each colour split in two blocks): all
    chains start from the same state x0, so the states after one and two sweeps are i.i.d. draws
    from K[x0, :] and K^2[x0, :], K being the exact kernel of the schedule. Plain multinomial
    tests (no autocorrelation), level 1e-6 in total. Unlike the stationary tests, this detects a
    wrong superblock order (the reversed order moves ~80 % of the one-sweep probability mass), a block updated
    twice or skipped in a sweep, and an off-by-one in warm-up / ``steps_per_sample`` counting.
    """
    model, nodes, ebm = ising_setup()
    superblocks = coloring_superblocks(model, split=True)
    program = IsingSamplingProgram(ebm, to_free_super_blocks(nodes, superblocks), [])
    x0 = np.array([1, 0, 0, 1, 1, 0, 1, 0, 1, 1])
    check_transitions(model, nodes, program, superblocks, x0, 65536, seed=71, label="colour superblocks")


def test_interacting_superblock_reads_old_state() -> None:
    """THRML superblock semantics when blocks of one superblock interact.

    THRML documents that the blocks of a superblock "are sampled at the same time
    algorithmically": every block reads the same state, i.e. the state before the superblock
    step. THRML does not require the blocks to be non-interacting. Six spins on a ring with
    superblocks ((0, 2, 4), (1,)) then ((3,), (5,)): spin 1 interacts with spins 0 and 2 of its
    own superblock, so it must read their *old* values. Updating the blocks one after the other
    gives a different kernel (~30 % of the one-sweep mass moves), which this test detects via the
    exact one- and two-sweep transition probabilities (level 1e-6 in total).
    """
    n = 6
    rng = np.random.default_rng(5)
    ring = [(i, (i + 1) % n) for i in range(n)]
    biases = rng.normal(0.0, 0.3, n).astype(np.float32)
    weights = (np.sign(rng.normal(size=n)) * rng.uniform(0.8, 1.2, n)).astype(np.float32)
    beta = 1.0
    model = ising_model(n, ring, biases, weights, beta)
    nodes = make_nodes(model.cards)
    superblocks: list[SuperBlockSpec] = [[[0, 2, 4], [1]], [[3], [5]]]
    ebm = IsingEBM(
        nodes,
        [(nodes[a], nodes[b]) for a, b in ring],
        jnp.asarray(biases),
        jnp.asarray(weights),
        jnp.asarray(beta, dtype=jnp.float32),
    )
    free = to_free_super_blocks(nodes, superblocks)
    # distthrml refuses such a program by default (it is not Gibbs sampling of the model) and
    # samples it with THRML's semantics only when asked to
    with pytest.raises(distthrml.ProgramError, match="superblock 0"):
        IsingSamplingProgram(ebm, free, [])
    program = IsingSamplingProgram(ebm, free, [], allow_simultaneous_reads=True)
    x0 = np.array([1, 1, 0, 1, 0, 0])
    check_transitions(model, nodes, program, superblocks, x0, 40000, seed=72, label="interacting superblock")


def test_moment_sums_do_not_overflow_with_many_samples():
    """int8 spins summed over more than 127 observations (THRML's sums wrap around here)."""
    import distthrml as dt
    from distthrml.models import IsingEBM, IsingSamplingProgram, estimate_moments

    nodes = dt.make_block(dt.SpinNode, 2)
    model = IsingEBM(nodes, (nodes[:1], nodes[1:]), jnp.array([5.0, 5.0]), jnp.array([1.0]), jnp.array(1.0))
    program = IsingSamplingProgram(model, [nodes[:1], nodes[1:]], [])
    init = [jnp.ones(1, bool), jnp.ones(1, bool)]
    node_m, edge_m = estimate_moments(jax.random.key(0), nodes, (nodes[:1], nodes[1:]), program, dt.SamplingSchedule(0, 300, 1), init, [])
    np.testing.assert_allclose(np.asarray(node_m), [1.0, 1.0], atol=1e-3)
    np.testing.assert_allclose(np.asarray(edge_m), [1.0], atol=1e-3)
