"""The array-native construction path, the interaction graph, and per-node randomness."""

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

import distthrml as dt
from distthrml.models import IsingEBM, IsingSamplingProgram, SpinEBMFactor, SpinGibbsConditional, estimate_moments, hinton_init
from partition.generators import checkerboard_colors, torus_edges


def _random_graph(n=24, degree=3, seed=0):
    g = nx.random_regular_graph(degree, n, seed=seed)
    edges = np.array(sorted(tuple(sorted(e)) for e in g.edges()), dtype=np.int64)
    coloring = nx.coloring.greedy_color(g, strategy="largest_first")
    colors = np.array([coloring[i] for i in range(n)])
    return edges, colors


def _params(n, m, seed=1):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(size=n), jnp.float32), jnp.asarray(rng.normal(size=m), jnp.float32)


def _object_program(edges, colors, biases, weights, beta=0.7):
    nodes = [dt.SpinNode() for _ in range(len(colors))]
    model = IsingEBM(nodes, [(nodes[a], nodes[b]) for a, b in edges], biases, weights, jnp.array(beta))
    blocks = [dt.Block([nodes[i] for i in np.flatnonzero(colors == c)]) for c in range(colors.max() + 1)]
    return model, IsingSamplingProgram(model, blocks, []), blocks


def _array_program(edges, colors, biases, weights, beta=0.7):
    nodes = dt.make_block(dt.SpinNode, len(colors))
    model = IsingEBM(nodes, (nodes[edges[:, 0]], nodes[edges[:, 1]]), biases, weights, jnp.array(beta))
    blocks = [nodes[np.flatnonzero(colors == c)] for c in range(colors.max() + 1)]
    return model, IsingSamplingProgram(model, blocks, []), blocks


def _chains(program, blocks, n_chains=8, schedule=dt.SamplingSchedule(5, 20, 2)):
    init = [jnp.zeros((n_chains, len(b)), bool) for b in blocks]
    keys = jax.random.split(jax.random.key(3), n_chains)
    everything = [dt.concat_blocks(blocks)]
    return jax.jit(jax.vmap(lambda k, i: dt.sample_states(k, program, schedule, i, [], everything)))(keys, init)[0]


def test_block_array_api():
    block = dt.make_block(dt.SpinNode, 10)
    assert len(block) == 10 and block.node_type is dt.SpinNode
    assert np.array_equal(np.diff(block.ids), np.ones(9))
    sub = block[np.array([7, 2, 2])]
    assert np.array_equal(sub.ids, block.ids[[7, 2, 2]])
    assert sub[0] == block[7] and block[7] in sub and block[3] not in sub
    assert dt.Block(list(sub.nodes)).ids.tolist() == sub.ids.tolist()
    joined = block[:3] + block[5:6]
    assert joined.ids.tolist() == block.ids[[0, 1, 2, 5]].tolist()
    with pytest.raises(ValueError):
        block.ids[0] = 1  # ids are immutable
    objects = [dt.SpinNode() for _ in range(3)]
    assert dt.Block(objects)[1] is objects[1]


def test_array_and_object_paths_lower_identically_and_sample_identically():
    edges, colors = _random_graph()
    biases, weights = _params(len(colors), len(edges))
    _, p_obj, b_obj = _object_program(edges, colors, biases, weights)
    _, p_arr, b_arr = _array_program(edges, colors, biases, weights)
    for name in ("per_block_interaction_active", "per_block_interaction_global_slices", "per_block_interactions"):
        for x, y in zip(jax.tree.leaves(getattr(p_obj, name)), jax.tree.leaves(getattr(p_arr, name))):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # same program indices -> same per-node random numbers -> the same chains bit for bit
    np.testing.assert_array_equal(_chains(p_obj, b_obj), _chains(p_arr, b_arr))


