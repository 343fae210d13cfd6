"""The batched (chains-innermost) kernel samples bit for bit what the per-chain path samples."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import distthrml as dt
from distthrml.engine import UNROLL_SLOTS, chain, chains_ready, program_plan
from distthrml.models import (
    CategoricalEBMFactor,
    CategoricalGibbsConditional,
    IsingEBM,
    IsingSamplingProgram,
    SpinGibbsConditional,
    hinton_init,
)
from distthrml.models.discrete_ebm import SELECT_COMBINATIONS
from partition.generators import checkerboard_colors, grid_edges

from test_sharded import CHAINS, SCHEDULE, _ising, _mixed, _potts


def _star():
    """A hub with more neighbours than UNROLL_SLOTS: the field's slot loop runs as a fori_loop."""
    leaves = UNROLL_SLOTS + 8
    nodes = dt.make_block(dt.SpinNode, leaves + 1)
    hub, rest = nodes[np.arange(1)], nodes[np.arange(1, leaves + 1)]
    rng = np.random.default_rng(4)
    model = IsingEBM(
        nodes, (hub[np.zeros(leaves, int)], rest), jnp.asarray(rng.normal(size=leaves + 1), jnp.float32),
        jnp.asarray(rng.normal(size=leaves) * 0.3, jnp.float32), jnp.array(1.0),
    )
    blocks = [hub, rest]
    return IsingSamplingProgram(model, blocks, []), hinton_init(jax.random.key(0), model, blocks, (CHAINS,)), [], [nodes]


class _CustomSpin(SpinGibbsConditional):
    """A subclass overriding compute_parameters: the engine must fall back to vmap of sample_per_node."""

    def compute_parameters(self, key, interactions, active_flags, states, sampler_state, output_sd):
        gamma, sampler_state = super().compute_parameters(key, interactions, active_flags, states, sampler_state, output_sd)
        return gamma * 0.5, sampler_state


def _custom():
    side = 6
    edges, colors = grid_edges(side, side), checkerboard_colors(side, side)
    nodes = dt.make_block(dt.SpinNode, side * side)
    model = IsingEBM(nodes, (nodes[edges[:, 0]], nodes[edges[:, 1]]), jnp.zeros(side * side), jnp.ones(len(edges)), jnp.array(0.5))
    blocks = [nodes[np.flatnonzero(colors == c)] for c in (0, 1)]
    program = dt.FactorSamplingProgram(dt.BlockGibbsSpec(blocks, []), [_CustomSpin()] * 2, model.factors, [])
    assert not program.samplers[0].has_chains_kernel(program.per_block_interactions[0])
    return program, hinton_init(jax.random.key(0), model, blocks, (CHAINS,)), [], [nodes]


MODELS = {"ising": _ising, "potts": _potts, "mixed-clamped": _mixed, "star-fori": _star, "custom-fallback": _custom}


@pytest.mark.parametrize("name", ["ising", "potts"])
def test_key_words_derived_in_chunks_change_no_sample(name, monkeypatch):
    """The batched loop derives many sweeps' key words at once (`chain.scan_sweeps`): chunks of 3
    sweeps (whole chunks and a rest, in the warm-up and between samples) give the samples of
    the one-chain path, which derives them sweep by sweep."""
    program, init, clamp, observe = MODELS[name]()
    schedule = dt.SamplingSchedule(7, 3, 4)
    keys = jax.random.split(jax.random.key(2), CHAINS)
    monkeypatch.setattr(chain, "KEY_CHUNK", 3)
    batched = jax.jit(jax.vmap(lambda k, i: dt.sample_states(k, program, schedule, i, clamp, observe)))(keys, init)
    one = jax.jit(lambda k, i: dt.sample_states(k, program, schedule, i, clamp, observe))
    for c in (0, CHAINS - 1):
        for a, b in zip(batched, one(keys[c], [x[c] for x in init])):
            np.testing.assert_array_equal(np.asarray(a[c]), np.asarray(b))


@pytest.mark.parametrize("name", list(MODELS))
def test_vmapped_equals_chain_by_chain(name):
    program, init, clamp, observe = MODELS[name]()
    assert chains_ready(program_plan(program)) == (name != "custom-fallback")
    keys = jax.random.split(jax.random.key(1), CHAINS)
    one = jax.jit(lambda k, i: dt.sample_states(k, program, SCHEDULE, i, clamp, observe))
    batched = jax.jit(jax.vmap(lambda k, i: dt.sample_states(k, program, SCHEDULE, i, clamp, observe)))(keys, init)
    for c in range(CHAINS):
        single = one(keys[c], [x[c] for x in init])
        for a, b in zip(batched, single):
            np.testing.assert_array_equal(np.asarray(a[c]), np.asarray(b))


