"""The multispin stream (`distthrml.multispin`): 32 chains per word, bitwise updates.

Exact distributions by enumeration (as in `test_exact_distributions.py`), bit identity with the
reference bit-packed kernel of `benchmarks/` and between sharded and unsharded runs, Onsager's
energy unsharded and 8-way sharded, the stream's lanes, and the programs it refuses."""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest
from scipy import stats

import distthrml as dt
from cluster.physics import onsager_energy_per_spin
from distthrml import multispin
from distthrml.engine import chain
from distthrml.errors import ProgramError
from distthrml.models import (
    CategoricalEBMFactor,
    CategoricalGibbsConditional,
    IsingEBM,
    IsingSamplingProgram,
    SpinEBMFactor,
    hinton_init,
)
from partition.generators import checkerboard_colors, torus_edges

from exact import DiscreteModel, spin_term
from test_exact_distributions import (
    ISING_EDGES,
    ISING_N,
    Design,
    block_of,
    check_stationary,
    coloring_superblocks,
    ising_model,
    make_nodes,
    samplers_for,
    to_free_super_blocks,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _reference_kernel():
    spec = importlib.util.spec_from_file_location("reference_kernel", ROOT / "benchmarks" / "reference_kernel.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pm_ising(seed: int = 5):
    """The 10-spin test graph with +-J couplings of one magnitude and random biases."""
    rng = np.random.default_rng(seed)
    biases = rng.normal(0.0, 0.5, ISING_N).astype(np.float32)
    weights = (0.8 * rng.choice([-1.0, 1.0], len(ISING_EDGES))).astype(np.float32)
    return biases, weights


def test_pm_j_ising_matches_boltzmann():
    """+-J couplings and random biases (per-node thresholds, 3 colours, degrees 2 to 3) at
    beta = 0.7: the joint over all 1024 states is exactly Boltzmann. Threshold rationale as in
    `test_exact_distributions.py` (level 1e-6, exact variance inflation)."""
    biases, weights = _pm_ising()
    model = ising_model(ISING_N, ISING_EDGES, biases, weights, 0.7)
    nodes = make_nodes(model.cards)
    superblocks = coloring_superblocks(model)
    ebm = IsingEBM(nodes, [(nodes[a], nodes[b]) for a, b in ISING_EDGES], jnp.asarray(biases), jnp.asarray(weights), jnp.array(0.7))

    def program():
        out = IsingSamplingProgram(ebm, to_free_super_blocks(nodes, superblocks), [], rng="multispin")
        assert all(t.uniform is None for t in out.per_block_multispin)
        return out

    check_stationary(model, nodes, superblocks, program, Design(), seed=71, label="multispin/+-J")


def test_clamped_uniform_field_matches_conditional():
    """Uniform coupling and field (thresholds specialised at trace time) with three clamped spins:
    the free spins follow the exact conditional distribution, the clamped ones never move."""
    biases = np.full(ISING_N, 0.3, np.float32)
    weights = np.full(len(ISING_EDGES), 0.6, np.float32)
    model = ising_model(ISING_N, ISING_EDGES, biases, weights, 0.9)
    nodes = make_nodes(model.cards)
    clamp = {1: 1, 6: 0, 9: 1}
    free = [i for i in range(ISING_N) if i not in clamp]
    superblocks = coloring_superblocks(model, free)
    ebm = IsingEBM(nodes, [(nodes[a], nodes[b]) for a, b in ISING_EDGES], jnp.asarray(biases), jnp.asarray(weights), jnp.array(0.9))

    def program():
        return IsingSamplingProgram(ebm, to_free_super_blocks(nodes, superblocks), [block_of(nodes, [1, 6, 9])], rng="multispin")

    check_stationary(
        model, nodes, superblocks, program, Design(), seed=72, label="multispin/clamped", clamp=clamp, clamp_blocks=[[1, 6, 9]]
    )


def test_three_spin_terms_match_boltzmann():
    """Pairwise and third-order terms s_i s_j s_k of one magnitude per node (signs random): the
    agreement of a term is the parity of its tail spins, checked against enumeration."""
    rng = np.random.default_rng(9)
    n = 8
    ring = [(i, (i + 1) % n) for i in range(n)]
    triples = [(0, 2, 4), (5, 1, 3), (2, 7, 5), (6, 0, 3)]
    terms = [
        spin_term([range(n)], rng.normal(0.0, 0.4, n).astype(np.float32)),
        spin_term([[a for a, _ in ring], [b for _, b in ring]], (0.5 * rng.choice([-1.0, 1.0], n)).astype(np.float32)),
        spin_term([[t[i] for t in triples] for i in range(3)], (0.5 * rng.choice([-1.0, 1.0], len(triples))).astype(np.float32)),
    ]
    model = DiscreteModel((2,) * n, terms)
    nodes = make_nodes(model.cards)
    superblocks = coloring_superblocks(model)
    factors = [SpinEBMFactor([block_of(nodes, g) for g in t.spin_vars], jnp.asarray(t.weights, jnp.float32)) for t in terms]

    def program():
        spec = dt.BlockGibbsSpec(to_free_super_blocks(nodes, superblocks), [])
        return dt.FactorSamplingProgram(spec, samplers_for(model.cards, superblocks), factors, [], rng="multispin")

    check_stationary(model, nodes, superblocks, program, Design(), seed=73, label="multispin/cubic")


def _torus_program(side: int, beta: float, rng: str = "multispin"):
    """The program `benchmarks/single_device.py` builds for a uniform torus (node objects)."""
    n = side * side
    edges = torus_edges(side, side)
    nodes = [dt.SpinNode() for _ in range(n)]
    model = IsingEBM(nodes, [(nodes[a], nodes[b]) for a, b in edges.tolist()], jnp.zeros(n), jnp.ones(len(edges)), jnp.array(beta, jnp.float32))
    colors = checkerboard_colors(side, side)
    blocks = [dt.Block([nodes[i] for i in np.flatnonzero(colors == c)]) for c in (0, 1)]
    return IsingSamplingProgram(model, blocks, [], rng=rng), blocks, dt.Block(nodes), colors


def test_reference_kernel_samples_what_the_engine_samples(monkeypatch):
    """The hand-written bit-packed kernel of `benchmarks/reference_kernel.py` and the engine's
    multispin path (THRML API, `jax.vmap(sample_states)`), same keys and start: the same spins
    after every number of sweeps tried, 48 chains (a last word half used). 70 sweeps run a whole
    chunk of the engine's key derivation and a part of one (`chain.KEY_CHUNK`), and the
    reference run through `scan_sweeps` with chunks of 4 must not change its samples either."""
    rk = _reference_kernel()
    side, chains, beta = 16, 48, 0.3
    program, _, all_nodes, colors = _torus_program(side, beta)
    start = jax.random.bernoulli(jax.random.key(5), 0.5, (chains, side * side))
    init = [start[:, np.flatnonzero(colors == c)] for c in (0, 1)]
    keys = jax.random.split(jax.random.key(1), chains)
    a, b = rk.to_sublattices(start, side)
    assert chain.KEY_CHUNK < 70
    for sweeps in (1, 6, 70):
        schedule = dt.SamplingSchedule(sweeps, 1, 1)
        (engine,) = jax.jit(jax.vmap(lambda k, s: dt.sample_states(k, program, schedule, s, [], [all_nodes])))(keys, init)
        for key_chunks in (False, True):
            with monkeypatch.context() as patch:
                patch.setattr(chain, "KEY_CHUNK", 4)
                run = rk.make_kernel(side, chains, beta, key_chunks)
                reference = rk.from_sublattices(*jax.jit(lambda a, b: run(keys, a, b, 0, sweeps))(a, b), side, chains)
            np.testing.assert_array_equal(np.asarray(reference), np.asarray(engine[:, 0]))


def _pm_graph(n: int = 96, seed: int = 0):
    """A random 3-regular graph, +-J couplings, random biases, greedy colours."""
    g = nx.random_regular_graph(3, n, seed=seed)
    edges = np.array(list(g.edges()))
    coloring = nx.coloring.greedy_color(g, "largest_first")
    colors = np.array([coloring[i] for i in range(n)])
    nodes = dt.make_block(dt.SpinNode, n)
    rng = np.random.default_rng(seed)
    model = IsingEBM(
        nodes, (nodes[edges[:, 0]], nodes[edges[:, 1]]), jnp.asarray(rng.normal(size=n), jnp.float32),
        jnp.asarray(rng.choice([-0.6, 0.6], len(edges)), jnp.float32), jnp.array(0.8),
    )
    blocks = [nodes[np.flatnonzero(colors == c)] for c in range(colors.max() + 1)]
    return IsingSamplingProgram(model, blocks, [], rng="multispin"), model, blocks, nodes


@pytest.mark.parametrize(
    "n_parts, exchange",
    # the 8-way Onsager test below runs the all_to_all exchange in the default set
    [(2, "ppermute"), pytest.param(3, "auto", marks=pytest.mark.slow), pytest.param(8, "all_to_all", marks=pytest.mark.slow)],
)
def test_sharded_bit_identical_to_unsharded(n_parts, exchange):
    """The exchange carries packed words: 40 chains (one full and one partial word) sharded 2, 3
    and 8 ways sample bit for bit what `jax.vmap` of the unsharded program samples."""
    program, model, blocks, nodes = _pm_graph()
    chains = 40
    schedule = dt.SamplingSchedule(3, 4, 2)
    init = hinton_init(jax.random.key(3), model, blocks, (chains,))
    keys = jax.random.split(jax.random.key(4), chains)
    reference = jax.jit(jax.vmap(lambda k, i: dt.sample_states(k, program, schedule, i, [], [nodes])))(keys, init)
    sharded = dt.shard_program(program, n_parts, exchange=exchange)
    out = dt.sample_states(keys, sharded, schedule, init, [], [nodes])
    np.testing.assert_array_equal(np.asarray(out[0]), np.asarray(reference[0]))
    assert 0.2 < float(np.asarray(out[0]).mean()) < 0.8


@pytest.mark.parametrize("n_parts", [1, 8])
def test_onsager_energy_unsharded_and_eight_way(n_parts):
    """Onsager's energy per spin of the 2D Ising model at beta = 0.3 through the multispin path,
    64 chains on a 64 x 64 torus (finite-size corrections below 1e-17 at this beta, see
    `test_onsager.py`): within 5.4 standard errors of the per-chain means (t quantile at 1e-6)
    plus 1e-4. A 3% error in the effective coupling is tens of standard errors."""
    side, beta, chains = 64, 0.3, 64
    edges, colors = torus_edges(side, side), checkerboard_colors(side, side)
    nodes = dt.make_block(dt.SpinNode, side * side)
    model = IsingEBM(nodes, (nodes[edges[:, 0]], nodes[edges[:, 1]]), jnp.zeros(side * side), jnp.ones(len(edges)), jnp.array(beta))
    blocks = [nodes[np.flatnonzero(colors == c)] for c in (0, 1)]
    program = IsingSamplingProgram(model, blocks, [], rng="multispin")
    schedule = dt.SamplingSchedule(256, 50, 5)
    init = hinton_init(jax.random.key(0), model, blocks, (chains,))
    keys = jax.random.split(jax.random.key(1), chains)
    if n_parts == 1:
        (out,) = jax.jit(jax.vmap(lambda k, i: dt.sample_states(k, program, schedule, i, [], [nodes])))(keys, init)
    else:
        sharded = dt.shard_program(program, n_parts)
        assert "all_to_all" in sharded.exchange  # packed words through one collective per block
        (out,) = dt.sample_states(keys, sharded, schedule, init, [], [nodes])
    s = np.where(np.asarray(out), 1.0, -1.0)
    per_chain = -(s[..., edges[:, 0]] * s[..., edges[:, 1]]).sum(-1).mean(-1) / (side * side)
    err = per_chain.std(ddof=1) / np.sqrt(chains)
    tolerance = stats.t.isf(0.5e-6, chains - 1) * err + 1e-4
    assert 0 < err < 2e-3
    assert abs(per_chain.mean() - onsager_energy_per_spin(beta)) < tolerance


def test_lanes_are_independent_bernoullis():
    """Uncoupled spins with a bias: every lane of a 64-chain batch (two words) is +1 with
    probability T / 2^24 and uncorrelated with every other lane and node, over 400 sweeps."""
    n, chains, sweeps = 16, 64, 400
    nodes = dt.make_block(dt.SpinNode, n)
    model = IsingEBM(nodes, (dt.Block([]), dt.Block([])), jnp.full(n, 0.4, jnp.float32), jnp.zeros(0), jnp.array(1.0))
    program = IsingSamplingProgram(model, [nodes], [], rng="multispin")
    p = program.per_block_multispin[0].uniform[0] / 2.0**24
    init = [jnp.zeros((chains, n), bool)]
    keys = jax.random.split(jax.random.key(8), chains)
    (out,) = jax.jit(jax.vmap(lambda k, i: dt.sample_states(k, program, dt.SamplingSchedule(1, sweeps, 1), i, [], [nodes])))(keys, init)
    x = np.asarray(out, np.float64).transpose(1, 0, 2).reshape(sweeps, chains * n)  # [sweeps, lanes x nodes]
    draws = x.size
    z = (x.mean() - p) / np.sqrt(p * (1 - p) / draws)
    assert abs(z) < 5
    corr = np.corrcoef(x.T)
    off = corr[~np.eye(len(corr), dtype=bool)]
    # 1024 series of 400 draws: |r| has sd 0.05; the largest of ~5e5 pairs stays below 0.3
    assert np.abs(off).max() < 0.3 and abs(off.mean()) < 0.002


def test_programs_it_cannot_sample_are_refused():
    side = 4
    edges = torus_edges(side, side)
    nodes = dt.make_block(dt.SpinNode, side * side)
    blocks = [nodes[np.flatnonzero(checkerboard_colors(side, side) == c)] for c in (0, 1)]
    weights = np.ones(len(edges), np.float32)
    weights[3] = 0.5
    model = IsingEBM(nodes, (nodes[edges[:, 0]], nodes[edges[:, 1]]), jnp.zeros(side * side), jnp.asarray(weights), jnp.array(1.0))
    with pytest.raises(ProgramError, match="free block .*different magnitudes"):
        IsingSamplingProgram(model, blocks, [], rng="multispin")
    ok = IsingSamplingProgram(model, blocks, [])
    with pytest.raises(ProgramError, match="different magnitudes"):
        ok.with_rng("multispin")
    cats = dt.make_block(dt.CategoricalNode, 4)
    factor = CategoricalEBMFactor([cats[np.arange(2)], cats[np.arange(2, 4)]], jnp.ones((2, 3, 3)))
    spec = dt.BlockGibbsSpec([cats[np.arange(2)], cats[np.arange(2, 4)]], [])
    with pytest.raises(ProgramError, match="spin programs only"):
        dt.FactorSamplingProgram(spec, [CategoricalGibbsConditional(3)] * 2, [factor], [], rng="multispin")
    good = IsingEBM(nodes, (nodes[edges[:, 0]], nodes[edges[:, 1]]), jnp.zeros(side * side), jnp.ones(len(edges)), jnp.array(1.0))
    with pytest.raises(ProgramError, match="concrete"):
        jax.jit(lambda beta: IsingSamplingProgram(
            IsingEBM(nodes, good.edges, jnp.zeros(side * side), jnp.ones(len(edges)), beta), blocks, [], rng="multispin"
        ).rng)(jnp.array(1.0))


def test_one_chain_and_single_sweeps():
    """An unbatched call is a batch of one; `sample_blocks` sweeps one chain; `pack`/`unpack`
    invert each other for any chain count."""
    program, _, all_nodes, colors = _torus_program(8, 0.4)
    init = [jnp.zeros(int((colors == c).sum()), bool) for c in (0, 1)]
    schedule = dt.SamplingSchedule(4, 3, 2)
    key = jax.random.key(0)
    one = dt.sample_states(key, program, schedule, init, [], [all_nodes])[0]
    batch = jax.vmap(lambda k, s: dt.sample_states(k, program, schedule, s, [], [all_nodes]))(key[None], [x[None] for x in init])[0]
    np.testing.assert_array_equal(np.asarray(one), np.asarray(batch[0]))
    states, _ = dt.sample_blocks(key, init, [], program, [None, None])
    assert [s.shape for s in states] == [x.shape for x in init]
    for chains in (1, 31, 32, 33, 70):
        x = jax.random.bernoulli(jax.random.key(chains), 0.5, (chains, 13))
        np.testing.assert_array_equal(np.asarray(multispin.unpack(multispin.pack(x), chains)), np.asarray(x))


def test_no_warm_up_observes_the_start_then_sweeps():
    """Without warm-up the first sample is the start itself (observed without a pack and an
    unpack), and the next ones are what a warm-up of as many sweeps gives."""
    side, chains = 8, 40
    program, _, all_nodes, colors = _torus_program(side, 0.4)
    start = jax.random.bernoulli(jax.random.key(3), 0.5, (chains, side * side))
    init = [start[:, np.flatnonzero(colors == c)] for c in (0, 1)]
    keys = jax.random.split(jax.random.key(4), chains)

    def run(schedule):
        return jax.jit(jax.vmap(lambda k, s: dt.sample_states(k, program, schedule, s, [], [all_nodes])))(keys, init)[0]

    samples = run(dt.SamplingSchedule(0, 3, 2))
    np.testing.assert_array_equal(np.asarray(samples[:, 0]), np.asarray(start))
    np.testing.assert_array_equal(np.asarray(samples[:, 2]), np.asarray(run(dt.SamplingSchedule(4, 1, 1))[:, 0]))
    assert not np.array_equal(np.asarray(samples[:, 1]), np.asarray(start))
