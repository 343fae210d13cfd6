"""The THRML random stream: bit for bit what `jax.random` and thrml 0.1.4 draw for the same keys.

1. `distthrml.thrml_rng` evaluates `jax.random`'s block draws at chosen rows: checked against
   `jax.random` itself (dtypes, row shapes, batched and raw keys, and the full-draw fallback).
2. Programs built with `rng="thrml"` give thrml 0.1.4's samples for the same keys, programs and
   schedules: spin, categorical and mixed models with clamped blocks and superblocks, through
   `sample_single_block`, `sample_blocks`, `sample_states` and `sample_with_observation`,
   unsharded and sharded over 1, 2 and 4 parts, and for a custom sampler that only has `sample`.
   The default run covers the mixed model (spin and categorical blocks, clamped blocks of both,
   superblocks) and one sharding; `-m slow` runs every model, part count and schedule.
3. The switches: `rng=`, `distthrml.set_rng`, `DISTTHRML_RNG` (in a fresh process).
"""

from __future__ import annotations

import os
import subprocess
import sys
from types import ModuleType, SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import thrml

import distthrml
from distthrml import thrml_rng
from reference_models import coloring_groups

LIBS: dict[str, ModuleType] = {"thrml": thrml, "distthrml": distthrml}


# =============================================================================================
# thrml_rng against jax.random
# =============================================================================================


