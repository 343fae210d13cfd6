r"""The multispin stream and its kernel: 32 chains per uint32 word, every update bitwise.

**Which blocks.** A free spin block whose conditional field takes few values per node: every
interaction has spin tails only, every active term of node i has the same magnitude $J_i$
(signs free: uniform or $\pm J$ couplings), so that with $d_i$ active terms and $a$ of them
agreeing ($\operatorname{sign}(w) \prod s = +1$) the field is $\gamma_i(a) = b_i + J_i (2a - d_i)$,
$b_i$ the node's bias. The tables (`MultispinTables`) hold per node and term a sign mask and an
"on" mask, and the 24-bit thresholds $T_i(a) = \lceil 2^{24} \sigma(2 \gamma_i(a)) \rceil$ for
$a = 0 \dots D$ (computed on the host in float64 from the float32 parameters), so that

    P(spin +1 | a) = T_i(a) / 2^24,

exact at 24-bit resolution, like the per-node stream's `u < sigmoid(2 gamma)` on 24-bit uniforms.

**The random stream.** Chains are packed in groups of 32 (chain c of a batch is bit c % 32 of word
c // 32; a last group with fewer chains has unused lanes). In sweep t, group g draws for node i
(program index) the 24 bit planes

    R_k = hash_words(G0_g, G1_g, i, k),   k = 0 .. 23   (`node_rng.hash_words`),

lane l's 24-bit number being $m_l = \sum_k \mathrm{bit}_l(R_k) 2^k$; the new spin is $m_l < T_i(a_l)$,
compared bit-serially from plane 23 down. The group words are
`G0_g = XOR_l hash_words(k0_l, k1_l, l, 0)` and `G1_g = XOR_l hash_words(k0_l, k1_l, l, 1)` over
the group's lanes l, with `k0_l, k1_l` chain l's key words of sweep t (as in the per-node
stream: `node_rng.key_words(fold_in(key, t))`). So every draw is a function of (the keys of the
chain group, sweep, program index, plane): never of a node's position in a block or shard, which
keeps sharded runs bit for bit equal to unsharded ones. Unlike the per-node stream, a chain's
samples depend on the other chains of its group: a batch of 64 chains is not 64 one-chain runs.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import numpy as np
from jax import numpy as jnp
from jaxtyping import Array, UInt32

from . import node_rng

LANES = 32
PLANES = 24
_ALL = np.uint32(0xFFFFFFFF)


def threshold_planes(thresholds: np.ndarray) -> np.ndarray:
    """`planes[i, k]`: bit a is bit k of `thresholds[i, a]` (uint32 `[n, 24]`, `D + 1 <= 32`).

    **Arguments:**

    - `thresholds`: int `[n, D + 1]`.
    """
    t = np.asarray(thresholds, np.int64)
    bits = (t[:, None, :] >> np.arange(PLANES)[None, :, None]) & 1  # [n, 24, D + 1]
    return (bits << np.arange(t.shape[1])[None, None, :]).sum(axis=2).astype(np.uint32)


class MultispinTables(eqx.Module):
    """A spin block's multispin tables (rows: the block's nodes).

    **Attributes:**

    - `neg`: per interaction with tails, uint32 `[n, k]`: all ones where the term's weight is
        negative (its agreement is flipped), else 0.
    - `on`: per interaction with tails, uint32 `[n, k]`: all ones where the term is active
        (not padding, nonzero weight), else 0.
    - `thresholds`: int32 `[n, D + 1]`, `T_i(a)` for `a = 0 .. D`.
    - `planes`: uint32 `[n, 24]`: bit a of `planes[i, k]` is bit k of `T_i(a)` (what the
        comparator reads per plane when the thresholds differ between rows; `[24, n]` in
        `kernel_layout`).
    - `n_tails`: per interaction with tails, how many tail spins each term multiplies.
    - `tail_groups`: per interaction with tails, its index in the block's interaction list.
    - `uniform`: the thresholds as a tuple when every row has the same (then the comparator
        is specialised to them at trace time), else None.
    - `plain`: per interaction with tails, whether every term is active and positive (its masks
        are then skipped at trace time).
    """

    neg: list[UInt32[Array, "n k"]]
    on: list[UInt32[Array, "n k"]]
    thresholds: Array
    planes: Array
    n_tails: tuple[int, ...] = eqx.field(static=True)
    tail_groups: tuple[int, ...] = eqx.field(static=True)
    uniform: tuple[int, ...] | None = eqx.field(static=True)
    plain: tuple[bool, ...] = eqx.field(static=True, default=())

    def kernel_layout(self) -> "MultispinTables":
        """The same tables with `planes` transposed to `[24, n]` (contiguous per plane), as the
        kernel reads them; done once per run, outside the sweep loop."""
        return dataclasses.replace(self, planes=self.planes.T)


def thresholds_of(bias: np.ndarray, magnitude: np.ndarray, degree: np.ndarray, top: int) -> np.ndarray:
    r"""`T_i(a) = ceil(2^24 sigma(2 (b_i + J_i (2 min(a, d_i) - d_i))))`, int32 `[n, top + 1]`,
    in float64 (values of `a` above `d_i` cannot occur; they repeat `a = d_i`).

    **Arguments:**

    - `bias`: `b_i`, the sum of the node's bias terms.
    - `magnitude`: `J_i`, its terms' common magnitude (0 without terms).
    - `degree`: `d_i`, its number of active terms.
    - `top`: D, the largest degree of the block.
    """
    a = np.minimum(np.arange(top + 1)[None, :], degree[:, None])
    gamma = bias[:, None].astype(np.float64) + magnitude[:, None].astype(np.float64) * (2 * a - degree[:, None])
    p = 0.5 * (1.0 + np.tanh(gamma))  # sigma(2 gamma), without overflow for large |gamma|
    return np.clip(np.ceil(p * 2.0**PLANES), 0, 2**PLANES).astype(np.int32)


def _mux(sel, x, y):
    """`y` where `sel`'s bits are set, else `x`; Python ints 0/1 are constant words (folded)."""
    if isinstance(x, int) and isinstance(y, int):
        if x == y:
            return x
        return sel if (x, y) == (0, 1) else ~sel
    if isinstance(x, int):
        return (sel & y) if x == 0 else (~sel | y)
    if isinstance(y, int):
        return (x & ~sel) if y == 0 else (x | sel)
    return x ^ (sel & (x ^ y))


