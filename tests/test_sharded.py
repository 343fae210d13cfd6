"""Sharded programs sample bit for bit what `jax.vmap` of the unsharded program samples."""

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest
from jax.sharding import Mesh

import distthrml as dt
import partition
from distthrml.models import (
    CategoricalEBMFactor,
    CategoricalGibbsConditional,
    DiscreteEBMFactor,
    IsingEBM,
    IsingSamplingProgram,
    SpinGibbsConditional,
    estimate_moments,
    hinton_init,
)
from distthrml.block_management import state_bytes
from cluster.physics import onsager_energy_per_spin
from partition.generators import checkerboard_colors, grid_edges, torus_edges

CHAINS = 4
SCHEDULE = dt.SamplingSchedule(3, 4, 2)
PARTS = [1, 2, 4, 8]


def _ising():
    n = 120
    g = nx.random_regular_graph(3, n, seed=0)
    edges = np.array(list(g.edges()))
    coloring = nx.coloring.greedy_color(g, "largest_first")
    colors = np.array([coloring[i] for i in range(n)])
    nodes = dt.make_block(dt.SpinNode, n)
    rng = np.random.default_rng(0)
    model = IsingEBM(
        nodes, (nodes[edges[:, 0]], nodes[edges[:, 1]]),
        jnp.asarray(rng.normal(size=n), jnp.float32), jnp.asarray(rng.normal(size=len(edges)), jnp.float32), jnp.array(0.7),
    )
    blocks = [nodes[np.flatnonzero(colors == c)] for c in range(colors.max() + 1)]
    program = IsingSamplingProgram(model, blocks, [])
    init = hinton_init(jax.random.key(2), model, blocks, (CHAINS,))
    return program, init, [], [nodes]


def _potts():
    side, k = 12, 4
    edges, colors = grid_edges(side, side), checkerboard_colors(side, side)
    nodes = dt.make_block(dt.CategoricalNode, side * side)
    weights = jnp.asarray(np.random.default_rng(1).normal(size=(len(edges), k, k)), jnp.float32)
    blocks = [nodes[np.flatnonzero(colors == c)] for c in (0, 1)]
    spec = dt.BlockGibbsSpec(blocks, [])
    program = dt.FactorSamplingProgram(spec, [CategoricalGibbsConditional(k)] * 2, [CategoricalEBMFactor([nodes[edges[:, 0]], nodes[edges[:, 1]]], weights)], [])
    init = [jax.random.randint(jax.random.key(c), (CHAINS, len(b)), 0, k, jnp.uint8) for c, b in enumerate(blocks)]
    return program, init, [], [nodes]


def _mixed():
    """Spins and categories on a grid (checkerboard superblocks of both types) plus a clamped row."""
    side = 10
    edges, colors = grid_edges(side, side), checkerboard_colors(side, side)
    is_spin = np.random.default_rng(2).random(side * side) < 0.5
    spins = dt.make_block(dt.SpinNode, int(is_spin.sum()))
    cats = dt.make_block(dt.CategoricalNode, int((~is_spin).sum()))
    index = np.cumsum(is_spin) - 1, np.cumsum(~is_spin) - 1
    rng = np.random.default_rng(3)
    factors = []
    for a_spin in (True, False):
        for b_spin in (True, False):
            sel = edges[(is_spin[edges[:, 0]] == a_spin) & (is_spin[edges[:, 1]] == b_spin)]
            if not len(sel):
                continue
            pick = lambda col, s: (spins if s else cats)[index[0 if s else 1][sel[:, col]]]  # noqa: E731
            groups = [(pick(0, a_spin), a_spin), (pick(1, b_spin), b_spin)]
            spin_groups = [g for g, s in groups if s]
            cat_groups = [g for g, s in groups if not s]
            shape = (len(sel),) + (3,) * len(cat_groups)
            factors.append(DiscreteEBMFactor(spin_groups, cat_groups, jnp.asarray(rng.normal(size=shape), jnp.float32)))
    clamped_sites = np.arange(side)  # first row clamped
    free = []
    for c in (0, 1):
        sites = np.setdiff1d(np.flatnonzero(colors == c), clamped_sites)
        free.append(tuple(b for b in (spins[index[0][sites[is_spin[sites]]]], cats[index[1][sites[~is_spin[sites]]]]) if len(b)))
    clamped = [spins[index[0][clamped_sites[is_spin[clamped_sites]]]], cats[index[1][clamped_sites[~is_spin[clamped_sites]]]]]
    spec = dt.BlockGibbsSpec(free, clamped)
    samplers = [SpinGibbsConditional() if b.node_type is dt.SpinNode else CategoricalGibbsConditional(3) for b in spec.free_blocks]
    program = dt.FactorSamplingProgram(spec, samplers, factors, [])
    init = [
        jnp.zeros((CHAINS, len(b)), bool) if b.node_type is dt.SpinNode else jnp.ones((CHAINS, len(b)), jnp.uint8)
        for b in spec.free_blocks
    ]
    clamp = [jnp.ones(len(clamped[0]), bool), jnp.full(len(clamped[1]), 2, jnp.uint8)]
    return program, init, clamp, [spins, cats]


