"""The reference bit-packed checkerboard kernel: this machine's measured ceiling for exact Gibbs
sampling of a periodic Ising lattice (uniform coupling, no field).

Written by hand for one model and nothing else: the two sublattices as `[W, L, L/2]` arrays of
uint32 words (32 chains per word), neighbours by rolls, the agreeing neighbours counted
bit-sliced, and each spin drawn by a bitwise comparator of 24 bit planes against the five
thresholds, specialised at trace time. It draws the multispin stream's numbers
(`distthrml.multispin`) for the program `benchmarks/single_device.py` builds (node `r L + c`,
checkerboard blocks in node order, so the program index of sublattice site `(r, j)` is
`r L/2 + j`, plus `L^2/2` on the odd sublattice): it samples exactly what distthrml's multispin
path samples (`tests/test_multispin.py`), and `single_device.py` reports every figure as a fraction
of this kernel's.

    python benchmarks/reference_kernel.py --side 256 --chains 64 --sweeps 200
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

# run as a script, this folder comes first on sys.path, where benchmarks/partition.py shadows
# the partition package that distthrml imports
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax import numpy as jnp  # noqa: E402

from distthrml import multispin, node_rng  # noqa: E402
from distthrml.engine.chain import scan_sweeps  # noqa: E402

GOLDEN = 0x9E3779B9


def thresholds(beta: float) -> tuple[int, ...]:
    """The multispin thresholds of a node with 4 neighbours at coupling `beta`, no field."""
    table = multispin.thresholds_of(np.zeros(1), np.asarray([np.float32(beta)]), np.asarray([4]), 4)
    return tuple(int(t) for t in table[0])


def _count4(x0, x1, x2, x3):
    """Bit-sliced count of four bits: planes (c0, c1, c2)."""
    s01, c01 = x0 ^ x1, x0 & x1
    s23, c23 = x2 ^ x3, x2 & x3
    k = s01 & s23
    return s01 ^ s23, c01 ^ c23 ^ k, (c01 & c23) | (k & (c01 | c23))


def _update(neighbours, index, g0, g1, table):
    counter = list(_count4(*neighbours))
    x = node_rng.mix(index ^ g0)
    below = jnp.zeros(x.shape, jnp.uint32)
    equal = jnp.full(x.shape, 0xFFFFFFFF, jnp.uint32)
    for k in range(multispin.PLANES - 1, -1, -1):
        r = node_rng.mix((x + np.uint32((k * GOLDEN) & 0xFFFFFFFF)) ^ g1)
        t = multispin._select(counter, [(v >> k) & 1 for v in table])
        if isinstance(t, int):
            if t:
                below, equal = below | (equal & ~r), equal & r
            else:
                equal = equal & ~r
        else:
            below, equal = below | (equal & ~r & t), equal & ~(r ^ t)
    return below


def make_kernel(side: int, chains: int, beta: float, key_chunks: bool = False):
    """`run(keys, a, b, first, n_sweeps) -> (a, b)`: `n_sweeps` sweeps (sweep numbers `first ..`)
    of the packed sublattices `a`, `b` (`[W, L, L/2]`), chain c drawing with `keys[c]`.
    `key_chunks`: run the sweeps through the engine's `scan_sweeps`, which derives the chains'
    key words of `KEY_CHUNK` sweeps in one call, instead of one sweep at a time (the kernel as
    the issue filed it)."""
    half = side // 2
    table = thresholds(beta)
    rows, cols = np.arange(side)[:, None], np.arange(half)[None, :]
    index_a = jnp.asarray((rows * half + cols).astype(np.uint32))[None]
    index_b = index_a + np.uint32(side * half)
    odd = jnp.asarray((np.arange(side) % 2 == 1)[None, :, None])

    def around(x, even_left: bool):
        # the four neighbours on the other sublattice: rows r-1, r+1 at the same column, then the
        # two in row r, whose columns depend on the row's parity
        up, down = jnp.roll(x, 1, axis=1), jnp.roll(x, -1, axis=1)
        left, right = jnp.roll(x, 1, axis=2), jnp.roll(x, -1, axis=2)
        if even_left:  # site on sublattice a: even rows (j-1, j), odd rows (j, j+1)
            return up, down, jnp.where(odd, x, left), jnp.where(odd, right, x)
        return up, down, jnp.where(odd, left, x), jnp.where(odd, x, right)

    def run(keys, a, b, first, n_sweeps: int):
        def words_of(step):
            return jax.vmap(lambda k: node_rng.key_words(node_rng.step_key(k, step)), out_axes=1)(keys)

        def sweep(carry, words):
            a, b = carry
            g0, g1 = (g[:, None, None] for g in multispin.group_words(words[0], words[1]))
            a = _update(around(b, True), index_a, g0, g1, table)
            b = _update(around(a, False), index_b, g0, g1, table)
            return a, b

        if key_chunks:
            return scan_sweeps(sweep, (a, b), first, n_sweeps, words_of)
        steps = jnp.asarray(first, jnp.int32) + jnp.arange(n_sweeps, dtype=jnp.int32)
        return jax.lax.scan(lambda c, step: (sweep(c, words_of(step)), None), (a, b), steps)[0]

    return run


def to_sublattices(spins, side: int):
    """Bool spins `[chains, L*L]` (node r L + c) as packed sublattices `(a, b)`, `[W, L, L/2]`."""
    half = side // 2
    grid = spins.reshape(spins.shape[0], side, side)
    parity = np.arange(side)[:, None] % 2
    cols = 2 * np.arange(half)[None, :] + parity
    a = grid[:, np.arange(side)[:, None], cols]
    b = grid[:, np.arange(side)[:, None], cols + 1 - 2 * parity]
    pack = lambda x: multispin.pack(x.reshape(x.shape[0], -1)).reshape(-1, side, half)  # noqa: E731
    return pack(a), pack(b)


def from_sublattices(a, b, side: int, chains: int):
    """The inverse of `to_sublattices`: bool `[chains, L*L]`."""
    half = side // 2
    unpack = lambda x: multispin.unpack(x.reshape(x.shape[0], -1), chains).reshape(chains, side, half)  # noqa: E731
    parity = np.arange(side)[:, None] % 2
    cols = 2 * np.arange(half)[None, :] + parity
    grid = jnp.zeros((chains, side, side), bool)
    grid = grid.at[:, np.arange(side)[:, None], cols].set(unpack(a))
    grid = grid.at[:, np.arange(side)[:, None], cols + 1 - 2 * parity].set(unpack(b))
    return grid.reshape(chains, side * side)


def measure(side: int, chains: int, sweeps: int, repeats: int, beta: float = 0.3, key_chunks: bool = False) -> dict:
    """flips/ns of the reference kernel (best of `repeats`, compile excluded), on a lattice of
    `side` with `chains` rounded up to whole words."""
    chains = -(-chains // multispin.LANES) * multispin.LANES
    run = make_kernel(side, chains, beta, key_chunks)
    f = jax.jit(lambda keys, a, b: run(keys, a, b, 0, sweeps))
    w = chains // multispin.LANES
    a = b = jnp.zeros((w, side, side // 2), jnp.uint32)
    keys = jax.random.split(jax.random.key(0), chains)
    jax.block_until_ready(f(keys, a, b))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(f(keys, a, b))
        best = min(best, time.perf_counter() - start)
    return {"side": side, "chains": chains, "sweeps": sweeps, "seconds": round(best, 5), "flips_per_ns": round(chains * side * side * sweeps / best / 1e9, 4)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--chains", type=int, default=64)
    parser.add_argument("--sweeps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--key-chunks", action="store_true", help="derive the key words of many sweeps at once, as the engine does")
    args = parser.parse_args(argv)
    record = {"benchmark": "reference_kernel", **measure(args.side, args.chains, args.sweeps, args.repeats, key_chunks=args.key_chunks), "load": os.getloadavg()[0]}
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