def _rows(size: int, seed: int) -> jnp.ndarray:
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.permutation(size)[: max(1, (2 * size) // 3)], jnp.int32)


SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "dtype, row_shape",
    [(jnp.float32, ()), (jnp.float32, (2, 4)), (jnp.float16, (3,))]
    + [
        pytest.param(d, r, marks=SLOW)
        for d in (jnp.float32, jnp.float16, jnp.bfloat16)
        for r in ((), (3,), (2, 4))
        if (d, r) not in ((jnp.float32, ()), (jnp.float32, (2, 4)), (jnp.float16, (3,)))
    ],
)
def test_uniform_normal_gumbel_at_rows_equal_jax_random(dtype, row_shape) -> None:
    """`uniform` (also with a range), `normal` and `gumbel` at a permuted subset of rows equal the
    same rows of `jax.random`'s draw of the whole block, for several keys, bit for bit."""
    size = 11
    rows = _rows(size, 0)
    for seed in range(4):
        key = jax.random.key(seed)
        full = (size, *row_shape)
        np.testing.assert_array_equal(thrml_rng.uniform(key, rows, size, row_shape, dtype), jax.random.uniform(key, full, dtype)[rows])
        np.testing.assert_array_equal(
            thrml_rng.uniform(key, rows, size, row_shape, dtype, -2.0, 3.0), jax.random.uniform(key, full, dtype, -2.0, 3.0)[rows]
        )
        np.testing.assert_array_equal(thrml_rng.normal(key, rows, size, row_shape, dtype), jax.random.normal(key, full, dtype)[rows])
        np.testing.assert_array_equal(thrml_rng.gumbel(key, rows, size, row_shape, dtype), jax.random.gumbel(key, full, dtype)[rows])


def test_bernoulli_and_categorical_at_rows_equal_jax_random() -> None:
    """`bernoulli(p)` and `categorical(logits)` at rows equal `jax.random.bernoulli` /
    `categorical` of the whole block's parameters at those rows: one key, keys under `jax.vmap`
    and `jax.jit`, and a raw uint32 key."""
    rng = np.random.default_rng(1)
    size = 37
    rows = _rows(size, 2)
    p = jnp.asarray(rng.random((size, 2)), jnp.float32)
    logits = jnp.asarray(rng.normal(size=(size, 5)) * 2, jnp.float32)
    keys = jax.random.split(jax.random.key(5), 4)
    got_b = jax.jit(jax.vmap(lambda k: thrml_rng.bernoulli(k, rows, size, p[rows])))(keys)
    got_c = jax.jit(jax.vmap(lambda k: thrml_rng.categorical(k, rows, size, logits[rows])))(keys)
    np.testing.assert_array_equal(got_b, jax.vmap(lambda k: jax.random.bernoulli(k, p)[rows])(keys))
    np.testing.assert_array_equal(got_c, jax.vmap(lambda k: jax.random.categorical(k, logits)[rows])(keys))
    raw = jax.random.PRNGKey(9)
    np.testing.assert_array_equal(thrml_rng.bernoulli(raw, rows, size, p[rows]), jax.random.bernoulli(raw, p)[rows])
    # padding rows (outside the block) are allowed and ignored
    padded = jnp.concatenate([rows, jnp.array([size, size], jnp.int32)])
    got = thrml_rng.categorical(keys[0], padded, size, jnp.concatenate([logits[rows], logits[:2]]))
    np.testing.assert_array_equal(got[: len(rows)], jax.random.categorical(keys[0], logits)[rows])


def test_full_draw_fallback_for_other_key_implementations() -> None:
    """A key that is not threefry (here `rbg`) cannot be evaluated at counters: the full block is
    drawn with `jax.random` and the rows taken, still equal to `jax.random`."""
    key = jax.random.key(3, impl="rbg")
    size, rows = 9, _rows(9, 4)
    assert not thrml_rng.at_counters(key, size)
    p = jnp.linspace(0.05, 0.95, size, dtype=jnp.float32)
    np.testing.assert_array_equal(thrml_rng.bernoulli(key, rows, size, p[rows]), jax.random.bernoulli(key, p)[rows])
    np.testing.assert_array_equal(thrml_rng.normal(key, rows, size, (2,)), jax.random.normal(key, (size, 2))[rows])


def test_without_partitionable_threefry_the_whole_block_is_drawn() -> None:
    """With `jax_threefry_partitionable` off, element i of a draw is no longer a function of the
    key and i alone: the rows come from `jax.random`'s whole-block draw, still equal to it."""
    size, rows = 10, _rows(10, 5)
    p = jnp.linspace(0.1, 0.9, size, dtype=jnp.float32)
    logits = jnp.arange(size * 4, dtype=jnp.float32).reshape(size, 4) % 3
    with jax.threefry_partitionable(False):
        key = jax.random.key(1)
        assert not thrml_rng.at_counters(key, size)
        np.testing.assert_array_equal(thrml_rng.bernoulli(key, rows, size, p[rows]), jax.random.bernoulli(key, p)[rows])
        np.testing.assert_array_equal(thrml_rng.categorical(key, rows, size, logits[rows]), jax.random.categorical(key, logits)[rows])


# =============================================================================================
# programs: the same model in both libraries
# =============================================================================================

K = 3


def build_model(lib: ModuleType, n_spin: int, n_cat: int, seed: int, clamp: bool = True) -> SimpleNamespace:
    """A random discrete model in `lib`: spin biases and couplings, categorical biases and
    (non-square-free) pair tables, spin-categorical terms; free superblocks (spin block,
    categorical block) per color of the joint graph, a clamped block per node type."""
    rng = np.random.default_rng(seed)
    debm = lib.models.discrete_ebm
    Block = lib.Block
    n = n_spin + n_cat
    pairs = np.array([(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < 0.35], np.int64).reshape(-1, 2)
    spins = [lib.SpinNode() for _ in range(n_spin)]
    cats = [lib.CategoricalNode() for _ in range(n_cat)]
    allnodes = spins + cats
    w = lambda *shape: jnp.asarray(rng.normal(0, 0.8, shape).astype(np.float32))  # noqa: E731
    ss = pairs[(pairs[:, 0] < n_spin) & (pairs[:, 1] < n_spin)]
    cc = pairs[(pairs[:, 0] >= n_spin) & (pairs[:, 1] >= n_spin)]
    sc = pairs[(pairs[:, 0] < n_spin) & (pairs[:, 1] >= n_spin)]
    factors = []
    if n_spin:
        factors.append(debm.SpinEBMFactor([Block(spins)], w(n_spin)))
    if len(ss):
        factors.append(debm.SpinEBMFactor([Block([allnodes[i] for i in ss[:, 0]]), Block([allnodes[i] for i in ss[:, 1]])], w(len(ss))))
    if n_cat:
        factors.append(debm.CategoricalEBMFactor([Block(cats)], w(n_cat, K)))
    if len(cc):
        factors.append(debm.CategoricalEBMFactor([Block([allnodes[i] for i in cc[:, 0]]), Block([allnodes[i] for i in cc[:, 1]])], w(len(cc), K, K)))
    if len(sc):
        factors.append(debm.DiscreteEBMFactor([Block([allnodes[i] for i in sc[:, 0]])], [Block([allnodes[i] for i in sc[:, 1]])], w(len(sc), K)))
    clamped_ids = ([0] if n_spin and clamp else []) + ([n_spin] if n_cat and clamp else [])
    superblocks = []
    for g in coloring_groups(n, pairs):
        g = [i for i in g if i not in clamped_ids]
        members = [[allnodes[i] for i in g if i < n_spin], [allnodes[i] for i in g if i >= n_spin]]
        sb = tuple(Block(m) for m in members if m)
        if sb:
            superblocks.append(sb)
    clamped = [Block([allnodes[i]]) for i in clamped_ids]
    spec = lib.BlockGibbsSpec(superblocks, clamped)
    samplers = [
        debm.SpinGibbsConditional() if isinstance(b.nodes[0], lib.SpinNode) else debm.CategoricalGibbsConditional(K)
        for b in spec.free_blocks
    ]
    kwargs = {"rng": "thrml"} if lib is distthrml else {}
    program = lib.FactorSamplingProgram(spec, samplers, factors, [], **kwargs)
    return SimpleNamespace(spec=spec, program=program, factors=factors, nodes=allnodes, spins=spins, cats=cats, lib=lib)


def initial_states(m: SimpleNamespace, seed: int, batch: tuple[int, ...] = ()) -> tuple[list, list]:
    key = jax.random.key(seed)
    out = []
    for block in list(m.spec.free_blocks) + list(m.spec.clamped_blocks):
        key, sub = jax.random.split(key)
        if isinstance(block.nodes[0], m.lib.SpinNode):
            out.append(jax.random.bernoulli(sub, 0.5, (*batch, len(block))))
        else:
            out.append(jax.random.randint(sub, (*batch, len(block)), 0, K, dtype=jnp.uint8))
    n_free = len(m.spec.free_blocks)
    return out[:n_free], [x[(0,) * len(batch)] if batch else x for x in out[n_free:]]


MODELS = {"spin": (9, 0), "categorical": (0, 8), "mixed": (6, 5)}
# the mixed model has spin and categorical blocks, clamped blocks of both and superblocks: it
# runs by default, the single-type models with the slow tests
MODEL_PARAMS = ["mixed", pytest.param("spin", marks=SLOW), pytest.param("categorical", marks=SLOW)]


def _both(model: str, seed: int = 0) -> dict[str, SimpleNamespace]:
    n_spin, n_cat = MODELS[model]
    return {name: build_model(lib, n_spin, n_cat, seed) for name, lib in LIBS.items()}


def _all_nodes(m):
    blocks = [m.lib.Block(m.spins)] if m.spins else []
    return blocks + ([m.lib.Block(m.cats)] if m.cats else [])


def _assert_same(a, b, what: str) -> None:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb), what
    for x, y in zip(la, lb):
        assert np.asarray(x).dtype == np.asarray(y).dtype, what
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=what)