MODELS = {"ising-random-regular": _ising, "potts-grid": _potts, "mixed-types-clamped": _mixed}


@pytest.fixture(scope="module", params=list(MODELS))
def case(request):
    program, init, clamp, observe = MODELS[request.param]()
    keys = jax.random.split(jax.random.key(1), CHAINS)
    reference = jax.jit(jax.vmap(lambda k, i: dt.sample_states(k, program, SCHEDULE, i, clamp, observe)))(keys, init)
    return program, init, clamp, observe, keys, reference


@pytest.mark.parametrize("method", ["metis", "random"])
@pytest.mark.parametrize("n_parts", PARTS)
def test_bit_identical_to_unsharded(case, n_parts, method):
    program, init, clamp, observe, keys, reference = case
    part = partition.partition_graph(dt.interaction_graph(program), n_parts, method=method, seed=7)
    sharded = dt.shard_program(program, part)
    out = dt.sample_states(keys, sharded, SCHEDULE, init, clamp, observe)
    for a, b in zip(out, reference):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # the executed exchange plans move exactly what the partition report predicts (clamped
    # nodes are read but never sent)
    spec = program.gibbs_spec
    sizes = np.concatenate([np.full(len(b), state_bytes(spec.node_shape_struct[b.node_type])) for b in spec.blocks])
    assert sharded.halo_bytes_per_sweep() == sharded.partition.report(sizes)["halo_bytes_per_sweep"]
    if not spec.clamped_blocks:
        assert sharded.halo_bytes_per_sweep() == part.report(sizes)["halo_bytes_per_sweep"]


@pytest.mark.parametrize("n_parts", [3, pytest.param(8, marks=pytest.mark.slow)])
def test_thrml_stream_bit_identical_to_unsharded(case, n_parts):
    """In THRML's random stream every shard draws its rows' numbers from the block key and the
    rows' positions in the block: sharded equals `jax.vmap` of the unsharded program too."""
    program, init, clamp, observe, keys, _ = case
    program = program.with_rng("thrml")
    reference = jax.jit(jax.vmap(lambda k, i: dt.sample_states(k, program, SCHEDULE, i, clamp, observe)))(keys, init)
    part = partition.partition_graph(dt.interaction_graph(program), n_parts, method="random", seed=3)
    out = dt.sample_states(keys, dt.shard_program(program, part), SCHEDULE, init, clamp, observe)
    for a, b in zip(out, reference):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("exchange", ["ppermute", "all_to_all"])
@pytest.mark.parametrize("n_parts", [2, 8])
def test_every_transport_is_bit_identical(case, n_parts, exchange):
    program, init, clamp, observe, keys, reference = case
    sharded = dt.shard_program(program, n_parts, exchange=exchange)
    assert set(sharded.exchange) <= {exchange}
    out = dt.sample_states(keys, sharded, SCHEDULE, init, clamp, observe)
    for a, b in zip(out, reference):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _graph_edges(program, nodes):
    """The (u, v) blocks of every edge of the program's interaction graph among `nodes`."""
    g = dt.interaction_graph(program).tocoo()
    keep = g.row < g.col
    ids = np.concatenate([b.ids for b in program.gibbs_spec.blocks])
    return dt.Block.from_ids(nodes.node_type, ids[g.row[keep]]), dt.Block.from_ids(nodes.node_type, ids[g.col[keep]])


