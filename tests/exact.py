"""Exact-enumeration helpers for the distribution tests.

Everything in this module is plain numpy/scipy and deliberately independent of the sampler under
test: energies are written out here from the mathematical definition of the factors, the
Boltzmann distribution is obtained by enumerating every joint state, and the block-Gibbs Markov
kernel is built from single-site conditionals of that energy.

Conventions
-----------
- A model has ``n`` variables indexed ``0..n-1``. Variable ``i`` has cardinality ``cards[i]``:
  2 for a spin (stored as ``False``/``True`` meaning ``-1``/``+1``, i.e. digit 0/1), ``K`` for a
  categorical variable (digit ``0..K-1``).
- Joint states are enumerated in mixed radix with the *last* variable varying fastest (the order
  of ``itertools.product``); ``encode_states`` maps digit vectors to that index.
- A ``DiscreteTerm`` is a batch of energy terms ``-W[b, c_1[b], .., c_N[b]] * s_1[b] .. s_M[b]``
  (the THRML ``DiscreteEBMFactor`` convention), and ``P(x) ∝ exp(-E(x))``.
- Kernels act on row vectors: a distribution ``mu`` becomes ``mu @ K`` after one sweep.

Statistics
----------
``assert_samples_match`` runs two tests at a combined false-failure rate ``alpha``:

1. a Pearson chi-square goodness-of-fit test of the full joint histogram (cells whose expected
   count is below ``min_expected`` are pooled), and
2. z-scores of every single-variable and pairwise marginal probability, Bonferroni-corrected.

Samples drawn from one chain every ``thin`` sweeps are not independent. If ``sigma`` is the
L2(pi) operator norm of the ``thin``-sweep kernel on mean-zero functions, then every lag-k
autocorrelation of any statistic is at most ``sigma**k`` in absolute value, so the variance of any
sample average is at most ``(1 + sigma) / (1 - sigma)`` times its i.i.d. value (the *inflation*
factor). The covariance matrix of the histogram is therefore dominated (Loewner order) by
``inflation`` times the multinomial one, so ``X^2 / inflation`` is stochastically dominated by a
chi-square variable and z-scores divided by ``sqrt(inflation)`` are conservative. ``sigma`` is
computed exactly from the enumerated kernel (``mixing_report``), which also bounds the
warm-up bias: after ``n_warmup`` sweeps from *any* start, every chain is within total variation
``warmup_tv`` of stationarity, so with a maximal coupling all chains together coincide with
exactly stationary chains except with probability ``n_chains * warmup_tv``.

The chi-square and normal approximations are asymptotic; cells and marginals with small expected
counts are pooled or skipped so that they are accurate at the thresholds used.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import linalg, stats

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# --------------------------------------------------------------------------------------------
# State enumeration
# --------------------------------------------------------------------------------------------


def enumerate_states(cards: Sequence[int]) -> IntArray:
    """All joint states, shape ``[prod(cards), n]``, last variable varying fastest."""
    return np.array(list(itertools.product(*[range(int(k)) for k in cards])), dtype=np.int64).reshape(
        -1, len(cards)
    )


def mixed_radix_strides(cards: Sequence[int]) -> IntArray:
    """Stride of each variable's digit in the flat state index of ``enumerate_states``."""
    strides = np.ones(len(cards), dtype=np.int64)
    for i in range(len(cards) - 2, -1, -1):
        strides[i] = strides[i + 1] * int(cards[i + 1])
    return strides


def encode_states(digits: NDArray, cards: Sequence[int]) -> IntArray:
    """Flat index of each digit vector (last axis = variables)."""
    digits = np.asarray(digits).astype(np.int64)
    cards_arr = np.asarray(cards, dtype=np.int64)
    if digits.shape[-1] != len(cards):
        raise ValueError(f"expected {len(cards)} variables on the last axis, got {digits.shape}")
    if np.any(digits < 0) or np.any(digits >= cards_arr):
        raise ValueError("a sampled value lies outside its variable's range")
    return digits @ mixed_radix_strides(cards)


