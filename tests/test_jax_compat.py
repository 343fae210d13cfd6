"""Programs run under jax.jit, jax.vmap and strict dtype promotion."""

import jax
import jax.numpy as jnp
import numpy as np

import distthrml as dt
from distthrml.models import (
    CategoricalGibbsConditional,
    DiscreteEBMFactor,
    IsingEBM,
    IsingSamplingProgram,
    SpinGibbsConditional,
    estimate_moments,
    hinton_init,
)


def _mixed_program():
    spins = dt.make_block(dt.SpinNode, 6)
    cats = dt.make_block(dt.CategoricalNode, 6)
    rng = np.random.default_rng(0)
    # spin i couples to category i and i+1 (mod 6); spins and categories alternate colors
    factor = DiscreteEBMFactor(
        [spins[np.r_[0:6, 0:6]]], [cats[np.r_[0:6, np.roll(np.arange(6), -1)]]], jnp.asarray(rng.normal(size=(12, 3)), jnp.float32)
    )
    spec = dt.BlockGibbsSpec([spins, cats], [])
    program = dt.FactorSamplingProgram(spec, [SpinGibbsConditional(), CategoricalGibbsConditional(3)], [factor], [])
    init = [jnp.zeros(6, bool), jnp.zeros(6, jnp.uint8)]
    return program, init, [spins, cats]


def test_strict_dtype_promotion():
    nodes = dt.make_block(dt.SpinNode, 8)
    u, v = nodes[np.arange(8)], nodes[np.roll(np.arange(8), 1)]
    model = IsingEBM(nodes, (u, v), jnp.linspace(-1, 1, 8), jnp.ones(8), jnp.array(0.5))
    blocks = [nodes[0::2], nodes[1::2]]
    with jax.numpy_dtype_promotion("strict"):
        program = IsingSamplingProgram(model, blocks, [])
        init = hinton_init(jax.random.key(0), model, blocks, ())
        node_m, edge_m = estimate_moments(jax.random.key(1), nodes, (u, v), program, dt.SamplingSchedule(2, 5, 1), init, [])
        assert node_m.dtype == jnp.float32 and edge_m.shape == (8,)
        mixed, mixed_init, mixed_blocks = _mixed_program()
        out = dt.sample_states(jax.random.key(2), mixed, dt.SamplingSchedule(2, 4, 1), mixed_init, [], mixed_blocks)
        assert out[0].dtype == jnp.bool_ and out[1].dtype == jnp.uint8 and int(out[1].max()) < 3


def test_jit_and_vmap_agree():
    program, init, blocks = _mixed_program()
    schedule = dt.SamplingSchedule(3, 6, 2)
    keys = jax.random.split(jax.random.key(5), 3)
    batched_init = [jnp.stack([x] * 3) for x in init]
    run = lambda k, i: dt.sample_states(k, program, schedule, i, [], blocks)
    single = jax.jit(run)
    eager = [single(k, init) for k in keys]
    batched = jax.jit(jax.vmap(run))(keys, batched_init)
    for c in range(3):
        for a, b in zip(eager[c], batched):
            np.testing.assert_array_equal(a, b[c])