def test_moments_of_neighbours_accumulate_on_the_shards():
    """Moments whose nodes one shard holds are summed where they are, gathered once at the end,
    and equal the unsharded sums bit for bit."""
    from distthrml.sharding.view import LocalShardView

    program, init, _, observe = _ising()
    nodes = observe[0]
    u, v = _graph_edges(program, nodes)
    sharded = dt.shard_program(program, 4)
    keys = jax.random.split(jax.random.key(5), CHAINS)
    observer = dt.MomentAccumulatorObserver(moment_blocks=[[nodes], [u, v]], f_transform=lambda s, b: [2.0 * x - 1 for x in s],
                                            elementwise_transform=True)
    view = LocalShardView(program.gibbs_spec, sharded.layout, jnp.asarray(0))
    assert observer.for_shard(program, view) is not None  # the shard path, not the reassembling fallback
    carry = observer.init()
    got = dt.sample_with_observation(keys, sharded, SCHEDULE, init, [], carry, observer)[0]
    want = jax.vmap(lambda k, i: dt.sample_with_observation(k, program, SCHEDULE, i, [], carry, observer)[0])(keys, init)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # a transform not declared elementwise is observed on the reassembled state, with the same sums
    plain = dt.MomentAccumulatorObserver(moment_blocks=[[nodes], [u, v]], f_transform=lambda s, b: [2.0 * x - 1 for x in s])
    assert plain.for_shard(program, view) is None
    again = dt.sample_with_observation(keys, sharded, SCHEDULE, init, [], carry, plain)[0]
    for a, b in zip(again, want):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _all_gathers(jaxpr, inside_loop=False, found=None):
    """(inside a scan/while body?, operand size) of every all_gather in a jaxpr, recursively."""
    found = [] if found is None else found
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "all_gather":
            found.append((inside_loop, int(np.prod(eqn.invars[0].aval.shape))))
        loop = inside_loop or eqn.primitive.name in ("scan", "while")
        for sub in _subjaxprs(eqn):
            _all_gathers(sub, loop, found)
    return found


def _subjaxprs(eqn):
    for value in eqn.params.values():
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if hasattr(v, "jaxpr") and hasattr(v.jaxpr, "eqns"):
                yield v.jaxpr
            elif hasattr(v, "eqns"):
                yield v


def test_observing_a_few_nodes_gathers_only_those_once():
    program, init, _, observe = _ising()
    nodes = observe[0]
    sharded = dt.shard_program(program, 4)
    keys = jax.random.split(jax.random.key(0), CHAINS)
    few = nodes[np.arange(10)]
    jaxpr = jax.make_jaxpr(lambda k, i: dt.sample_states(k, sharded, SCHEDULE, i, [], [few]))(keys, init).jaxpr
    gathers = _all_gathers(jaxpr)
    assert gathers and not any(inside for inside, _ in gathers)  # never per observation
    width = max(size for _, size in gathers)
    assert width <= CHAINS * SCHEDULE.n_samples * 10  # the observed nodes (padded per shard), not the state