def spin_sign(digits: NDArray) -> FloatArray:
    """Map spin digits 0/1 (False/True) to -1/+1."""
    return 2.0 * np.asarray(digits, dtype=np.float64) - 1.0


# --------------------------------------------------------------------------------------------
# Energies (written independently of the library under test)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiscreteTerm:
    """A batch of ``b`` energy terms ``-W[j, c_1[j], .., c_N[j]] * s_1[j] * .. * s_M[j]``.

    ``spin_vars[m][j]`` / ``cat_vars[n][j]`` are variable indices; ``weights`` has shape
    ``[b, K_1, .., K_N]``.
    """

    spin_vars: tuple[IntArray, ...]
    cat_vars: tuple[IntArray, ...]
    weights: FloatArray

    def __post_init__(self) -> None:
        b = self.weights.shape[0]
        if self.weights.ndim != 1 + len(self.cat_vars):
            raise ValueError("weights must have one axis per categorical group plus the batch axis")
        for group in (*self.spin_vars, *self.cat_vars):
            if len(group) != b:
                raise ValueError("every variable group must have the batch length of the weights")

    @property
    def cliques(self) -> list[tuple[int, ...]]:
        """The variable sets touched by each term of the batch."""
        groups = [*self.spin_vars, *self.cat_vars]
        return [tuple(int(g[j]) for g in groups) for j in range(self.weights.shape[0])]

    def energy(self, states: IntArray) -> FloatArray:
        """Energy contribution of this batch for each row of ``states`` (digits)."""
        batch = np.arange(self.weights.shape[0])
        index = (batch[None, :],) + tuple(states[:, np.asarray(g)] for g in self.cat_vars)
        w = np.asarray(self.weights, dtype=np.float64)[index]  # [M, b]
        prod = np.ones_like(w)
        for g in self.spin_vars:
            prod = prod * spin_sign(states[:, np.asarray(g)])
        return -np.sum(w * prod, axis=1)


def spin_term(groups: Sequence[Sequence[int]], weights: NDArray) -> DiscreteTerm:
    """Pure-spin batch ``-w[j] * s_{g1[j]} * s_{g2[j]} * ..``."""
    return DiscreteTerm(
        tuple(np.asarray(g, dtype=np.int64) for g in groups), (), np.asarray(weights, dtype=np.float64)
    )


def categorical_term(groups: Sequence[Sequence[int]], weights: NDArray) -> DiscreteTerm:
    """Pure-categorical batch ``-W[j, c_{g1[j]}, c_{g2[j]}, ..]``."""
    return DiscreteTerm(
        (), tuple(np.asarray(g, dtype=np.int64) for g in groups), np.asarray(weights, dtype=np.float64)
    )


@dataclass
class DiscreteModel:
    """A small discrete model: variable cardinalities plus a list of energy-term batches."""

    cards: tuple[int, ...]
    terms: list[DiscreteTerm] = field(default_factory=list)

    @property
    def n_vars(self) -> int:
        return len(self.cards)

    def states(self) -> IntArray:
        return enumerate_states(self.cards)

    def energies(self) -> FloatArray:
        states = self.states()
        total = np.zeros(len(states))
        for term in self.terms:
            total += term.energy(states)
        return total

    def probabilities(self) -> FloatArray:
        return boltzmann(self.energies())

    def interaction_cliques(self) -> list[tuple[int, ...]]:
        return [c for term in self.terms for c in term.cliques]


def boltzmann(energies: FloatArray) -> FloatArray:
    """``exp(-E) / Z`` computed stably."""
    logits = -np.asarray(energies, dtype=np.float64)
    logits -= logits.max()
    p = np.exp(logits)
    return p / p.sum()