def test_splitting_a_color_into_a_superblock_keeps_samples_bit_identical():
    """Per-node randomness: grouping the same nodes differently must not change the chain."""
    rows = cols = 8
    edges, colors = torus_edges(rows, cols), checkerboard_colors(rows, cols)
    biases, weights = _params(rows * cols, len(edges), seed=5)
    nodes = dt.make_block(dt.SpinNode, rows * cols)
    model = IsingEBM(nodes, (nodes[edges[:, 0]], nodes[edges[:, 1]]), biases, weights, jnp.array(0.4))
    c0, c1 = (nodes[np.flatnonzero(colors == c)] for c in (0, 1))
    whole = IsingSamplingProgram(model, [c0, c1], [])
    split = IsingSamplingProgram(model, [(c0[:10], c0[10:]), (c1[:1], c1[1:17], c1[17:])], [])
    a = _chains(whole, [c0, c1])
    b = _chains(split, [c0[:10], c0[10:], c1[:1], c1[1:17], c1[17:]])
    np.testing.assert_array_equal(a, b)


def test_vmapped_chain_equals_single_chain():
    edges, colors = _random_graph(seed=3)
    biases, weights = _params(len(colors), len(edges))
    _, program, blocks = _array_program(edges, colors, biases, weights)
    batch = _chains(program, blocks, n_chains=4)
    keys = jax.random.split(jax.random.key(3), 4)
    single = dt.sample_states(keys[2], program, dt.SamplingSchedule(5, 20, 2), [jnp.zeros(len(b), bool) for b in blocks], [], [dt.concat_blocks(blocks)])[0]
    np.testing.assert_array_equal(batch[2], single)


def test_program_built_inside_jit_from_traced_weights():
    """Training rebuilds the program from traced parameters; the result must equal the eager one."""
    edges, colors = _random_graph(seed=4)
    biases, weights = _params(len(colors), len(edges))
    nodes = dt.make_block(dt.SpinNode, len(colors))
    u, v = nodes[edges[:, 0]], nodes[edges[:, 1]]
    blocks = [nodes[np.flatnonzero(colors == c)] for c in range(colors.max() + 1)]
    schedule = dt.SamplingSchedule(3, 10, 1)

    def moments(w):
        model = IsingEBM(nodes, (u, v), biases, w, jnp.array(0.5))
        program = IsingSamplingProgram(model, blocks, [])
        init = hinton_init(jax.random.key(1), model, blocks, ())
        return estimate_moments(jax.random.key(2), nodes, (u, v), program, schedule, init, [])

    eager = moments(weights)
    traced = jax.jit(moments)(weights)
    for x, y in zip(eager, traced):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=1e-6)
    assert eager[0].shape == (len(colors),) and eager[1].shape == (len(edges),)


def test_interaction_graph_of_an_ising_program_is_its_graph():
    edges, colors = _random_graph(n=30, seed=7)
    biases, weights = _params(len(colors), len(edges))
    _, program, blocks = _array_program(edges, colors, biases, weights)
    graph = dt.interaction_graph(program)
    # program index -> original node number
    order = np.concatenate([np.flatnonzero(colors == c) for c in range(colors.max() + 1)])
    expected = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(30, 30))
    expected = ((expected + expected.T) > 0).astype(np.int8).tocsr()[order][:, order]
    assert isinstance(graph, sp.csr_matrix)
    assert (graph != graph.T).nnz == 0 and graph.diagonal().sum() == 0
    assert (graph != expected).nnz == 0


def test_interaction_graph_of_cubic_factor_and_clamped_nodes():
    a, b, c, d = (dt.make_block(dt.SpinNode, 1) for _ in range(4))
    factor = SpinEBMFactor([a, b, c], jnp.ones(1))
    spec = dt.BlockGibbsSpec([a, b], [c, d])
    program = dt.FactorSamplingProgram(spec, [SpinGibbsConditional()] * 2, [factor], [])
    graph = dt.interaction_graph(program).toarray()
    # program order: a, b, c, d ; a and b read each other and c; c and d are clamped (never heads)
    expected = np.zeros((4, 4), np.int8)
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        expected[i, j] = expected[j, i] = 1
    np.testing.assert_array_equal(graph, expected)
