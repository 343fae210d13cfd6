"""Side-by-side checks of distthrml against thrml 0.1.4 (the reference implementation).

Every test builds the same model in both libraries from the same seeds (see ``reference_models``).
Deterministic functions (``hinton_init``, energies, block/global state bookkeeping, padded program
structure, samplers without randomness) must agree exactly. Sampled quantities here use distthrml's
default per-node random stream and are not bit-identical to thrml's (``tests/test_thrml_stream.py``
checks the THRML stream, which is, bit for bit); they are compared with
exact enumeration and with each other through t-tests over independent chains, each assertion with a
Bonferroni-corrected family-wise false-failure rate of 1e-4 (``reference_models.ALPHA``).
"""

from __future__ import annotations

from types import ModuleType, SimpleNamespace
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import thrml
from jaxtyping import Array
from scipy import stats

import distthrml
from reference_models import (
    assert_not_significant,
    build_ising,
    build_mixed_discrete,
    build_potts,
    build_skip_grid_program,
    coloring_groups,
    exact_clamped_ising_moments,
    exact_ising_moments,
    exact_mixed_marginals,
    make_mixed_discrete_params,
    one_sample_pvalues,
    random_graph,
    two_sample_pvalues,
)

LIBS: dict[str, ModuleType] = {"thrml": thrml, "distthrml": distthrml}


def _shapes_dtypes(tree: Any) -> Any:
    return jax.tree.map(lambda x: (tuple(np.shape(x)), np.asarray(x).dtype), tree)


# =============================================================================================
# hinton_init
# =============================================================================================


@pytest.mark.parametrize("batch_shape", [(), (3,), (2, 4)])
def test_hinton_init_bit_identical(batch_shape: tuple[int, ...]) -> None:
    """``hinton_init`` is deterministic and specified exactly: block i uses ``jax.random.split(key,
    len(blocks))[i]`` and ``jax.random.bernoulli(k, sigmoid(beta * bias), (*batch_shape, len(block)))``.
    Both libraries must return bit-identical bool arrays equal to that formula (blocks given in an
    order unrelated to the model's node order)."""
    rng = np.random.default_rng(0)
    biases = rng.normal(0, 1.5, 12).astype(np.float32)
    edge_index = np.array([(i, i + 1) for i in range(11)])
    weights = rng.normal(0, 1, 11).astype(np.float32)
    beta = 0.7
    key = jax.random.key(123)
    order = [[3, 0, 7], [11, 5, 1, 9, 2], [4], [10, 8, 6]]
    outs = {}
    for name, lib in LIBS.items():
        nodes, _, model = build_ising(lib, biases, edge_index, weights, beta)
        blocks = [lib.Block([nodes[i] for i in o]) for o in order]
        outs[name] = lib.models.hinton_init(key, model, blocks, batch_shape)
    keys = jax.random.split(key, len(order))
    for i, o in enumerate(order):
        probs = jax.nn.sigmoid(jnp.float32(beta) * jnp.asarray(biases)[jnp.array(o)])
        expected = np.asarray(jax.random.bernoulli(keys[i], p=probs, shape=(*batch_shape, len(o))))
        for name in LIBS:
            got = np.asarray(outs[name][i])
            assert got.dtype == np.bool_, name
            assert got.shape == (*batch_shape, len(o)), name
            np.testing.assert_array_equal(got, expected, err_msg=f"{name} block {i}")
    assert len(outs["thrml"]) == len(outs["distthrml"]) == len(order)


# =============================================================================================
# sampled moments vs exact enumeration and vs thrml
# =============================================================================================


def _ising_params(seed: int, n: int) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    edge_index = random_graph(n, 0.3, seed)
    return SimpleNamespace(
        n=n,
        edge_index=edge_index,
        biases=rng.normal(0, 0.3, n).astype(np.float32),
        weights=rng.normal(0, 0.4, len(edge_index)).astype(np.float32),
        beta=0.8,
    )


def _ising_chain_moments(lib: ModuleType, p: SimpleNamespace, n_chains: int, schedule_args: tuple, seed: int):
    """Per-chain ``estimate_moments`` output (first [n_chains, n], second [n_chains, E]) from ``lib``."""
    nodes, edges, model = build_ising(lib, p.biases, p.edge_index, p.weights, p.beta)
    blocks = [lib.Block([nodes[i] for i in g]) for g in coloring_groups(p.n, p.edge_index)]
    program = lib.models.IsingSamplingProgram(model, blocks, [])
    schedule = lib.SamplingSchedule(*schedule_args)
    k_init, k_run = jax.random.split(jax.random.key(seed))
    init = lib.models.hinton_init(k_init, model, blocks, (n_chains,))
    keys = jax.random.split(k_run, n_chains)
    first, second = jax.jit(
        jax.vmap(lambda k, i: lib.models.estimate_moments(k, nodes, edges, program, schedule, i, []))
    )(keys, init)
    return np.asarray(first), np.asarray(second)


def test_ising_moments_match_exact_and_thrml() -> None:
    """``estimate_moments`` on a random 14-spin Ising model (connected G(14, 0.3), biases ~N(0, 0.3),
    couplings ~N(0, 0.4), beta=0.8), 128 chains x 300 samples (every 2 sweeps) after 50 warm-up sweeps.

    Per library: chain means of ``<s_i>`` and ``<s_i s_j>`` (per edge) t-tested against exact
    enumeration over 2**14 states; between libraries: Welch t-tests of the chain means. Each of the three
    assertions has family-wise false-failure rate 1e-4. Shapes/dtypes of the outputs must agree.
    """
    p = _ising_params(seed=5, n=14)
    exact_first, exact_second = exact_ising_moments(p.biases, p.edge_index, p.weights, p.beta)
    res = {name: _ising_chain_moments(lib, p, 128, (50, 300, 2), seed=17) for name, lib in LIBS.items()}
    assert _shapes_dtypes(res["thrml"]) == _shapes_dtypes(res["distthrml"])
    assert res["thrml"][0].shape == (128, p.n) and res["thrml"][1].shape == (128, len(p.edge_index))
    for name, (first, second) in res.items():
        pv = np.concatenate([one_sample_pvalues(first, exact_first), one_sample_pvalues(second, exact_second)])
        assert_not_significant(pv, f"{name}: Ising moments vs exact enumeration")
    pv = np.concatenate(
        [two_sample_pvalues(res["thrml"][0], res["distthrml"][0]), two_sample_pvalues(res["thrml"][1], res["distthrml"][1])]
    )
    assert_not_significant(pv, "Ising moments: distthrml vs thrml")