def restrict(
    energies: FloatArray, cards: Sequence[int], fixed: dict[int, int]
) -> tuple[FloatArray, tuple[int, ...], list[int]]:
    """Energies of the states consistent with ``fixed`` (var -> digit).

    Returns ``(energies_free, cards_free, free_vars)`` where the free states are enumerated in the
    same mixed-radix order over ``free_vars`` (so ``boltzmann(energies_free)`` is the exact
    conditional distribution of the free variables).
    """
    states = enumerate_states(cards)
    keep = np.ones(len(states), dtype=bool)
    for var, value in fixed.items():
        keep &= states[:, var] == value
    free_vars = [i for i in range(len(cards)) if i not in fixed]
    return energies[keep], tuple(int(cards[i]) for i in free_vars), free_vars


# --------------------------------------------------------------------------------------------
# Graph colouring
# --------------------------------------------------------------------------------------------


def adjacency_from_cliques(n: int, cliques: Sequence[Sequence[int]]) -> list[set[int]]:
    """Primal graph: two variables are adjacent when they share a term."""
    adj: list[set[int]] = [set() for _ in range(n)]
    for clique in cliques:
        for a in clique:
            for b in clique:
                if a != b:
                    adj[a].add(b)
    return adj


def greedy_coloring(n: int, cliques: Sequence[Sequence[int]]) -> list[int]:
    """Largest-degree-first greedy colouring of the primal graph."""
    adj = adjacency_from_cliques(n, cliques)
    color = [-1] * n
    for v in sorted(range(n), key=lambda v: (-len(adj[v]), v)):
        used = {color[u] for u in adj[v]}
        color[v] = next(c for c in itertools.count() if c not in used)
    return color


def assert_independent_sets(n: int, cliques: Sequence[Sequence[int]], groups: Sequence[Sequence[int]]) -> None:
    """Every group must be an independent set of the primal graph (a valid Gibbs block/colour)."""
    adj = adjacency_from_cliques(n, cliques)
    for group in groups:
        members = set(group)
        for v in group:
            clash = adj[v] & members
            assert not clash, f"variables {v} and {sorted(clash)} interact but share a colour"


# --------------------------------------------------------------------------------------------
# Exact block-Gibbs kernel
# --------------------------------------------------------------------------------------------


def single_site_conditionals(energies: FloatArray, cards: Sequence[int]) -> list[FloatArray]:
    """``cond[i][x, v] = P(x_i = v | x_{-i})`` for every joint state ``x``."""
    states = enumerate_states(cards)
    strides = mixed_radix_strides(cards)
    base = np.arange(len(states))
    out = []
    for i, k in enumerate(cards):
        idx = base[:, None] + (np.arange(k)[None, :] - states[:, i : i + 1]) * strides[i]
        logits = -energies[idx]
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        out.append(weights / weights.sum(axis=1, keepdims=True))
    return out


def superblock_kernel(cond: list[FloatArray], cards: Sequence[int], sites: Sequence[int]) -> FloatArray:
    """Kernel of one algorithmic step that resamples every site in ``sites`` from its single-site
    conditional given the *old* state (all blocks of a superblock read the same state)."""
    states = enumerate_states(cards)
    strides = mixed_radix_strides(cards)
    m = len(states)
    sites = list(sites)
    assignments = enumerate_states([cards[i] for i in sites])  # [A, |U|]
    rows = np.arange(m)[:, None]
    targets = rows + (assignments[None, :, :] - states[:, sites][:, None, :]) @ strides[sites]
    probs = np.ones((m, len(assignments)))
    for j, i in enumerate(sites):
        probs *= cond[i][rows, assignments[None, :, j]]
    kernel = np.zeros((m, m))
    kernel[np.broadcast_to(rows, targets.shape), targets] = probs
    return kernel


def sweep_kernel(energies: FloatArray, cards: Sequence[int], superblocks: Sequence[Sequence[int]]) -> FloatArray:
    """Kernel of one full sweep visiting the superblocks (each a list of sites) in order."""
    cond = single_site_conditionals(energies, cards)
    kernel = np.eye(len(energies))
    for sites in superblocks:
        kernel = kernel @ superblock_kernel(cond, cards, sites)
    return kernel