@pytest.mark.parametrize("model", MODEL_PARAMS)
def test_four_sampling_functions_equal_thrml(model: str) -> None:
    """For the same keys and states, thrml's and distthrml's outputs are bit for bit equal for:
    `sample_single_block` of every free block; `sample_blocks` (one sweep over the superblocks);
    `jax.vmap(sample_states)` over 4 chains (warm-up, several samples, several sweeps per
    sample); `sample_with_observation` with a `StateObserver` on one chain. Each library's calls
    are compiled together."""
    ms = _both(model, seed=5)
    out = {}
    for name, m in ms.items():
        lib = m.lib
        free, clamp = initial_states(m, 13, (4,))
        sched = lib.SamplingSchedule(3, 4, 2)
        to_sample = _all_nodes(m)
        observer = lib.StateObserver(to_sample)

        def calls(keys, free, lib=lib, m=m, sched=sched, to_sample=to_sample, observer=observer):
            one = [x[0] for x in free]
            singles = [lib.sample_single_block(jax.random.fold_in(keys[0], b), one, clamp, m.program, b, None)[0] for b in range(len(one))]
            swept = lib.sample_blocks(keys[1], list(one), clamp, m.program, [None] * len(one))[0]
            states = jax.vmap(lambda k, f: lib.sample_states(k, m.program, sched, f, clamp, to_sample))(keys, free)
            carry, observed = lib.sample_with_observation(keys[2], m.program, sched, one, clamp, observer.init(), observer)
            return singles, swept, states, observed, carry

        out[name] = jax.jit(calls)(jax.random.split(jax.random.key(8), 4), free)
        assert out[name][-1] is None
    _assert_same(out["thrml"], out["distthrml"], f"{model}: the four sampling functions")