def test_shared_key_or_state_broadcasts():
    program, init, clamp, observe = _ising()
    key = jax.random.key(3)
    run = lambda k, i: dt.sample_states(k, program, SCHEDULE, i, clamp, observe)  # noqa: E731
    shared_key = jax.jit(jax.vmap(run, in_axes=(None, 0)))(key, init)
    shared_state = jax.jit(jax.vmap(run, in_axes=(0, None)))(jax.random.split(key, CHAINS), [x[0] for x in init])
    for c in range(CHAINS):
        np.testing.assert_array_equal(np.asarray(shared_key[0][c]), np.asarray(run(key, [x[c] for x in init])[0]))
        k = jax.random.split(key, CHAINS)[c]
        np.testing.assert_array_equal(np.asarray(shared_state[0][c]), np.asarray(run(k, [x[0] for x in init])[0]))


def test_batched_program_falls_back():
    """vmapping over a model parameter (batched program arrays) still samples each program exactly."""
    side = 4
    edges, colors = grid_edges(side, side), checkerboard_colors(side, side)
    nodes = dt.make_block(dt.SpinNode, side * side)
    blocks = [nodes[np.flatnonzero(colors == c)] for c in (0, 1)]

    def run(beta, key):
        model = IsingEBM(nodes, (nodes[edges[:, 0]], nodes[edges[:, 1]]), jnp.zeros(side * side), jnp.ones(len(edges)), beta)
        program = IsingSamplingProgram(model, blocks, [])
        init = [jnp.zeros(len(b), bool) for b in blocks]
        return dt.sample_states(key, program, SCHEDULE, init, [], [nodes])[0]

    betas = jnp.array([0.1, 0.5, 1.0])
    keys = jax.random.split(jax.random.key(0), 3)
    batched = jax.jit(jax.vmap(run))(betas, keys)
    for i in range(3):
        np.testing.assert_array_equal(np.asarray(batched[i]), np.asarray(run(betas[i], keys[i])))


def _categorical(k: int, arity: int, chains: int):
    """A K-state model on a grid (pairs) or on its triangles (three-way factors): K^(arity-1)
    tail combinations, above SELECT_COMBINATIONS the weights are gathered rather than selected."""
    side = 7
    edges = grid_edges(side, side)
    colors = checkerboard_colors(side, side)
    nodes = dt.make_block(dt.CategoricalNode, side * side)
    rng = np.random.default_rng(k)
    if arity == 3:
        # triangles (r, c), (r, c + 1), (r + 1, c): three colours by (r + 2c) mod 3 keep them proper
        r, c = np.divmod(np.arange(side * side), side)
        colors = (r + 2 * c) % 3
        sel = np.flatnonzero((c < side - 1) & (r < side - 1))
        groups = [nodes[sel], nodes[sel + 1], nodes[sel + side]]
    else:
        groups = [nodes[edges[:, 0]], nodes[edges[:, 1]]]
    weights = jnp.asarray(rng.normal(size=(len(groups[0]),) + (k,) * arity), jnp.float32)
    blocks = [nodes[np.flatnonzero(colors == c)] for c in range(colors.max() + 1)]
    spec = dt.BlockGibbsSpec(blocks, [])
    program = dt.FactorSamplingProgram(spec, [CategoricalGibbsConditional(k)] * len(blocks), [CategoricalEBMFactor(groups, weights)], [])
    init = [jax.random.randint(jax.random.key(c), (chains, len(b)), 0, k, jnp.uint8) for c, b in enumerate(blocks)]
    return program, init, [], [nodes]


@pytest.mark.parametrize("k, arity", [(5, 2), (3, 3), (5, 3)])
def test_categorical_kernel_odd_chains(k, arity):
    """Categories outermost, odd chain counts and block sizes: the batched kernel draws what one
    chain at a time draws, with the weights picked by selects and (K^2 > SELECT_COMBINATIONS) by
    a gather."""
    chains = 3
    program, init, clamp, observe = _categorical(k, arity, chains)
    assert chains_ready(program_plan(program))
    assert (k ** (arity - 1) > SELECT_COMBINATIONS) == (k == 5 and arity == 3)
    keys = jax.random.split(jax.random.key(7), chains)
    run = lambda key, i: dt.sample_states(key, program, SCHEDULE, i, clamp, observe)  # noqa: E731
    batched = jax.jit(jax.vmap(run))(keys, init)
    one = jax.jit(run)
    seen = set()
    for c in range(chains):
        single = one(keys[c], [x[c] for x in init])
        for a, b in zip(batched, single):
            np.testing.assert_array_equal(np.asarray(a[c]), np.asarray(b))
            seen |= set(np.unique(np.asarray(b)).tolist())
    assert seen == set(range(k))


