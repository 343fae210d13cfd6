"""Mean energy of the 2D Ising model on a torus versus Onsager's exact solution.

The ferromagnetic nearest-neighbour Ising model (J = 1, no field) on an infinite square lattice
has the exact internal energy per spin

    u(beta) = -coth(2 beta) [1 + (2/pi) (2 tanh^2(2 beta) - 1) K(k)],
    k = 2 sinh(2 beta) / cosh^2(2 beta),

with K the complete elliptic integral of the first kind of *modulus* k (scipy's ``ellipk``
takes the parameter m = k^2). We sample a 64 x 64 periodic lattice through the public API
(``IsingEBM`` with unit weights, ``IsingSamplingProgram`` with the checkerboard 2-colouring,
``hinton_init``, ``sample_states``) at beta = 0.25 and 0.3, both in the disordered phase
(beta_c = 0.4407), and compare the measured -(1/N) sum_edges s_i s_j with u(beta).

Finite-size error: above T_c the correlation length is xi = 1 / (ln coth(beta) - 2 beta), i.e.
1.10 at beta = 0.25 and 1.58 at beta = 0.3, and torus corrections to u are O(exp(-L / xi)) <
1e-17 for L = 64. Warm-up bias: 256 heat-bath sweeps from a random start are many hundreds of
energy relaxation times at these temperatures. Both are negligible; ``BIAS_ALLOWANCE`` = 1e-4
(a fifth of a standard error) is kept as a margin. The statistical error is estimated from
the spread of the per-chain means of independent chains, so autocorrelation inside a chain is
accounted for, and the tolerance is the two-sided Student-t quantile at level 1e-6.
"""

from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from distthrml import Block, SamplingSchedule, SpinNode, sample_states
from distthrml.models import IsingEBM, IsingSamplingProgram, hinton_init
from distthrml.physics import onsager_energy_per_spin
from partition.generators import checkerboard_colors, torus_edges

SIDE = 64
N_CHAINS = 64
SCHEDULE = SamplingSchedule(n_warmup=256, n_samples=50, steps_per_sample=5)
ALPHA = 1e-6
BIAS_ALLOWANCE = 1e-4
BETA_CRITICAL = 0.5 * np.log(1.0 + np.sqrt(2.0))



def test_onsager_formula_reference_values() -> None:
    """The reference formula itself (guards against passing k instead of m = k^2 to ``ellipk``):
    u(beta_c) = -sqrt(2), and at small beta the high-temperature series
    u = -2t - 4t^3 - 8t^5 + O(t^7) with t = tanh(beta) (from -beta f = ln 2 + 2 ln cosh beta + t^4 +
    2 t^6 + ...)."""
    assert onsager_energy_per_spin(BETA_CRITICAL * (1 - 1e-12)) == pytest.approx(-np.sqrt(2.0), abs=1e-6)
    for beta in (0.01, 0.02, 0.05):
        t = np.tanh(beta)
        assert onsager_energy_per_spin(beta) == pytest.approx(-2.0 * t - 4.0 * t**3 - 8.0 * t**5, abs=50.0 * t**7)


@lru_cache(maxsize=1)
def lattice() -> tuple[list[SpinNode], np.ndarray, list[Block]]:
    """Torus nodes (node id r * SIDE + c), its edge list and the checkerboard colour blocks."""
    nodes = [SpinNode() for _ in range(SIDE * SIDE)]
    edges = torus_edges(SIDE, SIDE)
    colors = checkerboard_colors(SIDE, SIDE)
    assert np.all(colors[edges[:, 0]] != colors[edges[:, 1]]), "checkerboard colouring must be proper"
    blocks = [Block([nodes[i] for i in np.flatnonzero(colors == c)]) for c in (0, 1)]
    return nodes, edges, blocks


def sampled_energies(beta: float, seed: int) -> np.ndarray:
    """Energy per spin of every recorded sample, shape [N_CHAINS, n_samples]."""
    nodes, edges, blocks = lattice()
    n = len(nodes)
    ebm = IsingEBM(
        nodes,
        [(nodes[a], nodes[b]) for a, b in edges],
        jnp.zeros(n, dtype=jnp.float32),
        jnp.ones(len(edges), dtype=jnp.float32),
        jnp.asarray(beta, dtype=jnp.float32),
    )
    program = IsingSamplingProgram(ebm, blocks, [])
    key_init, key_run = jax.random.split(jax.random.key(seed))
    init = hinton_init(key_init, ebm, blocks, (N_CHAINS,))
    keys = jax.random.split(key_run, N_CHAINS)
    u_idx = jnp.asarray(edges[:, 0])
    v_idx = jnp.asarray(edges[:, 1])

    def chain(key, state):
        (states,) = sample_states(key, program, SCHEDULE, state, [], [Block(nodes)])
        spins = 2.0 * states.astype(jnp.float32) - 1.0
        return -jnp.sum(spins[:, u_idx] * spins[:, v_idx], axis=-1) / n

    return np.asarray(jax.jit(jax.vmap(chain))(keys, init), dtype=np.float64)


@pytest.mark.parametrize("beta, seed", [(0.25, 101), (0.3, 102)])
def test_torus_energy_matches_onsager(beta: float, seed: int) -> None:
    """Mean energy per spin of a 64 x 64 torus sampled by block Gibbs equals Onsager's value.

    Tolerance: t_{63}(1 - 5e-7) ~ 5.4 standard errors of the mean over 64 independent chains
    (50 thinned samples each) plus ``BIAS_ALLOWANCE``; a correct sampler fails with probability
    about 1e-6. The standard error is ~5e-4, so e.g. a 3 % error in the effective coupling
    (|du/dbeta| ~ 3) or a spurious field is detected by tens of standard errors.
    """
    energies = sampled_energies(beta, seed)
    assert energies.shape == (N_CHAINS, SCHEDULE.n_samples)
    chain_means = energies.mean(axis=1)
    mean = float(chain_means.mean())
    stderr = float(chain_means.std(ddof=1) / np.sqrt(N_CHAINS))
    exact = onsager_energy_per_spin(beta)
    assert 0.0 < stderr < 2e-3, f"standard error {stderr:.2e} out of the range the test is designed for"
    tolerance = stats.t.isf(ALPHA / 2, N_CHAINS - 1) * stderr + BIAS_ALLOWANCE
    assert abs(mean - exact) < tolerance, (
        f"beta={beta}: sampled u={mean:.5f} +- {stderr:.1e}, Onsager u={exact:.5f}, "
        f"|diff|={abs(mean - exact):.2e} > tol={tolerance:.2e}"
    )