@pytest.mark.parametrize(
    "schedule", [(2, 3, 0)] + [pytest.param(x, marks=SLOW) for x in ((0, 1, 1), (3, 1, 2), (0, 4, 1), (1, 3, 3))]
)
def test_schedule_edge_cases_equal_thrml(schedule) -> None:
    """THRML's key splitting across the schedule, including one sample with and without warm-up,
    no warm-up, and zero sweeps per sample: the samples equal thrml's."""
    ms = _both("mixed", seed=7)
    out = {}
    for name, m in ms.items():
        free, clamp = initial_states(m, 17)
        sched = m.lib.SamplingSchedule(*schedule)
        out[name] = jax.jit(lambda k: m.lib.sample_states(k, m.program, sched, free, clamp, _all_nodes(m)))(jax.random.key(4))
    _assert_same(out["thrml"], out["distthrml"], f"schedule {schedule}")


@pytest.mark.parametrize(
    "model, parts",
    [("mixed", (2,)), pytest.param("mixed", (1, 4), marks=SLOW)]
    + [pytest.param(m, (1, 2, 4), marks=SLOW) for m in ("spin", "categorical")],
)
def test_sharded_thrml_stream_equals_thrml(model: str, parts: tuple[int, ...]) -> None:
    """Sharded over 1, 2 and 4 parts (METIS), a THRML-stream program returns, for one key per
    chain, thrml's `jax.vmap(sample_states)` samples bit for bit: every shard draws its rows'
    numbers from the block key and the rows' positions in the block."""
    ms = _both(model, seed=9)
    schedule = (2, 3, 2)
    n_chains = 4
    t, d = ms["thrml"], ms["distthrml"]
    free, clamp = initial_states(t, 19, (n_chains,))
    keys = jax.random.split(jax.random.key(12), n_chains)
    sched = thrml.SamplingSchedule(*schedule)
    expected = jax.jit(jax.vmap(lambda k, f: thrml.sample_states(k, t.program, sched, f, clamp, _all_nodes(t))))(keys, free)
    for n_parts in parts:
        sharded = distthrml.shard_program(d.program, n_parts)
        got = distthrml.sample_states(keys, sharded, distthrml.SamplingSchedule(*schedule), free, clamp, _all_nodes(d))
        _assert_same(expected, got, f"{model}: {n_parts} parts")


class _CustomSpin:
    """A sampler with only `sample` (THRML's interface), built for either library."""

    @staticmethod
    def make(lib):
        class Heat(lib.AbstractConditionalSampler):
            def sample(self, key, interactions, active_flags, states, sampler_state, output_sd):
                field = jnp.zeros(output_sd.shape, jnp.float32)
                for inter, active, state in zip(interactions, active_flags, states):
                    spins = [2 * s.astype(jnp.float32) - 1 for s in state]
                    prod = jnp.prod(jnp.stack(spins, -1), -1) if spins else 1.0
                    field = field + jnp.sum(inter.weights * active * prod, axis=-1)
                u = jax.random.uniform(key, output_sd.shape)
                return u < jax.nn.sigmoid(2.0 * field), sampler_state

        return Heat()