def _select(counter: list, leaves: list):
    """The leaf indexed by the bit-sliced counter, per lane (a multiplexer tree)."""
    level = leaves + [leaves[-1]] * ((1 << len(counter)) - len(leaves))
    for c in counter:
        level = [_mux(c, level[2 * i], level[2 * i + 1]) for i in range(len(level) // 2)]
    return level[0]


def _count(bits: list, n_planes: int) -> list:
    """Bit-sliced sum of the lanes' bits: `n_planes` words, plane p holding bit p of each count."""
    counter = []
    for x in bits:
        carry = x
        for p in range(n_planes):
            if p == len(counter):
                counter.append(carry)
                break
            counter[p], carry = counter[p] ^ carry, counter[p] & carry
    return counter + [jnp.zeros_like(bits[0])] * (n_planes - len(counter)) if bits else counter


def packed_update(g0: UInt32[Array, "W 1"], g1: UInt32[Array, "W 1"], node_index, tables: MultispinTables, column) -> UInt32[Array, "W n"]:
    """New words `[W, n]` of a block under the multispin stream (lane l of word w: chain 32 w + l).

    **Arguments:**

    - `g0`, `g1`: every chain group's words of this sweep (`group_words`), `[W, 1]`.
    - `node_index`: int32 `[n]` program indices of the block's rows.
    - `tables`: the block's `MultispinTables`, in `kernel_layout`.
    - `column`: `column(i, j)`: interaction i's tail words at slot j, `[W, n]` each.
    """
    agree = []
    for i, group, n_tails in zip(range(len(tables.neg)), tables.tail_groups, tables.n_tails):
        neg, on = tables.neg[i], tables.on[i]
        for j in range(neg.shape[1]):
            tails = column(group, j)
            t = tails[0]
            for s in tails[1:]:
                t = t ^ s
            # the product of the tail spins is +1 iff an even number of them is -1 (bit 0)
            if n_tails % 2 == 0:
                t = ~t
            agree.append(t if tables.plain[i] else (t ^ neg[None, :, j]) & on[None, :, j])
    top = tables.thresholds.shape[1] - 1
    counter = _count(agree, max(top, 1).bit_length())
    if tables.uniform is not None:
        per_plane = lambda k: _select(counter, [(t >> k) & 1 for t in tables.uniform])  # noqa: E731
    else:
        def per_plane(k):
            bits = tables.planes[k][None, :]
            return _select(counter, [jnp.uint32(0) - ((bits >> np.uint32(a)) & np.uint32(1)) for a in range(top + 1)])

    x = node_rng.mix(node_index.astype(jnp.uint32)[None, :] ^ g0)
    below = jnp.zeros(x.shape, jnp.uint32)
    equal = jnp.full(x.shape, _ALL, jnp.uint32)
    for k in range(PLANES - 1, -1, -1):
        r = node_rng.mix((x + np.uint32((k * 0x9E3779B9) & 0xFFFFFFFF)) ^ g1)
        t = per_plane(k)
        # bit-serial comparison from the top plane: below once a plane has r = 0 where t = 1
        # and every higher plane agreed
        if isinstance(t, int):
            below, equal = (below | (equal & ~r), equal & r) if t else (below, equal & ~r)
        else:
            below, equal = below | (equal & ~r & t), equal & ~(r ^ t)
    return below


def group_words(k0: UInt32[Array, " chains"], k1: UInt32[Array, " chains"]) -> tuple[Array, Array]:
    """`(G0, G1)`, uint32 `[W]`: every group's words from its chains' key words (module doc).

    **Arguments:**

    - `k0`, `k1`: every chain's key words of this sweep.
    """
    chains = k0.shape[0]
    lane = jnp.arange(chains, dtype=jnp.uint32) % LANES
    w = -(-chains // LANES)
    pad = w * LANES - chains

    def fold(word: int):
        h = node_rng.hash_words(k0, k1, lane, word)
        h = jnp.concatenate([h, jnp.zeros((pad,), jnp.uint32)]) if pad else h
        return jax.lax.reduce(h.reshape(w, LANES), np.uint32(0), jax.lax.bitwise_xor, (1,))

    return fold(0), fold(1)


def pack(x) -> UInt32[Array, "W n"]:
    """Bool spins `[chains, n]` as words `[W, n]` (chain c: bit c % 32 of word c // 32), straight
    from the layout `jax.vmap` hands over: 32 shifted ORs along the node axis, which vectorise.
    (Transposing to `[n, chains]` and packing bytes with `packbits`, then the way back for the
    observation, cost a call on a 256x256 torus x 64 chains as much as 20 of its sweeps; now 5.)

    **Arguments:**

    - `x`: bool `[chains, n]`.
    """
    chains, n = x.shape
    w = -(-chains // LANES)
    lanes = jnp.pad(x, ((0, w * LANES - chains), (0, 0))).reshape(w, LANES, n).astype(jnp.uint32)
    words = lanes[:, 0]
    for lane in range(1, LANES):
        words = words | (lanes[:, lane] << np.uint32(lane))
    return words


def unpack(words: UInt32[Array, "W n"], chains: int):
    """Words `[W, n]` back to bool spins `[chains, n]`.

    **Arguments:**

    - `words`: uint32 `[W, n]`.
    - `chains`: the batch's chain count.
    """
    shifts = jnp.arange(LANES, dtype=jnp.uint32)[None, :, None]
    bits = (words[:, None, :] >> shifts) & np.uint32(1)
    return bits.reshape(-1, words.shape[1])[:chains].astype(jnp.bool_)