def _mixed_discrete_chain_marginals(lib: ModuleType, n_chains: int, schedule_args: tuple, seed: int):
    """Per-chain ``P(s_i=+1)`` [n_chains, n_spin] and ``P(c_a=k)`` [n_chains, n_cat, K] from ``lib``."""
    p = make_mixed_discrete_params(seed=3)
    m = build_mixed_discrete(lib, p)
    schedule = lib.SamplingSchedule(*schedule_args)
    key = jax.random.key(seed)
    init = []
    for block in m.spec.free_blocks:
        key, sub = jax.random.split(key)
        if isinstance(block.nodes[0], lib.SpinNode):
            init.append(jax.random.bernoulli(sub, 0.5, (n_chains, len(block))))
        else:
            init.append(jax.random.randint(sub, (n_chains, len(block)), 0, p.n_states, dtype=jnp.uint8))
    keys = jax.random.split(key, n_chains)
    spins, cats = jax.jit(
        jax.vmap(
            lambda k, i: lib.sample_states(k, m.program, schedule, i, [], [lib.Block(m.spins), lib.Block(m.cats)])
        )
    )(keys, init)
    assert spins.dtype == jnp.bool_ and cats.dtype == jnp.uint8
    cats = np.asarray(cats)
    p_cat = np.stack([(cats == k).mean(1) for k in range(p.n_states)], axis=-1)
    return np.asarray(spins).mean(1), p_cat, p


def test_mixed_spin_categorical_marginals_match_exact_and_thrml() -> None:
    """A heterogeneous discrete model sampled with superblocks ``(spin block, categorical block)`` per
    color: spin biases and a spin ring (``SpinEBMFactor``), categorical biases and a ring of *asymmetric*
    3x3 couplings (``CategoricalEBMFactor``, exercising the transposed head direction) and spin-categorical
    terms (``DiscreteEBMFactor`` with weights [b, 3]); ``SpinGibbsConditional`` / ``CategoricalGibbsConditional``.

    96 chains x 200 samples; per-chain marginals ``P(s_i=+1)`` and ``P(c_a=k)`` are t-tested against exact
    enumeration (2**5 * 3**4 states) for each library and compared between libraries (Welch), each
    assertion at family-wise false-failure rate 1e-4.
    """
    res = {name: _mixed_discrete_chain_marginals(lib, 96, (30, 200, 2), seed=23) for name, lib in LIBS.items()}
    p = res["thrml"][2]
    exact_spin, exact_cat = exact_mixed_marginals(p)
    for name, (ps, pc, _) in res.items():
        pv = np.concatenate([one_sample_pvalues(ps, exact_spin), one_sample_pvalues(pc, exact_cat).ravel()])
        assert_not_significant(pv, f"{name}: spin/categorical marginals vs exact")
    pv = np.concatenate(
        [
            two_sample_pvalues(res["thrml"][0], res["distthrml"][0]),
            two_sample_pvalues(res["thrml"][1], res["distthrml"][1]).ravel(),
        ]
    )
    assert_not_significant(pv, "spin/categorical marginals: distthrml vs thrml")


def _potts_equal_fraction(lib: ModuleType, n_batches: int) -> np.ndarray:
    """Per-chain fraction of equal neighbour pairs, averaged over the last 50 of the docs' 100 samples."""
    m = build_potts(lib)
    key = jax.random.key(4242)
    init_state = []
    for block in m.spec.free_blocks:
        key, subkey = jax.random.split(key, 2)
        init_state.append(
            jax.random.randint(subkey, (n_batches, len(block.nodes)), minval=0, maxval=m.n_cats, dtype=jnp.uint8)
        )
    schedule = lib.SamplingSchedule(n_warmup=0, n_samples=100, steps_per_sample=5)
    keys = jax.random.split(key, n_batches)
    samples = jax.jit(jax.vmap(lambda i, k: lib.sample_states(k, m.prog, schedule, i, [], [lib.Block(m.nodes)])))(
        init_state, keys
    )
    x = np.asarray(samples[0])
    return (x[:, 50:, m.ui] == x[:, 50:, m.vi]).mean(axis=(1, 2))


def test_potts_domain_formation_matches_thrml() -> None:
    """The docs' Potts setting (20x20, 5 categories, beta=1, 100 samples every 5 sweeps from a uniform
    start) with 32 chains per library: the per-chain equal-neighbour fraction (thrml: ~0.46, chain sd
    ~0.004) must agree between the libraries (Welch t-test, false-failure rate 1e-4) and be far above
    the 0.2 of independent sites."""
    a = _potts_equal_fraction(thrml, 32)
    b = _potts_equal_fraction(distthrml, 32)
    assert a.mean() > 0.35 and b.mean() > 0.35, (a.mean(), b.mean())
    assert_not_significant(two_sample_pvalues(a, b), "Potts equal-neighbour fraction: distthrml vs thrml")


def _skip_grid_chain_means(lib: ModuleType, n_chains: int, seed: int):
    """Per-chain means of spins (+-1, in grid order) and continuous values from a small mixed skip-grid."""
    m = build_skip_grid_program(lib, 8, 8, seed=seed, skips=[1, 3])
    schedule = lib.SamplingSchedule(50, 100, 2)
    key = jax.random.key(seed + 1)
    init = []
    for block in m.block_spec.free_blocks:
        key, sub = jax.random.split(key)
        if isinstance(block.nodes[0], m.tk.ContinuousNode):
            init.append(0.1 * jax.random.normal(sub, (n_chains, len(block))))
        else:
            init.append(jax.random.bernoulli(sub, 0.5, (n_chains, len(block))))
    keys = jax.random.split(key, n_chains)
    spins, cont = jax.jit(
        jax.vmap(
            lambda k, i: lib.sample_states(
                k, m.program, schedule, i, [], [lib.Block(m.spin_nodes), lib.Block(m.cont_nodes)]
            )
        )
    )(keys, init)
    assert spins.dtype == jnp.bool_ and cont.dtype == jnp.float32
    s = 2 * np.asarray(spins, np.float64) - 1
    c = np.asarray(cont, np.float64)
    return np.concatenate([s.mean(1), c.mean(1), (c**2).mean(1)], axis=1)


def test_mixed_skip_grid_distribution_matches_thrml() -> None:
    """The docs' mixed spin/continuous model (custom ``GaussianSampler``, ``ExtendedSpinGibbsSampler``,
    superblocks, user-defined interactions) on an 8x8 grid with skips [1, 3]: per-node chain means of
    ``s_i``, ``x_i`` and ``x_i**2`` over 64 chains x 100 samples agree between the libraries (Welch
    t-tests, family-wise false-failure rate 1e-4)."""
    a = _skip_grid_chain_means(thrml, 64, seed=11)
    b = _skip_grid_chain_means(distthrml, 64, seed=11)
    assert a.shape == b.shape
    assert_not_significant(two_sample_pvalues(a, b), "mixed skip-grid node statistics: distthrml vs thrml")


# =============================================================================================
# KL gradients vs exact
# =============================================================================================