@pytest.mark.parametrize("chains", [8, 13])
def test_narrow_batches_padded_to_full_vectors(chains):
    """5 to 15 chains run on 16 lanes (`engine.chain.narrow_lanes`: the extra lanes repeat the
    last chain and are dropped): every chain still samples what it samples alone."""
    from distthrml.engine.chain import narrow_lanes

    assert narrow_lanes(chains) == 16 and narrow_lanes(4) == 4 and narrow_lanes(16) == 16
    program, init, clamp, observe = _ising()
    init = [jnp.concatenate([x, ~x, x, ~x])[:chains] for x in init]
    keys = jax.random.split(jax.random.key(11), chains)
    run = lambda k, i: dt.sample_states(k, program, SCHEDULE, i, clamp, observe)  # noqa: E731
    batched = jax.jit(jax.vmap(run))(keys, init)
    one = jax.jit(run)
    for c in (0, chains // 2, chains - 1):
        single = one(keys[c], [x[c] for x in init])
        for a, b in zip(batched, single):
            np.testing.assert_array_equal(np.asarray(a[c]), np.asarray(b))


@pytest.mark.parametrize("name", ["mixed-clamped", "ising", "potts"])
def test_sweep_on_pieces_equals_writes_into_entries(name):
    """`sweep_chains` keeps every entry cut at its free blocks (one piece per block) and replaces
    a block's piece with its new state; one sweep of it, joined, equals the same block updates
    written into whole entries (`write_block`), bit for bit. The mixed model has two entries and
    a clamped row between free blocks."""
    from distthrml.block_management import block_state_to_global

    engine = importlib.import_module("distthrml.engine.sweep")  # the package exports a function `sweep`
    program, init, clamp, _ = MODELS[name]()
    plan, spec = program_plan(program), program.gibbs_spec
    state = jax.vmap(lambda free: block_state_to_global(list(free) + list(clamp), spec))(init)
    state = jax.tree.map(lambda x: jnp.moveaxis(x, 0, 1), state)  # chains innermost: [rows, chains]
    entries = [e for e, x in enumerate(state) if x is not None]  # (no spin entry in a Potts model)

    pieces = engine.split_entries(plan, state)
    assert all(len(pieces[e]) > 1 for e in entries)
    for b, (e, offset) in enumerate(zip(plan.entry, plan.offset)):
        piece = pieces[e][engine._cuts(plan, e, state[e].shape[0]).index(offset)]
        np.testing.assert_array_equal(np.asarray(piece), np.asarray(state[e][offset : offset + plan.block_size[b]]))
    joined = engine.join_entries(pieces)
    for e in entries:
        np.testing.assert_array_equal(np.asarray(joined[e]), np.asarray(state[e]))

    tables = engine.chains_tables(plan)
    words = jax.random.bits(jax.random.key(5), (2, CHAINS), jnp.uint32)
    expected = list(state)
    for group in plan.sampling_order:
        outs = [(b, engine._update_block_chains(plan, b, tables[b], words[0:1], words[1:2], expected)) for b in group]
        for b, out in outs:
            expected = engine.write_block(plan, b, expected, out)
    got = engine.join_entries(engine.sweep_chains(plan, tables, words[0:1], words[1:2], pieces))
    for e in entries:
        np.testing.assert_array_equal(np.asarray(got[e]), np.asarray(expected[e]))
    assert any(not np.array_equal(np.asarray(got[e]), np.asarray(state[e])) for e in entries)  # the sweep moved


def test_torus_tails_read_from_the_other_piece():
    """On a checkerboard torus every tail of a block lies in the other block's rows: the sweep
    gathers it from that piece alone (no joined copy), the same rows as from the entry; a piece
    rewritten earlier in the sweep is read from the joined entry instead."""
    from partition.generators import torus_edges

    engine = importlib.import_module("distthrml.engine.sweep")
    side = 8
    edges, colors = torus_edges(side, side), checkerboard_colors(side, side)
    nodes = dt.make_block(dt.SpinNode, side * side)
    model = IsingEBM(nodes, (nodes[edges[:, 0]], nodes[edges[:, 1]]), jnp.zeros(side * side), jnp.ones(len(edges)), jnp.array(0.4))
    program = IsingSamplingProgram(model, [nodes[np.flatnonzero(colors == c)] for c in (0, 1)], [])
    plan = program_plan(program)
    state = [jax.random.bernoulli(jax.random.key(0), 0.5, (side * side, CHAINS))]
    pieces = engine.split_entries(plan, state)
    read = 0
    for b in (0, 1):
        for i, group in enumerate(plan.blocks[b].tail_positions):
            for t, positions in enumerate(group):
                rows, p = engine._tail_source(plan, b, i, t, state, pieces)
                assert rows is pieces[0][1 - b]
                np.testing.assert_array_equal(np.asarray(rows[p]), np.asarray(state[0][positions]))
                rewritten = [[None if k == 1 - b else x for k, x in enumerate(pieces[0])]]
                assert engine._tail_source(plan, b, i, t, state, rewritten)[0] is state[0]
                read += 1
    assert read == 2  # one coupling group with one tail per block
