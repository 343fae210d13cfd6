"""Both phases of KL-gradient training sampled across devices give the unsharded results bit for bit."""

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest

import distthrml as dt
from distthrml.models import (
    IsingEBM,
    IsingTrainingSpec,
    estimate_kl_grad,
    estimate_moments,
    hinton_init,
)

N_VIS, N_HID = 16, 12


def _model(weight_scale=1.0):
    n = N_VIS + N_HID
    g = nx.random_regular_graph(3, n, seed=4)
    edges = np.array(sorted(g.edges()))
    nodes = dt.make_block(dt.SpinNode, n)
    rng = np.random.default_rng(3)
    model = IsingEBM(
        nodes, (nodes[edges[:, 0]], nodes[edges[:, 1]]),
        jnp.asarray(rng.normal(size=n) * 0.3, jnp.float32),
        jnp.asarray(rng.normal(size=len(edges)) * weight_scale, jnp.float32), jnp.array(0.8),
    )
    coloring = nx.coloring.greedy_color(g, "largest_first")
    colors = np.array([coloring[i] for i in range(n)])
    neg_blocks = [nodes[np.flatnonzero(colors == c)] for c in range(colors.max() + 1)]
    hid_colors = colors[N_VIS:]
    pos_blocks = [nodes[N_VIS + np.flatnonzero(hid_colors == c)] for c in range(colors.max() + 1)]
    pos_blocks = [b for b in pos_blocks if len(b)]
    return model, nodes, pos_blocks, neg_blocks


def _spec(model, nodes, pos_blocks, neg_blocks):
    schedule = dt.SamplingSchedule(4, 6, 2)
    return IsingTrainingSpec(model, [nodes[np.arange(N_VIS)]], [], pos_blocks, neg_blocks, schedule, schedule)


def _inputs(model, pos_blocks, neg_blocks, chains_pos=2, batch=4, chains_neg=8):
    k1, k2 = jax.random.split(jax.random.key(7))
    data = [jax.random.bernoulli(jax.random.key(9), 0.5, (batch, N_VIS))]
    return data, hinton_init(k1, model, pos_blocks, (chains_pos, batch)), hinton_init(k2, model, neg_blocks, (chains_neg,))


@pytest.mark.parametrize("parts", [1, 2, 4])
def test_kl_grad_sharded_matches_unsharded(parts):
    model, nodes, pos_blocks, neg_blocks = _model()
    spec = _spec(model, nodes, pos_blocks, neg_blocks)
    data, init_pos, init_neg = _inputs(model, pos_blocks, neg_blocks)
    edges = model.edge_blocks
    key = jax.random.key(11)
    expected = estimate_kl_grad(key, spec, nodes, edges, data, [], init_pos, init_neg)
    sharded = dt.shard_training_spec(spec, parts)
    assert isinstance(sharded.program_negative, dt.ShardedProgram)
    got = estimate_kl_grad(key, sharded, nodes, edges, data, [], init_pos, init_neg)
    for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(got)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_random_partition_of_model_nodes():
    import partition

    model, nodes, pos_blocks, neg_blocks = _model()
    spec = _spec(model, nodes, pos_blocks, neg_blocks)
    data, init_pos, init_neg = _inputs(model, pos_blocks, neg_blocks)
    n = N_VIS + N_HID
    u, v = (np.asarray(b.ids) - int(nodes.ids[0]) for b in model.edge_blocks)
    graph = partition.generators.edges_to_csr(np.stack([u, v], 1), n)
    part = partition.partition_graph(graph, 4, method="random", seed=2)
    key = jax.random.key(1)
    expected = estimate_kl_grad(key, spec, nodes, model.edge_blocks, data, [], init_pos, init_neg)
    got = estimate_kl_grad(key, dt.shard_training_spec(spec, part), nodes, model.edge_blocks, data, [], init_pos, init_neg)
    for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(got)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_with_program_reuses_layout_under_jit():
    """A training step rebuilds the model from traced parameters; the sharded template's layout
    is reused and the result equals the unsharded gradient with the same parameters."""
    model, nodes, pos_blocks, neg_blocks = _model()
    template = dt.shard_training_spec(_spec(model, nodes, pos_blocks, neg_blocks), 2)
    data, init_pos, init_neg = _inputs(model, pos_blocks, neg_blocks)

    def grads(weights, sharded):
        m = IsingEBM(nodes, model.edge_blocks, model.biases, weights, model.beta)
        spec = _spec(m, nodes, pos_blocks, neg_blocks)
        if sharded:
            spec = dt.shard_training_spec(spec, template)
        return estimate_kl_grad(jax.random.key(5), spec, nodes, model.edge_blocks, data, [], init_pos, init_neg)[:2]

    new_weights = model.weights * 0.5 + 0.1
    expected = jax.jit(lambda w: grads(w, False))(new_weights)
    got = jax.jit(lambda w: grads(w, True))(new_weights)
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # the parameters really flowed through: another weight vector gives another gradient
    other = jax.jit(lambda w: grads(w, True))(model.weights)
    assert not np.array_equal(np.asarray(other[0]), np.asarray(got[0]))


def test_estimate_moments_sharded_per_chain():
    model, nodes, _, neg_blocks = _model()
    program = dt.models.IsingSamplingProgram(model, neg_blocks, [])
    init = hinton_init(jax.random.key(3), model, neg_blocks, (4,))
    keys = jax.random.split(jax.random.key(4), 4)
    sched = dt.SamplingSchedule(2, 5, 1)
    expected = jax.vmap(lambda k, i: estimate_moments(k, nodes, model.edge_blocks, program, sched, i, []))(keys, init)
    got = estimate_moments(keys, nodes, model.edge_blocks, dt.shard_program(program, 4), sched, init, [])
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_template_of_other_structure_is_refused():
    model, nodes, pos_blocks, neg_blocks = _model()
    template = dt.shard_training_spec(_spec(model, nodes, pos_blocks, neg_blocks), 2)
    other = _spec(model, nodes, pos_blocks, neg_blocks[::-1])
    with pytest.raises(dt.ShardingError, match="free block 0"):
        dt.shard_training_spec(other, template)


def test_partition_of_wrong_size_is_refused():
    import partition

    model, nodes, pos_blocks, neg_blocks = _model()
    spec = _spec(model, nodes, pos_blocks, neg_blocks)
    part = partition.partition_graph(partition.generators.edges_to_csr(partition.generators.torus_edges(5, 5), 25), 2)
    with pytest.raises(dt.ShardingError, match="model has 28"):
        dt.shard_training_spec(spec, part)