def _kl_params(seed: int = 2) -> SimpleNamespace:
    """6 visible (0..5) + 4 hidden (6..9) spins: all visible-hidden edges plus a few intra-layer ones."""
    rng = np.random.default_rng(seed)
    n_vis, n_hid = 6, 4
    edges = [(v, n_vis + h) for v in range(n_vis) for h in range(n_hid)]
    edges += [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    edge_index = np.array(edges)
    return SimpleNamespace(
        n_vis=n_vis,
        n=n_vis + n_hid,
        edge_index=edge_index,
        biases=rng.normal(0, 0.3, n_vis + n_hid).astype(np.float32),
        weights=rng.normal(0, 0.5, len(edge_index)).astype(np.float32),
        beta=0.9,
        data=rng.random((8, n_vis)) < 0.5,
    )


def _exact_kl_grad(p: SimpleNamespace, visible: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``(grad_w, grad_b) = -beta * (<.>_data-clamped - <.>_model)`` by enumeration."""
    pos_b, pos_w = [], []
    for row in np.asarray(p.data):
        b, w = exact_clamped_ising_moments(p.biases, p.edge_index, p.weights, p.beta, visible, 2.0 * row - 1.0)
        pos_b.append(b)
        pos_w.append(w)
    neg_b, neg_w = exact_ising_moments(p.biases, p.edge_index, p.weights, p.beta)
    return -p.beta * (np.mean(pos_w, 0) - neg_w), -p.beta * (np.mean(pos_b, 0) - neg_b)


def _grad_pvalues(grad: np.ndarray, exact: np.ndarray, pos: np.ndarray, neg: np.ndarray, beta: float) -> np.ndarray:
    """p-values of ``grad == exact`` with the standard error derived from the returned per-chain moments.

    ``pos`` is [n_chains_pos, batch, k] (chains are independent for each batch element), ``neg`` is
    [n_chains_neg, k]. The variance of the gradient is the sum of one term per batch element (positive
    phase) and one for the negative phase; the t-test uses the Welch-Satterthwaite degrees of freedom.
    With a single positive chain (positive moments computed from the data) that phase is exact.
    """
    pos = np.asarray(pos, np.float64)
    neg = np.asarray(neg, np.float64)
    n_pos, batch = pos.shape[0], pos.shape[1]
    n_neg = neg.shape[0]
    terms = [neg.var(0, ddof=1) / n_neg]
    dofs = [n_neg - 1]
    if n_pos > 1:
        terms += list(pos.var(0, ddof=1) / (n_pos * batch**2))
        dofs += [n_pos - 1] * batch
    terms = np.stack(terms)
    var = terms.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = var**2 / np.sum(terms**2 / np.array(dofs, np.float64)[:, None], axis=0)
        t = (np.asarray(grad, np.float64) - exact) / (abs(beta) * np.sqrt(var))
    df = np.where(np.isfinite(df), df, n_neg - 1)
    return 2 * stats.t.sf(np.abs(t), df=df)


def _run_kl(lib: ModuleType, p: SimpleNamespace, hidden: bool, seed: int):
    nodes, edges, model = build_ising(lib, p.biases, p.edge_index, p.weights, p.beta)
    vis = nodes[: p.n_vis]
    neg_blocks = [lib.Block([nodes[i] for i in g]) for g in coloring_groups(p.n, p.edge_index)]
    if hidden:
        hid_edges = np.array([e for e in p.edge_index if e[0] >= p.n_vis and e[1] >= p.n_vis]) - p.n_vis
        pos_groups = coloring_groups(p.n - p.n_vis, hid_edges)
        pos_blocks = [lib.Block([nodes[p.n_vis + i] for i in g]) for g in pos_groups]
    else:
        pos_blocks = []
    schedule = lib.SamplingSchedule(30, 150, 2)
    spec = lib.models.IsingTrainingSpec(model, [lib.Block(vis)], [], pos_blocks, neg_blocks, schedule, schedule)
    key = jax.random.key(seed)
    k1, k2, k3 = jax.random.split(key, 3)
    batch = p.data.shape[0]
    init_pos = lib.models.hinton_init(k1, model, pos_blocks, (16, batch)) if hidden else []
    init_neg = lib.models.hinton_init(k2, model, neg_blocks, (160,))
    data = [jnp.asarray(p.data)]
    kl = jax.jit(lambda k, d, ip, ineg: lib.models.estimate_kl_grad(k, spec, nodes, edges, d, [], ip, ineg))
    return kl(k3, data, init_pos, init_neg)


def test_kl_grad_with_hidden_units_matches_exact() -> None:
    """``estimate_kl_grad`` for 6 visible + 4 hidden spins (29 edges, beta=0.9) and a batch of 8 data
    vectors, 16 positive chains per data vector and 160 negative chains (150 samples every 2 sweeps).

    For both libraries: the output structure/shapes/dtypes agree with thrml's; visible first moments in
    the positive phase equal the data exactly; the gradients equal ``-beta*(<.>_+ - <.>_-)`` of the
    returned moments; and the gradients agree with the exact gradient (positive phase: exact
    conditional expectations given each data vector; negative phase: exact model expectations) within
    a t-test whose standard error comes from the per-chain moments (39 quantities, family-wise
    false-failure rate 1e-4 per library).
    """
    p = _kl_params()
    exact_w, exact_b = _exact_kl_grad(p, list(range(p.n_vis)))
    outs = {name: _run_kl(lib, p, hidden=True, seed=31) for name, lib in LIBS.items()}
    assert _shapes_dtypes(outs["thrml"]) == _shapes_dtypes(outs["distthrml"])
    for name, (gw, gb, (pb, pw), (nb, nw)) in outs.items():
        assert gw.shape == (len(p.edge_index),) and gb.shape == (p.n,)
        assert pb.shape == (16, 8, p.n) and nb.shape == (160, p.n)
        np.testing.assert_array_equal(
            np.asarray(pb)[:, :, : p.n_vis], np.broadcast_to(2.0 * p.data - 1.0, (16, 8, p.n_vis)), err_msg=name
        )
        np.testing.assert_allclose(gb, -p.beta * (np.mean(pb, (0, 1)) - np.mean(nb, 0)), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(gw, -p.beta * (np.mean(pw, (0, 1)) - np.mean(nw, 0)), rtol=1e-5, atol=1e-5)
        pv = np.concatenate([_grad_pvalues(gw, exact_w, pw, nw, p.beta), _grad_pvalues(gb, exact_b, pb, nb, p.beta)])
        assert_not_significant(pv, f"{name}: KL gradient vs exact")


def test_kl_grad_without_hidden_units_positive_phase_is_exact() -> None:
    """``init_state_positive=[]`` (every node is a data node, no positive-phase sampling): the positive
    moments are computed from the data directly, so they must equal ``2*data-1`` and its edge products
    exactly, with shapes ``[1, batch, n]`` / ``[1, batch, E]``; the gradients match the exact gradient
    (only the negative phase is sampled; t-test at family-wise false-failure rate 1e-4)."""
    p0 = _kl_params()
    n = p0.n_vis
    edge_index = np.array([(i, j) for i in range(n) for j in range(i + 1, n)])
    rng = np.random.default_rng(9)
    p = SimpleNamespace(
        n_vis=n,
        n=n,
        edge_index=edge_index,
        biases=p0.biases[:n],
        weights=rng.normal(0, 0.3, len(edge_index)).astype(np.float32),
        beta=p0.beta,
        data=p0.data,
    )
    spins = 2.0 * p.data - 1.0
    exact_pos_b = spins.mean(0)
    exact_pos_w = (spins[:, edge_index[:, 0]] * spins[:, edge_index[:, 1]]).mean(0)
    neg_b, neg_w = exact_ising_moments(p.biases, p.edge_index, p.weights, p.beta)
    exact_b, exact_w = -p.beta * (exact_pos_b - neg_b), -p.beta * (exact_pos_w - neg_w)
    outs = {name: _run_kl(lib, p, hidden=False, seed=37) for name, lib in LIBS.items()}
    assert _shapes_dtypes(outs["thrml"]) == _shapes_dtypes(outs["distthrml"])
    for name, (gw, gb, (pb, pw), (nb, nw)) in outs.items():
        np.testing.assert_array_equal(np.asarray(pb), spins[None], err_msg=name)
        np.testing.assert_array_equal(
            np.asarray(pw), (spins[:, edge_index[:, 0]] * spins[:, edge_index[:, 1]])[None], err_msg=name
        )
        pv = np.concatenate([_grad_pvalues(gw, exact_w, pw, nw, p.beta), _grad_pvalues(gb, exact_b, pb, nb, p.beta)])
        assert_not_significant(pv, f"{name}: KL gradient (no hidden units) vs exact")


# =============================================================================================
# energies
# =============================================================================================


def _energy_setup(lib: ModuleType, seed: int = 4) -> SimpleNamespace:
    """Spin/categorical factors of every discrete factor class, state blocks in a scrambled order."""
    rng = np.random.default_rng(seed)
    S = [lib.SpinNode() for _ in range(12)]
    C = [lib.CategoricalNode() for _ in range(12)]
    debm = lib.models.discrete_ebm
    Bk = lib.Block
    w = lambda *shape: jnp.asarray(rng.normal(0, 1, shape).astype(np.float32))  # noqa: E731
    factors = [
        debm.SpinEBMFactor([Bk(S[0:4])], w(4)),
        debm.SpinEBMFactor([Bk(S[0:4]), Bk(S[4:8])], w(4)),
        debm.SpinEBMFactor([Bk(S[0:3]), Bk(S[3:6]), Bk(S[6:9])], w(3)),
        debm.CategoricalEBMFactor([Bk(C[0:4])], w(4, 3)),
        debm.CategoricalEBMFactor([Bk(C[0:4]), Bk(C[4:8])], w(4, 3, 4)),
        debm.SquareCategoricalEBMFactor([Bk(C[8:12]), Bk(C[0:4])], w(4, 3, 3)),
        debm.DiscreteEBMFactor([Bk(S[8:12])], [Bk(C[4:8]), Bk(C[8:12])], w(4, 3, 4)),
        debm.SquareDiscreteEBMFactor([Bk(S[0:2]), Bk(S[2:4])], [Bk(C[0:2])], w(2, 3)),
    ]
    # (spin index groups, categorical index groups) of each factor, for the numpy reference
    groups = [
        ([range(0, 4)], []),
        ([range(0, 4), range(4, 8)], []),
        ([range(0, 3), range(3, 6), range(6, 9)], []),
        ([], [range(0, 4)]),
        ([], [range(0, 4), range(4, 8)]),
        ([], [range(8, 12), range(0, 4)]),
        ([range(8, 12)], [range(4, 8), range(8, 12)]),
        ([range(0, 2), range(2, 4)], [range(0, 2)]),
    ]
    s_order = [list(range(6, 12)), list(range(0, 6))]
    c_order = [list(range(0, 12, 2)), list(range(1, 12, 2))]
    blocks = [Bk([S[i] for i in s_order[0]]), Bk([C[i] for i in c_order[0]]), Bk([S[i] for i in s_order[1]]), Bk([C[i] for i in c_order[1]])]
    return SimpleNamespace(factors=factors, groups=groups, blocks=blocks, s_order=s_order, c_order=c_order)


def _numpy_factor_energy(weights: np.ndarray, groups: tuple, s: np.ndarray, c: np.ndarray) -> float:
    spin = np.ones(weights.shape[0])
    for g in groups[0]:
        spin = spin * (2.0 * s[list(g)] - 1.0)
    idx = (np.arange(weights.shape[0]),) + tuple(c[list(g)] for g in groups[1])
    return float(-np.sum(np.asarray(weights, np.float64)[idx] * spin))


def test_discrete_factor_and_ising_energies_agree() -> None:
    """Energies are deterministic: for 5 random states, every discrete factor class (spin bias/pair/cubic,
    categorical bias, non-square categorical pair, square categorical, mixed spin-categorical, square
    mixed) gives the same ``factor.energy(global_state, BlockSpec)`` in both libraries and equals
    ``-sum_b prod(s) W[b, c...]`` computed in numpy; ``FactorizedEBM.energy`` (under ``jax.vmap`` over
    states) is their sum; ``IsingEBM.energy`` equals ``-beta (b.s + sum J s s)``."""
    rng = np.random.default_rng(8)
    n_states = 5
    s_all = rng.random((n_states, 12)) < 0.5
    c_all = rng.integers(0, 3, (n_states, 12)).astype(np.uint8)
    results = {}
    for name, lib in LIBS.items():
        ex = _energy_setup(lib)
        state = [
            jnp.asarray(s_all[:, ex.s_order[0]]),
            jnp.asarray(c_all[:, ex.c_order[0]]),
            jnp.asarray(s_all[:, ex.s_order[1]]),
            jnp.asarray(c_all[:, ex.c_order[1]]),
        ]
        spec = lib.BlockSpec(ex.blocks, {lib.SpinNode: jax.ShapeDtypeStruct((), jnp.bool_), lib.CategoricalNode: jax.ShapeDtypeStruct((), jnp.uint8)})
        per_factor = []
        for f in ex.factors:
            e = jax.jit(jax.vmap(lambda st: f.energy(lib.block_state_to_global(st, spec), spec)))(state)
            per_factor.append(np.asarray(e))
        ebm = lib.models.FactorizedEBM(ex.factors)
        total = np.asarray(jax.jit(jax.vmap(lambda st: ebm.energy(st, ex.blocks)))(state))
        results[name] = (np.stack(per_factor), total)
        expected = np.array(
            [
                [_numpy_factor_energy(np.asarray(f.weights), g, s_all[k], c_all[k]) for k in range(n_states)]
                for f, g in zip(ex.factors, ex.groups)
            ]
        )
        np.testing.assert_allclose(results[name][0], expected, rtol=1e-5, atol=1e-4, err_msg=name)
        np.testing.assert_allclose(total, expected.sum(0), rtol=1e-5, atol=1e-4, err_msg=name)
    np.testing.assert_allclose(results["thrml"][0], results["distthrml"][0], rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(results["thrml"][1], results["distthrml"][1], rtol=1e-6, atol=1e-5)

    p = _ising_params(seed=6, n=10)
    s = rng.random((n_states, p.n)) < 0.5
    spins = 2.0 * s - 1.0
    expected = -p.beta * (
        spins @ p.biases.astype(np.float64)
        + (spins[:, p.edge_index[:, 0]] * spins[:, p.edge_index[:, 1]]) @ p.weights.astype(np.float64)
    )
    ising = {}
    for name, lib in LIBS.items():
        nodes, _, model = build_ising(lib, p.biases, p.edge_index, p.weights, p.beta)
        blocks = [lib.Block(nodes[5:]), lib.Block(nodes[:5])]
        st = [jnp.asarray(s[:, 5:]), jnp.asarray(s[:, :5])]
        ising[name] = np.asarray(jax.jit(jax.vmap(lambda x: model.energy(x, blocks)))(st))
        assert ising[name].shape == (n_states,)
        np.testing.assert_allclose(ising[name], expected, rtol=1e-5, atol=1e-4, err_msg=name)
    np.testing.assert_allclose(ising["thrml"], ising["distthrml"], rtol=1e-6, atol=1e-5)


# =============================================================================================
# block / global state bookkeeping
# =============================================================================================


def _bookkeeping_setup(lib: ModuleType) -> SimpleNamespace:
    class VecNode(lib.AbstractNode):
        pass

    sds = {
        lib.SpinNode: jax.ShapeDtypeStruct((), jnp.bool_),
        lib.CategoricalNode: jax.ShapeDtypeStruct((), jnp.uint8),
        VecNode: {"x": jax.ShapeDtypeStruct((2,), jnp.float32), "n": jax.ShapeDtypeStruct((), jnp.int32)},
    }
    S = [lib.SpinNode() for _ in range(7)]
    C = [lib.CategoricalNode() for _ in range(2)]
    V = [VecNode() for _ in range(3)]
    blocks = [lib.Block(S[:3]), lib.Block(C), lib.Block(V[:2]), lib.Block(S[3:]), lib.Block(V[2:])]
    rng = np.random.default_rng(1)
    state = [
        jnp.asarray(rng.random(3) < 0.5),
        jnp.asarray(np.array([2, 7], np.uint8)),
        {"x": jnp.asarray(rng.normal(size=(2, 2)).astype(np.float32)), "n": jnp.array([4, -1], jnp.int32)},
        jnp.asarray(rng.random(4) < 0.5),
        {"x": jnp.asarray(rng.normal(size=(1, 2)).astype(np.float32)), "n": jnp.array([9], jnp.int32)},
    ]
    return SimpleNamespace(VecNode=VecNode, sds=sds, S=S, C=C, V=V, blocks=blocks, state=state)


def test_block_global_state_bookkeeping_agrees() -> None:
    """``BlockSpec``/``block_state_to_global``/``get_node_locations``/``from_global_state`` with three SD
    types (bool spins, uint8 categoricals, a dict pytree node). In both libraries: the global state has
    one entry per SD type, blocks of the same type are concatenated in block order (spins at positions
    0..2 then 3..6), every block round-trips through its node locations, and extracting scrambled node
    subsets gives the right values. Across libraries the per-type global arrays (matched by node type,
    since the order of SD types is an implementation detail), positions and extractions are identical."""
    out = {}
    for name, lib in LIBS.items():
        b = _bookkeeping_setup(lib)
        spec = lib.BlockSpec(b.blocks, b.sds)
        glob = lib.block_state_to_global(b.state, spec)
        assert isinstance(glob, list) and len(glob) == len(spec.global_sd_order) == 3
        locs = [lib.get_node_locations(block, spec) for block in b.blocks]
        assert locs[0][0] == locs[3][0] and locs[2][0] == locs[4][0]
        assert len({locs[0][0], locs[1][0], locs[2][0]}) == 3
        np.testing.assert_array_equal(locs[0][1], [0, 1, 2])
        np.testing.assert_array_equal(locs[3][1], [3, 4, 5, 6])
        np.testing.assert_array_equal(locs[2][1], [0, 1])
        np.testing.assert_array_equal(locs[4][1], [2])
        for (sd_i, pos), st in zip(locs, b.state):
            got = jax.tree.map(lambda x: np.asarray(x)[np.asarray(pos)], glob[sd_i])
            jax.tree.map(np.testing.assert_array_equal, got, jax.tree.map(np.asarray, st))
        by_type = {
            "spin": glob[locs[0][0]],
            "cat": glob[locs[1][0]],
            "vec": glob[locs[2][0]],
        }
        extract = [lib.Block([b.S[4], b.S[0], b.S[6]]), lib.Block([b.V[2], b.V[0]]), lib.Block([b.C[1]])]
        got = lib.from_global_state(glob, spec, extract)
        expected = [
            np.array([b.state[3][1], b.state[0][0], b.state[3][3]]),
            {"x": np.stack([b.state[4]["x"][0], b.state[2]["x"][0]]), "n": np.array([9, 4], np.int32)},
            np.array([7], np.uint8),
        ]
        assert _shapes_dtypes(got) == _shapes_dtypes(expected), name
        jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, got), expected)
        out[name] = (by_type, [np.asarray(l[1]) for l in locs], got)
    assert _shapes_dtypes(out["thrml"][0]) == _shapes_dtypes(out["distthrml"][0])
    jax.tree.map(np.testing.assert_array_equal, *[jax.tree.map(np.asarray, out[n][0]) for n in LIBS])
    for a, c in zip(out["thrml"][1], out["distthrml"][1]):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("batch_shape", [None, (2, 3)])
def test_make_empty_block_state_agrees(batch_shape: tuple[int, ...] | None) -> None:
    """``make_empty_block_state`` returns zeros of shape ``batch_shape + (len(block),) + leaf.shape`` with
    the node type's dtype (pytrees preserved), identically in both libraries, and the result passes
    ``verify_block_state`` (with ``block_axis=-1``)."""
    out = {}
    for name, lib in LIBS.items():
        b = _bookkeeping_setup(lib)
        st = lib.make_empty_block_state(b.blocks, b.sds, batch_shape) if batch_shape else lib.make_empty_block_state(b.blocks, b.sds)
        pre = tuple(batch_shape or ())
        expected = [
            ((*pre, 3), np.dtype(bool)),
            ((*pre, 2), np.dtype(np.uint8)),
            {"n": ((*pre, 2), np.dtype(np.int32)), "x": ((*pre, 2, 2), np.dtype(np.float32))},
            ((*pre, 4), np.dtype(bool)),
            {"n": ((*pre, 1), np.dtype(np.int32)), "x": ((*pre, 1, 2), np.dtype(np.float32))},
        ]
        assert _shapes_dtypes(st) == expected, name
        assert all(not np.any(np.asarray(x)) for x in jax.tree.leaves(st))
        assert lib.verify_block_state(b.blocks, st, b.sds) is None
        assert lib.verify_block_state(b.blocks, st, b.sds, block_axis=-1) is None
        out[name] = jax.tree.structure(st)
    assert out["thrml"] == out["distthrml"]


def _bad_states(b: SimpleNamespace) -> dict[str, tuple[list, int | None]]:
    good = b.state
    return {
        "wrong dtype (float spins)": ([good[0].astype(jnp.float32)] + good[1:], None),
        "wrong dtype (int32 categoricals)": ([good[0], good[1].astype(jnp.int32)] + good[2:], None),
        "wrong leaf shape": (good[:2] + [{"x": jnp.zeros((2, 3), jnp.float32), "n": good[2]["n"]}] + good[3:], None),
        "inconsistent batch in a pytree": (good[:2] + [{"x": good[2]["x"], "n": jnp.zeros((3,), jnp.int32)}] + good[3:], None),
        "missing pytree leaf": (good[:2] + [{"x": good[2]["x"]}] + good[3:], None),
        "wrong number of states": (good[:-1], None),
        "block length mismatch": ([good[0][:2]] + good[1:], -1),
    }


@pytest.mark.parametrize("case", list(_bad_states(_bookkeeping_setup(thrml)).keys()))
def test_verify_block_state_rejects_bad_states(case: str) -> None:
    """``verify_block_state`` returns None for a valid state and raises ``RuntimeError`` (as documented)
    for: a wrong dtype, a wrong trailing leaf shape, an inconsistent batch shape inside a pytree, a
    missing pytree leaf, a wrong number of states, and a block length that does not match
    ``block_axis`` -- in both libraries."""
    for name, lib in LIBS.items():
        b = _bookkeeping_setup(lib)
        assert lib.verify_block_state(b.blocks, b.state, b.sds) is None
        assert lib.verify_block_state(b.blocks, b.state, b.sds, block_axis=-1) is None
        states, axis = _bad_states(b)[case]
        with pytest.raises(RuntimeError):
            lib.verify_block_state(b.blocks, states, b.sds, block_axis=axis)


# =============================================================================================
# padded program structure: the docs' mixed skip-grid, built in both libraries
# =============================================================================================


def test_skip_grid_program_padding_identical() -> None:
    """The docs' 30x30 mixed spin/continuous skip-grid (skips 1, 3, 5; node types from
    ``random.Random(4242)``) built in both libraries yields the same padded program: for every free block
    and every interaction touching it, the interaction class, the ``per_block_interaction_active`` mask
    (exactly), the array-leaf shapes of ``per_block_interactions``, their values at active entries and
    ``DiscreteEBMInteraction.n_spin``, the
    shapes of ``per_block_interaction_global_slices``, and -- at active entries -- the grid coordinates
    of the tail node each slice points to (resolved through ``per_block_interaction_global_inds`` and
    ``node_global_location_map``, so a different order of SD types in the global state is tolerated).
    The docs' ``per_block_interaction_active[0][0][0]`` value is checked for both."""
    built = {name: build_skip_grid_program(lib, 30, 30, 4242, [1, 3, 5]) for name, lib in LIBS.items()}
    summaries = {}
    for name, m in built.items():
        prog = m.program
        spec = prog.gibbs_spec
        np.testing.assert_array_equal(
            np.asarray(prog.per_block_interaction_active[0][0][0]), [True] * 5 + [False] * 5, err_msg=name
        )
        inverse = {(int(a), int(b)): node for node, (a, b) in spec.node_global_location_map.items()}
        blocks = [[m.coords[n] for n in blk.nodes] for blk in spec.free_blocks]
        per_block = []
        for bi in range(len(spec.free_blocks)):
            entries = []
            for k, (inter, act) in enumerate(
                zip(prog.per_block_interactions[bi], prog.per_block_interaction_active[bi])
            ):
                act = np.asarray(act)
                leaves = [np.asarray(x) for x in jax.tree.leaves(inter)]
                array_leaves = [x for x in leaves if x.ndim >= 2]
                tails = []
                for gi, sl in zip(prog.per_block_interaction_global_inds[bi][k], prog.per_block_interaction_global_slices[bi][k]):
                    sl = np.asarray(sl)
                    assert sl.shape == act.shape
                    coords = np.full(act.shape + (2,), -1)
                    for i, j in zip(*np.nonzero(act)):
                        coords[i, j] = m.coords[inverse[(int(gi), int(sl[i, j]))]]
                    tails.append(coords)
                entries.append(
                    dict(
                        cls=type(inter).__name__,
                        active=act,
                        shapes=[x.shape for x in array_leaves],
                        values=[x[act] for x in array_leaves],
                        n_spin=getattr(inter, "n_spin", None),
                        slice_shapes=[np.shape(s) for s in prog.per_block_interaction_global_slices[bi][k]],
                        tails=tails,
                    )
                )
            per_block.append(entries)
        summaries[name] = (blocks, per_block)
    (blocks_t, pb_t), (blocks_d, pb_d) = summaries["thrml"], summaries["distthrml"]
    assert blocks_t == blocks_d
    assert [len(x) for x in pb_t] == [len(x) for x in pb_d]
    for bi, (et, ed) in enumerate(zip(pb_t, pb_d)):
        for k, (a, b) in enumerate(zip(et, ed)):
            where = f"block {bi} interaction {k}"
            assert a["cls"] == b["cls"], where
            np.testing.assert_array_equal(a["active"], b["active"], err_msg=where)
            assert a["shapes"] == b["shapes"], where
            for x, y in zip(a["values"], b["values"]):
                np.testing.assert_array_equal(x, y, err_msg=where)
            assert a["n_spin"] == b["n_spin"], where
            assert a["slice_shapes"] == b["slice_shapes"], where
            for x, y in zip(a["tails"], b["tails"]):
                np.testing.assert_array_equal(x, y, err_msg=where)


# =============================================================================================
# sampling drivers: structure, edge cases, deterministic samplers
# =============================================================================================


def _chain_program(lib: ModuleType):
    """6-spin chain, spin 3 clamped; free blocks {0, 2, 4} and {1, 5}."""
    rng = np.random.default_rng(12)
    biases = rng.normal(0, 0.5, 6).astype(np.float32)
    weights = rng.normal(0, 0.8, 5).astype(np.float32)
    nodes, edges, model = build_ising(lib, biases, np.array([(i, i + 1) for i in range(5)]), weights, 1.0)
    free = [lib.Block([nodes[0], nodes[2], nodes[4]]), lib.Block([nodes[1], nodes[5]])]
    clamped = [lib.Block([nodes[3]])]
    program = lib.models.IsingSamplingProgram(model, free, clamped)
    init = [jnp.array([True, False, True]), jnp.array([False, True])]
    clamp = [jnp.array([True])]
    return nodes, free, clamped, program, init, clamp


SCHEDULES = [(0, 1, 1), (3, 1, 2), (0, 4, 1), (2, 5, 3)]


@pytest.mark.parametrize("schedule_args", SCHEDULES)
def test_sample_with_observation_structure_and_edge_cases(schedule_args: tuple[int, int, int]) -> None:
    """``sample_with_observation`` with a ``StateObserver`` returns ``(None, [arrays with leading
    n_samples])``; ``sample_states`` returns the same list (bit-identical for the same key within a
    library); clamped nodes always read their clamped value; with ``n_warmup=0`` the first sample is the
    initial state. Includes n_samples=1 with and without warm-up. Structures, shapes and dtypes agree
    between libraries."""
    out = {}
    n_samples = schedule_args[1]
    for name, lib in LIBS.items():
        nodes, free, clamped, program, init, clamp = _chain_program(lib)
        schedule = lib.SamplingSchedule(*schedule_args)
        to_sample = [lib.Block([nodes[5], nodes[3], nodes[0]]), free[0], lib.Block(nodes)]
        observer = lib.StateObserver(to_sample)
        key = jax.random.key(99)
        carry, obs = jax.jit(
            lambda k: lib.sample_with_observation(k, program, schedule, init, clamp, observer.init(), observer)
        )(key)
        samples = jax.jit(lambda k: lib.sample_states(k, program, schedule, init, clamp, to_sample))(key)
        assert carry is None, name
        assert isinstance(samples, list) and len(samples) == 3
        assert _shapes_dtypes(samples) == [((n_samples, 3), np.dtype(bool)), ((n_samples, 3), np.dtype(bool)), ((n_samples, 6), np.dtype(bool))]
        for x, y in zip(obs, samples):
            np.testing.assert_array_equal(x, y, err_msg=name)
        assert np.all(np.asarray(samples[0])[:, 1]) and np.all(np.asarray(samples[2])[:, 3])
        if schedule_args[0] == 0:
            np.testing.assert_array_equal(samples[1][0], init[0], err_msg=name)
            np.testing.assert_array_equal(samples[2][0], [True, False, False, True, True, True], err_msg=name)
        out[name] = (jax.tree.structure((carry, obs)), _shapes_dtypes(obs))
    assert out["thrml"] == out["distthrml"]


def _spin_transform(state: list[Array], blocks: list) -> list[Array]:
    return [2 * x.astype(jnp.int8) - 1 for x in state]


@pytest.mark.parametrize("transform", ["identity", "spin"])
def test_moment_accumulator_observer_agrees(transform: str) -> None:
    """``MomentAccumulatorObserver`` (default identity ``f_transform`` and the +-1 spin transform used by
    ``estimate_moments``): ``init()`` gives float zeros per moment type; after sampling, the carry has the
    same structure and shapes in both libraries (distthrml keeps float sums), the observation output is ``None``, and the
    accumulated sums equal the sums of products computed from ``sample_states`` run with the same key
    (the observer must not change the chain)."""
    out = {}
    for name, lib in LIBS.items():
        nodes, free, clamped, program, init, clamp = _chain_program(lib)
        spec = [[(nodes[0],), (nodes[3],), (nodes[5],)], [(nodes[0], nodes[1]), (nodes[2], nodes[3]), (nodes[4], nodes[5])], [(nodes[1], nodes[2], nodes[5])]]
        observer = (
            lib.MomentAccumulatorObserver(spec)
            if transform == "identity"
            else lib.MomentAccumulatorObserver(spec, _spin_transform)
        )
        mem0 = observer.init()
        assert _shapes_dtypes(mem0) == [((3,), np.dtype(np.float32)), ((3,), np.dtype(np.float32)), ((1,), np.dtype(np.float32))]
        schedule = lib.SamplingSchedule(2, 30, 2)
        key = jax.random.key(5)
        carry, obs = jax.jit(lambda k: lib.sample_with_observation(k, program, schedule, init, clamp, mem0, observer))(key)
        assert obs is None, name
        samples = jax.jit(lambda k: lib.sample_states(k, program, schedule, init, clamp, [lib.Block(nodes)]))(key)
        samples = np.asarray(samples[0]).astype(np.int64)
        vals = samples if transform == "identity" else 2 * samples - 1
        expected = [
            vals[:, [0, 3, 5]].sum(0),
            np.stack([(vals[:, 0] * vals[:, 1]), vals[:, 2] * vals[:, 3], vals[:, 4] * vals[:, 5]], 1).sum(0),
            (vals[:, 1] * vals[:, 2] * vals[:, 5]).sum(0, keepdims=True),
        ]
        for got, exp in zip(carry, expected):
            np.testing.assert_array_equal(np.asarray(got).astype(np.int64), exp, err_msg=name)
        out[name] = (jax.tree.structure((carry, obs)), [shape for shape, _ in _shapes_dtypes(carry)])
        if name == "distthrml":
            # deliberate difference: the sums stay in the float carry (THRML casts them to the
            # samples' dtype, where int8 spins wrap around after 127 observations)
            assert {dtype for _, dtype in _shapes_dtypes(carry)} == {np.dtype(np.float32)}
    assert out["thrml"] == out["distthrml"]


def _deterministic_toolkit(lib: ModuleType) -> SimpleNamespace:
    """A float node type, a weighted copy interaction and two randomness-free samplers for ``lib``.

    ``CopySampler`` sets ``x_head = 1 + sum_active w * x_tail``; ``CountingSampler`` ignores its inputs
    and writes the number of times it has been called (kept in its sampler state).
    """

    class ScalarNode(lib.AbstractNode):
        pass

    class CopyInteraction(eqx.Module):
        weights: Array

    class CopySampler(lib.AbstractConditionalSampler):
        def sample(self, key, interactions, active_flags, states, sampler_state, output_sd):
            out = jnp.ones(output_sd.shape, output_sd.dtype)
            for inter, active, state in zip(interactions, active_flags, states):
                out = out + jnp.sum(inter.weights * active * state[0], axis=-1)
            return out, sampler_state

        def init(self):
            return None

    class CountingSampler(lib.AbstractConditionalSampler):
        def sample(self, key, interactions, active_flags, states, sampler_state, output_sd):
            n = sampler_state + 1
            return jnp.full(output_sd.shape, n, output_sd.dtype), n

        def init(self):
            return jnp.array(0, jnp.int32)

    return SimpleNamespace(
        ScalarNode=ScalarNode,
        CopyInteraction=CopyInteraction,
        CopySampler=CopySampler,
        CountingSampler=CountingSampler,
        sds={ScalarNode: jax.ShapeDtypeStruct((), jnp.float32)},
    )


# head index, tail index, weight -- over nodes a0 a1 a2 (0-2), b0 b1 b2 (3-5), clamped c0 (6)
_COPY_GROUPS = [
    ([0, 0, 1], [4, 5, 3], [0.5, -1.0, 0.25]),  # a0 reads b1 and b2 (two instances -> padding)
    ([3, 4, 5], [2, 0, 1], [0.5, 0.5, -0.5]),
    ([2], [6], [2.0]),
]


def _numpy_copy_sweeps(x: np.ndarray, order: list[list[list[int]]], n_sweeps: int) -> np.ndarray:
    """Reference block-Gibbs semantics: sampling groups in order, blocks of a group read the same state."""
    x = x.astype(np.float64).copy()
    for _ in range(n_sweeps):
        for group in order:
            new = {}
            for block in group:
                for h in block:
                    v = 1.0
                    for heads, tails, ws in _COPY_GROUPS:
                        v += sum(w * x[t] for hh, t, w in zip(heads, tails, ws) if hh == h)
                    new[h] = v
            for h, v in new.items():
                x[h] = v
    return x


@pytest.mark.parametrize("superblock", [False, True])
@pytest.mark.parametrize("schedule_args", SCHEDULES)
def test_deterministic_copy_sampler_semantics_identical(superblock: bool, schedule_args: tuple[int, int, int]) -> None:
    """A randomness-free sampler makes block-Gibbs semantics observable exactly: with ``x_head = 1 +
    sum w * x_tail`` over interaction groups with repeated heads (padding), permuted tails and a clamped
    tail, the samples must equal a numpy reference of the documented semantics (free blocks sampled in
    order; blocks of one superblock read the same pre-update state; first sample after ``n_warmup``
    sweeps, then one every ``steps_per_sample`` sweeps), bit-identically in both libraries; sequential
    ``[A, B]`` and superblock ``[(A, B)]`` schedules differ as they should."""
    results = {}
    for name, lib in LIBS.items():
        tk = _deterministic_toolkit(lib)
        nodes = [tk.ScalarNode() for _ in range(7)]
        A, B, Cc = lib.Block(nodes[0:3]), lib.Block(nodes[3:6]), lib.Block(nodes[6:7])
        groups = [
            lib.InteractionGroup(
                tk.CopyInteraction(jnp.asarray(ws, jnp.float32)),
                lib.Block([nodes[h] for h in heads]),
                [lib.Block([nodes[t] for t in tails])],
            )
            for heads, tails, ws in _COPY_GROUPS
        ]
        spec = lib.BlockGibbsSpec([(A, B)] if superblock else [A, B], [Cc], tk.sds)
        samplers = [tk.CopySampler(), tk.CopySampler()]
        if name == "distthrml" and superblock:
            # A and B read each other: refused by default, THRML's semantics on request
            with pytest.raises(lib.ProgramError, match="superblock 0"):
                lib.BlockSamplingProgram(spec, samplers, groups)
            program = lib.BlockSamplingProgram(spec, samplers, groups, allow_simultaneous_reads=True)
        else:
            program = lib.BlockSamplingProgram(spec, samplers, groups)
        init = [jnp.array([1.0, -2.0, 0.5], jnp.float32), jnp.array([3.0, 0.0, -1.0], jnp.float32)]
        clamp = [jnp.array([1.5], jnp.float32)]
        schedule = lib.SamplingSchedule(*schedule_args)
        out = lib.sample_states(jax.random.key(0), program, schedule, init, clamp, [lib.Block(nodes), lib.Block([nodes[5], nodes[0]])])
        results[name] = [np.asarray(x) for x in out]
    n_warmup, n_samples, steps = schedule_args
    x0 = np.array([1.0, -2.0, 0.5, 3.0, 0.0, -1.0, 1.5])
    order = [[[0, 1, 2], [3, 4, 5]]] if superblock else [[[0, 1, 2]], [[3, 4, 5]]]
    expected = np.stack([_numpy_copy_sweeps(x0, order, n_warmup + t * steps) for t in range(n_samples)])
    for name, res in results.items():
        assert res[0].dtype == np.float32 and res[0].shape == (n_samples, 7), name
        np.testing.assert_allclose(res[0], expected, rtol=1e-6, atol=1e-6, err_msg=name)
        np.testing.assert_array_equal(res[1], res[0][:, [5, 0]], err_msg=name)
    for x, y in zip(results["thrml"], results["distthrml"]):
        np.testing.assert_array_equal(x, y)
    if n_warmup + (n_samples - 1) * steps > 0:
        other = [[[0, 1, 2]], [[3, 4, 5]]] if superblock else [[[0, 1, 2], [3, 4, 5]]]
        assert not np.allclose(_numpy_copy_sweeps(x0, other, n_warmup + (n_samples - 1) * steps), expected[-1])


@pytest.mark.parametrize("schedule_args", SCHEDULES)
def test_sampler_state_is_initialised_and_carried(schedule_args: tuple[int, int, int]) -> None:
    """Sampler state: ``init()`` seeds it and every call's returned state is fed to the next call, across
    warm-up and sampling. With a sampler that writes its call count, sample t of each block must equal
    ``n_warmup + t * steps_per_sample`` (the initial value -7 when no sweep has run yet), in both libraries,
    for blocks with no interactions at all."""
    n_warmup, n_samples, steps = schedule_args
    results = {}
    for name, lib in LIBS.items():
        tk = _deterministic_toolkit(lib)
        nodes = [tk.ScalarNode() for _ in range(5)]
        spec = lib.BlockGibbsSpec([lib.Block(nodes[:2]), lib.Block(nodes[2:])], [], tk.sds)
        program = lib.BlockSamplingProgram(spec, [tk.CountingSampler(), tk.CountingSampler()], [])
        init = [jnp.full((2,), -7.0, jnp.float32), jnp.full((3,), -7.0, jnp.float32)]
        out = lib.sample_states(jax.random.key(1), program, lib.SamplingSchedule(*schedule_args), init, [], [lib.Block(nodes)])
        results[name] = np.asarray(out[0])
    sweeps = n_warmup + steps * np.arange(n_samples)
    expected = np.where(sweeps == 0, -7.0, sweeps).astype(np.float32)[:, None] * np.ones((1, 5), np.float32)
    for name, res in results.items():
        np.testing.assert_array_equal(res, expected, err_msg=name)