@SLOW
def test_custom_sampler_sharded_equals_thrml() -> None:
    """The custom sampler of the next test, sharded over 2 and 4 parts, equals thrml."""
    _custom_sampler_case(parts=(2, 4))


def test_custom_sampler_unsharded_and_sharded_equal_thrml() -> None:
    """A custom sampler that only implements `sample`: unsharded the engine calls it with THRML's
    block keys (equal to thrml); sharded, the default `sample_rows` runs it on the whole block and
    keeps the shard's rows, so 3 parts equal thrml too."""
    _custom_sampler_case(parts=(3,))


def _custom_sampler_case(parts: tuple[int, ...]) -> None:
    out = {}
    for name, lib in LIBS.items():
        m = build_model(lib, 10, 0, seed=2)
        groups = [g for f in m.factors for g in f.to_interaction_groups()]
        kwargs = {"rng": "thrml"} if lib is distthrml else {}
        samplers = [_CustomSpin.make(lib)] * len(m.spec.free_blocks)
        out[name] = (m, lib.BlockSamplingProgram(m.spec, samplers, groups, **kwargs))
    (mt, pt), (md, pd) = out["thrml"], out["distthrml"]
    free, clamp = initial_states(mt, 3, (2,))
    keys = jax.random.split(jax.random.key(6), 2)
    sched = (2, 3, 1)

    def run(lib, m, program):
        return jax.jit(jax.vmap(lambda k, f: lib.sample_states(k, program, lib.SamplingSchedule(*sched), f, clamp, _all_nodes(m))))(keys, free)

    expected = run(thrml, mt, pt)
    _assert_same(expected, run(distthrml, md, pd), "custom sampler unsharded")
    for n_parts in parts:
        got = distthrml.sample_states(keys, distthrml.shard_program(pd, n_parts), distthrml.SamplingSchedule(*sched), free, clamp, _all_nodes(md))
        _assert_same(expected, got, f"custom sampler, {n_parts} parts")


# =============================================================================================
# the switches
# =============================================================================================


def test_rng_switches_per_program_and_process() -> None:
    """`rng=` fixes a program's stream; `set_rng` sets the default of programs built afterwards
    (programs already built keep theirs); `with_rng` gives the other stream without lowering
    again; a bad name is refused."""
    previous = distthrml.get_rng()
    try:
        distthrml.set_rng("per_node")
        m = build_model(distthrml, 4, 0, seed=0)
        assert m.program.rng == "thrml"  # explicit rng= wins
        spec, samplers = m.program.gibbs_spec, m.program.samplers
        default = distthrml.BlockSamplingProgram(spec, samplers, [])
        assert default.rng == "per_node"
        distthrml.set_rng("thrml")
        assert default.rng == "per_node" and distthrml.BlockSamplingProgram(spec, samplers, []).rng == "thrml"
        assert default.with_rng("thrml").rng == "thrml" and default.rng == "per_node"
        with pytest.raises(distthrml.ProgramError, match="per_node"):
            distthrml.set_rng("fast")
        with pytest.raises(distthrml.ProgramError):
            distthrml.BlockSamplingProgram(spec, samplers, [], rng="numpy")
    finally:
        distthrml.set_rng(None)
    assert distthrml.get_rng() == previous


@pytest.mark.parametrize("value", ["thrml", pytest.param("per_node", marks=SLOW)])
def test_environment_variable_sets_the_default(value: str) -> None:
    """`DISTTHRML_RNG` takes effect in a program that does not mention streams at all."""
    code = (
        "import distthrml, jax.numpy as jnp\n"
        "from distthrml.models import IsingEBM, IsingSamplingProgram\n"
        "n = [distthrml.SpinNode() for _ in range(3)]\n"
        "m = IsingEBM(n, [(n[0], n[1])], jnp.zeros(3), jnp.ones(1), jnp.array(1.0))\n"
        "print(IsingSamplingProgram(m, [distthrml.Block(n[::2]), distthrml.Block(n[1:2])], []).rng)\n"
    )
    env = {**os.environ, "DISTTHRML_RNG": value, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == value