def stationary_distribution(kernel: FloatArray) -> FloatArray:
    """Stationary row vector of an ergodic kernel."""
    m = kernel.shape[0]
    a = np.vstack([kernel.T - np.eye(m), np.ones((1, m))])
    b = np.zeros(m + 1)
    b[-1] = 1.0
    pi = np.linalg.lstsq(a, b, rcond=None)[0]
    pi = np.clip(pi, 0.0, None)
    return pi / pi.sum()


def matrix_power(kernel: FloatArray, n: int) -> FloatArray:
    return np.linalg.matrix_power(kernel, n)


@dataclass(frozen=True)
class MixingReport:
    """Exact mixing numbers of a sampling design (kernel, warm-up, thinning)."""

    stationarity_error: float  # || pi K - pi ||_1
    thin_l2: float  # L2(pi) norm of K^thin restricted to mean-zero functions
    warmup_tv: float  # bound on TV(mu K^n_warmup, pi) over all initial distributions mu

    @property
    def inflation(self) -> float:
        """Upper bound on the variance inflation of any average over thinned samples."""
        return (1.0 + self.thin_l2) / (1.0 - self.thin_l2)


def mixing_report(kernel: FloatArray, pi: FloatArray, n_warmup: int, thin: int) -> MixingReport:
    """Stationarity error, thinned-chain L2 contraction and warm-up bias bound of a design.

    ``thin_l2`` is the largest singular value of ``D^1/2 (K^thin - 1 pi) D^-1/2`` with
    ``D = diag(pi)``. The warm-up bound uses, for any start ``mu``,
    ``TV(mu K^w, pi) <= 1/2 ||mu/pi - 1||_pi * thin_l2^floor(w/thin)`` (the remaining sweeps are
    L2 contractions) and ``||mu/pi - 1||_pi^2 <= 1/min(pi) - 1``.
    """
    stationarity = float(np.abs(pi @ kernel - pi).sum())
    k_t = matrix_power(kernel, thin)
    sqrt_pi = np.sqrt(pi)
    op = sqrt_pi[:, None] * (k_t - pi[None, :]) / sqrt_pi[None, :]
    gram = op.T @ op
    top = linalg.eigvalsh(gram, subset_by_index=[len(pi) - 1, len(pi) - 1])[0]
    thin_l2 = float(np.sqrt(max(top, 0.0)))
    warmup_tv = float(0.5 * np.sqrt(1.0 / pi.min() - 1.0) * thin_l2 ** (n_warmup // thin))
    return MixingReport(stationarity, thin_l2, warmup_tv)


# --------------------------------------------------------------------------------------------
# Statistical comparison of samples with exact probabilities
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoodnessOfFit:
    statistic: float  # Pearson X^2 divided by the inflation factor
    dof: int
    pvalue: float
    tv_distance: float
    impossible_hits: int  # samples that landed on zero-probability states


def pearson_joint_test(
    indices: IntArray, probs: FloatArray, inflation: float = 1.0, min_expected: float = 5.0
) -> GoodnessOfFit:
    """Pearson chi-square test of the joint histogram of ``indices`` against ``probs``.

    Cells with expected count below ``min_expected`` are pooled into one cell (merged with the
    smallest regular cell if the pool itself is still too small) so the chi-square approximation
    holds; the statistic is divided by ``inflation`` (see module docstring).
    """
    n = len(indices)
    counts = np.bincount(indices, minlength=len(probs)).astype(np.float64)
    impossible = int(counts[probs <= 0].sum())
    tv = 0.5 * float(np.abs(counts / n - probs).sum())
    expected = n * probs
    small = expected < min_expected
    obs_cells = list(counts[~small])
    exp_cells = list(expected[~small])
    if small.any():
        pooled_o, pooled_e = float(counts[small].sum()), float(expected[small].sum())
        if pooled_e < min_expected and exp_cells:
            j = int(np.argmin(exp_cells))
            obs_cells[j] += pooled_o
            exp_cells[j] += pooled_e
        elif pooled_e > 0:
            obs_cells.append(pooled_o)
            exp_cells.append(pooled_e)
    o = np.asarray(obs_cells)
    e = np.asarray(exp_cells)
    x2 = float(np.sum((o - e) ** 2 / e)) / inflation
    dof = len(e) - 1
    pvalue = float(stats.chi2.sf(x2, dof)) if dof > 0 else 1.0
    if impossible:
        pvalue = 0.0
    return GoodnessOfFit(x2, dof, pvalue, tv, impossible)


@dataclass(frozen=True)
class MarginalZScores:
    z: FloatArray
    labels: list[str]
    threshold: float

    @property
    def worst(self) -> list[tuple[str, float]]:
        order = np.argsort(-np.abs(self.z))[:8]
        return [(self.labels[i], float(self.z[i])) for i in order]


def marginal_zscores(
    digits: IntArray,
    states: IntArray,
    probs: FloatArray,
    inflation: float = 1.0,
    alpha: float = 1e-6,
    min_expected: float = 25.0,
) -> MarginalZScores:
    """z-scores of all single-variable and pairwise marginal probabilities.

    ``digits`` are the samples ``[N, n]``, ``states``/``probs`` the enumerated exact distribution.
    Each z uses the exact binomial variance times ``inflation``; statistics whose expected count
    (or complement) is below ``min_expected`` are skipped so the normal approximation holds.
    The returned threshold is the two-sided Bonferroni bound at family-wise rate ``alpha``.
    """
    n_samples, n_vars = digits.shape
    z: list[float] = []
    labels: list[str] = []

    def add(mask_samples: NDArray[np.bool_], mask_states: NDArray[np.bool_], label: str) -> None:
        p = float(probs[mask_states].sum())
        if n_samples * min(p, 1.0 - p) < min_expected:
            return
        f = float(mask_samples.mean())
        z.append((f - p) / np.sqrt(inflation * p * (1.0 - p) / n_samples))
        labels.append(label)

    values = [np.unique(states[:, i]) for i in range(n_vars)]
    for i in range(n_vars):
        for a in values[i]:
            add(digits[:, i] == a, states[:, i] == a, f"P(x{i}={a})")
    for i, j in itertools.combinations(range(n_vars), 2):
        for a in values[i]:
            for b in values[j]:
                add(
                    (digits[:, i] == a) & (digits[:, j] == b),
                    (states[:, i] == a) & (states[:, j] == b),
                    f"P(x{i}={a},x{j}={b})",
                )
    z_arr = np.asarray(z)
    threshold = float(stats.norm.isf(alpha / (2 * max(len(z_arr), 1))))
    return MarginalZScores(z_arr, labels, threshold)


def assert_samples_match(
    digits: IntArray,
    cards: Sequence[int],
    probs: FloatArray,
    inflation: float = 1.0,
    alpha: float = 1e-6,
    label: str = "",
) -> None:
    """Fail unless the samples ``digits`` ``[N, n]`` are consistent with ``probs``.

    Runs the joint Pearson test and the Bonferroni-corrected marginal z-scores, each at level
    ``alpha / 2``, so an exact sampler fails with probability at most ``alpha`` (asymptotically).
    """
    digits = np.asarray(digits).astype(np.int64)
    states = enumerate_states(cards)
    indices = encode_states(digits, cards)
    gof = pearson_joint_test(indices, probs, inflation)
    zs = marginal_zscores(digits, states, probs, inflation, alpha / 2)
    worst_z = float(np.max(np.abs(zs.z))) if len(zs.z) else 0.0
    msg = (
        f"{label}: N={len(digits)}, inflation={inflation:.3f}; joint X2/infl={gof.statistic:.1f} "
        f"dof={gof.dof} p={gof.pvalue:.3g} TV={gof.tv_distance:.4f} impossible={gof.impossible_hits}; "
        f"max|z|={worst_z:.2f} (threshold {zs.threshold:.2f} over {len(zs.z)} marginals), worst={zs.worst}"
    )
    assert gof.pvalue > alpha / 2, "joint distribution mismatch — " + msg
    assert worst_z < zs.threshold, "marginal mismatch — " + msg