def test_chains_axis_and_moments():
    program, init, _, observe = _ising()
    nodes = observe[0]
    mesh = Mesh(np.array(jax.devices()[:8]).reshape(2, 4), ("chains", "graph"))
    sharded = dt.shard_program(program, 4, mesh=mesh)
    keys = jax.random.split(jax.random.key(5), CHAINS)
    u, v = nodes[np.arange(0, 20)], nodes[np.arange(1, 21)]

    def moments(k, i, prog):
        return estimate_moments(k, nodes, (u, v), prog, SCHEDULE, i, [])

    reference = jax.jit(jax.vmap(lambda k, i: moments(k, i, program)))(keys, init)
    got = moments(keys, init, sharded)
    for a, b in zip(got, reference):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_onsager_energy_eight_way_sharded():
    side, beta = 32, 0.3
    edges, colors = torus_edges(side, side), checkerboard_colors(side, side)
    nodes = dt.make_block(dt.SpinNode, side * side)
    model = IsingEBM(nodes, (nodes[edges[:, 0]], nodes[edges[:, 1]]), jnp.zeros(side * side), jnp.ones(len(edges)), jnp.array(beta))
    blocks = [nodes[np.flatnonzero(colors == c)] for c in (0, 1)]
    sharded = dt.shard_program(IsingSamplingProgram(model, blocks, []), 8)
    chains = 16
    init = hinton_init(jax.random.key(0), model, blocks, (chains,))
    out = dt.sample_states(jax.random.split(jax.random.key(1), chains), sharded, dt.SamplingSchedule(200, 20, 5), init, [], [nodes])[0]
    s = np.where(np.asarray(out), 1.0, -1.0)
    per_chain = -(s[..., edges[:, 0]] * s[..., edges[:, 1]]).sum(-1).mean(-1) / (side * side)
    err = per_chain.std(ddof=1) / np.sqrt(chains)
    # 5 standard errors plus the (tiny at beta=0.3) finite-size correction of a 32x32 torus
    assert abs(per_chain.mean() - onsager_energy_per_spin(beta)) < 5 * err + 2e-3


def test_errors():
    program, init, _, observe = _ising()
    other, _, _, _ = _potts()
    keys = jax.random.split(jax.random.key(0), CHAINS)
    with pytest.raises(dt.ShardingError, match="partition of another"):
        dt.shard_program(program, partition.partition_graph(dt.interaction_graph(other), 2))
    with pytest.raises(dt.ShardingError, match="different graph"):
        g = dt.interaction_graph(program)
        dt.shard_program(program, partition.partition_graph(nx.cycle_graph(g.shape[0]), 2))
    mesh = Mesh(np.array(jax.devices()[:4]).reshape(1, 4), ("chains", "graph"))
    with pytest.raises(dt.ShardingError, match="partition has 2 parts but the mesh's graph axis has 4"):
        dt.shard_program(program, 2, mesh=mesh)
    sharded = dt.shard_program(program, 4, mesh=Mesh(np.array(jax.devices()[:8]).reshape(2, 4), ("chains", "graph")))
    with pytest.raises(dt.ShardingError, match="3 chains are not divisible by the mesh's chains axis \\(2\\)"):
        dt.sample_states(keys[:3], sharded, SCHEDULE, [x[:3] for x in init], [], observe)
    with pytest.raises(dt.ShardingError, match="expected the chain count \\(4,\\)"):
        dt.sample_states(keys, sharded, SCHEDULE, [x[:2] for x in init], [], observe)
    with pytest.raises(dt.ShardingError, match="one key per chain"):
        dt.sample_states(keys[0], sharded, SCHEDULE, init, [], observe)


def test_exchange_rounds_are_permutations_and_as_few_as_the_max_degree():
    from distthrml.sharding.layout import match_rounds

    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 12))
        pairs = [(p, q) for p in range(n) for q in range(n) if p != q and rng.random() < 0.4]
        rounds = match_rounds(pairs)
        assert sorted(x for r in rounds for x in r) == sorted(pairs)
        for r in rounds:
            assert len({u for u, _ in r}) == len(r) == len({v for _, v in r})
        degree = max([sum(u == p for u, _ in pairs) for p in range(n)] + [sum(v == p for _, v in pairs) for p in range(n)])
        assert len(rounds) == degree


def test_mesh_from_make_mesh_works_under_jit():
    program, init, clamp, nodes = _ising()
    mesh = jax.make_mesh((1, 2), ("chains", "graph"), devices=jax.devices()[:2])
    keys = jax.random.split(jax.random.key(0), CHAINS)
    sprog = dt.shard_program(program, 2, mesh)
    got = jax.jit(lambda k, i: dt.sample_states(k, sprog, SCHEDULE, i, clamp, nodes))(keys, init)
    expected = jax.vmap(lambda k, i: dt.sample_states(k, program, SCHEDULE, i, clamp, nodes))(keys, init)
    np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(expected[0]))
