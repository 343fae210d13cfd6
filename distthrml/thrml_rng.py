"""THRML's random stream at chosen rows: `jax.random`'s draws for a whole block, evaluated only
at the rows a shard owns, bit for bit.

THRML's samplers draw a block's numbers with one `jax.random` call on the block's key, e.g.
`bernoulli(key, p)` with `p` of shape `[block, ...]`. With JAX's partitionable threefry
(`jax_threefry_partitionable`, on by default), element `f` (flat, row-major) of such a draw is
`threefry2x32(key, (f >> 32, f & 0xFFFFFFFF))`, folded into one word: a function of the key and
`f` alone. So a shard that owns rows `rows` of the block evaluates threefry at exactly the
counters of those rows (`jax.extend.random.threefry2x32_p`, JAX's public primitive) and applies
the same bits-to-value transform `jax.random` applies. `tests/test_thrml_stream.py` checks every
function here against `jax.random` itself.

Where that is not exact (a non-threefry key, partitionable threefry switched off, blocks of 2^32
or more numbers, dtypes other than float32 and float64) the full block is drawn with
`jax.random` and the rows are taken from it: exact, at the cost of the whole block's draw.

Every function takes `rows` (int `[n]`, positions in the block; a position outside
`[0, block_size)` is a padding row whose numbers are arbitrary) and `block_size`.
"""

from __future__ import annotations

import functools
import math

import jax
import numpy as np
from jax import lax
from jax import numpy as jnp
from jax.extend.random import threefry2x32_p
from jaxtyping import Array, Bool, Float, Int, Key, UInt

_UINT = {16: jnp.uint16, 32: jnp.uint32, 64: jnp.uint64}


def typed_key(key) -> Key[Array, "..."]:
    """A typed key (raw uint32 keys are wrapped with JAX's default implementation)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(key)


def at_counters(key, size: int, bit_width: int = 32) -> bool:
    """Whether a `size`-element draw of `bit_width`-bit words can be evaluated at chosen counters
    (threefry key, partitionable threefry, fewer than 2^32 elements, a supported width)."""
    if not jax.config.jax_threefry_partitionable or bit_width not in _UINT or size >= 2**32:
        return False
    if bit_width == 64 and not jax.config.jax_enable_x64:
        return False
    return str(jax.random.key_impl(typed_key(key))) == "threefry2x32"


def bits(key, rows: Int[Array, " n"], row_shape: tuple[int, ...], bit_width: int = 32) -> UInt[Array, "n ..."]:
    """`jax.random.bits(key, (block, *row_shape))[rows]` for a key where `at_counters` holds.

    **Arguments:**

    - `key`: the draw's key.
    - `rows`: the rows to evaluate.
    - `row_shape`: the shape of one row of the draw.
    - `bit_width`: 16, 32 or 64.
    """
    data = jax.random.key_data(typed_key(key))
    per_row = math.prod(row_shape)
    within = jnp.arange(per_row, dtype=jnp.uint32).reshape(row_shape)
    lo = rows.astype(jnp.uint32).reshape(rows.shape + (1,) * len(row_shape)) * np.uint32(per_row) + within
    k0 = jnp.broadcast_to(data[..., 0], lo.shape)
    k1 = jnp.broadcast_to(data[..., 1], lo.shape)
    b0, b1 = threefry2x32_p.bind(k0, k1, jnp.zeros_like(lo), lo)
    if bit_width == 64:
        return lax.shift_left(b0.astype(jnp.uint64), jnp.uint64(32)) | b1.astype(jnp.uint64)
    return (b0 ^ b1).astype(_UINT[bit_width])


def _bits_to_unit(words: UInt[Array, "..."], dtype) -> Float[Array, "..."]:
    """[0, 1) floats from random words as `jax.random.uniform` makes them: the top mantissa bits
    under the exponent of 1.0, minus 1."""
    finfo = jnp.finfo(dtype)
    uint = words.dtype
    mantissa = lax.shift_right_logical(words, jnp.asarray(finfo.bits - finfo.nmant, uint))
    one = jnp.asarray(np.array(1.0, dtype).view(uint), uint)
    return lax.bitcast_convert_type(lax.bitwise_or(mantissa, one), dtype) - jnp.asarray(1.0, dtype)


def _reproduced(dtype) -> bool:
    # float16/bfloat16 arithmetic is widened inside XLA fusions, so their rounding depends on
    # how the caller's computation is fused: drawn in full then
    return jnp.dtype(dtype) in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64))


def _exact_at_rows(key, size: int, dtype) -> bool:
    dtype = jnp.dtype(dtype)
    return _reproduced(dtype) and at_counters(key, size, jnp.finfo(dtype).bits)


def _rows_of(full: Array, rows: Int[Array, " n"], block_size: int) -> Array:
    return jnp.take(full, jnp.clip(rows, 0, block_size - 1), axis=0)


def _into_block(x: Array, rows: Int[Array, " n"], block_size: int) -> Array:
    # the rows' parameters in a whole block (zeros elsewhere, padding rows dropped): element i of
    # a jax.random draw depends on the key, i and parameter i only
    return jnp.zeros((block_size, *x.shape[1:]), x.dtype).at[rows].set(x, mode="drop")


def uniform(
    key, rows: Int[Array, " n"], block_size: int, row_shape: tuple[int, ...] = (), dtype=jnp.float32, minval=0.0, maxval=1.0
) -> Float[Array, "n ..."]:
    """`jax.random.uniform(key, (block_size, *row_shape), dtype, minval, maxval)[rows]`.

    **Arguments:**

    - `key`: the draw's key.
    - `rows`, `block_size`: see the module docstring.
    - `row_shape`: the shape of one row.
    - `dtype`, `minval`, `maxval`: as in `jax.random.uniform` (scalars).
    """
    dtype = jnp.dtype(dtype)
    if not _exact_at_rows(key, block_size * math.prod(row_shape), dtype):
        return _rows_of(jax.random.uniform(key, (block_size, *row_shape), dtype, minval, maxval), rows, block_size)
    return _scaled(bits(key, rows, row_shape, jnp.finfo(dtype).bits), dtype, minval, maxval)


@functools.partial(jax.jit, static_argnums=(1,))
def _scaled(words, dtype, minval, maxval):
    # compiled as one unit, like jax.random's own `_uniform`: XLA may fuse `unit * range + lo`
    # into a fused multiply-add, and must do so the same way for both
    lo, hi = jnp.asarray(minval, dtype), jnp.asarray(maxval, dtype)
    return lax.max(lo, _bits_to_unit(words, dtype) * (hi - lo) + lo)


def bernoulli(key, rows: Int[Array, " n"], block_size: int, p: Float[Array, "n ..."]) -> Bool[Array, "n ..."]:
    """`jax.random.bernoulli(key, P)[rows]` where `P` is a `[block_size, ...]` probability array
    whose rows at `rows` are `p` (`mode="low"`, JAX's default).

    **Arguments:**

    - `key`: the draw's key.
    - `rows`, `block_size`: see the module docstring.
    - `p`: the probabilities of the rows.
    """
    if not _exact_at_rows(key, block_size * math.prod(p.shape[1:]), p.dtype):
        return _rows_of(jax.random.bernoulli(key, _into_block(p, rows, block_size)), rows, block_size)
    return uniform(key, rows, block_size, p.shape[1:], p.dtype) < p


def gumbel(key, rows: Int[Array, " n"], block_size: int, row_shape: tuple[int, ...], dtype=jnp.float32) -> Float[Array, "n ..."]:
    """`jax.random.gumbel(key, (block_size, *row_shape), dtype)[rows]` in JAX's default ("low") mode.

    **Arguments:**

    - `key`: the draw's key.
    - `rows`, `block_size`: see the module docstring.
    - `row_shape`: the shape of one row.
    - `dtype`: a float dtype.
    """
    if _high_range_gumbel() or not _exact_at_rows(key, block_size * math.prod(row_shape), dtype):
        return _rows_of(jax.random.gumbel(key, (block_size, *row_shape), dtype), rows, block_size)
    return _gumbel_of(uniform(key, rows, block_size, row_shape, dtype, jnp.finfo(dtype).tiny, 1.0))


@jax.jit
def _gumbel_of(u):
    # one compiled unit, like jax.random's `_gumbel`, so that eager calls round alike
    return -jnp.log(-jnp.log(u))


def categorical(key, rows: Int[Array, " n"], block_size: int, logits: Float[Array, "n K"]) -> Int[Array, " n"]:
    """`jax.random.categorical(key, L, axis=-1)[rows]` where `L` is a `[block_size, K]` logit array
    whose rows at `rows` are `logits` (Gumbel-max, as JAX samples it).

    **Arguments:**

    - `key`: the draw's key.
    - `rows`, `block_size`: see the module docstring.
    - `logits`: the rows' logits, categories on the last axis.
    """
    if _high_range_gumbel() or not _exact_at_rows(key, block_size * math.prod(logits.shape[1:]), logits.dtype):
        return _rows_of(jax.random.categorical(key, _into_block(logits, rows, block_size), axis=-1), rows, block_size)
    return jnp.argmax(gumbel(key, rows, block_size, logits.shape[1:], logits.dtype) + logits, axis=-1)


def normal(key, rows: Int[Array, " n"], block_size: int, row_shape: tuple[int, ...] = (), dtype=jnp.float32) -> Float[Array, "n ..."]:
    """`jax.random.normal(key, (block_size, *row_shape), dtype)[rows]` (real dtypes).

    **Arguments:**

    - `key`: the draw's key.
    - `rows`, `block_size`: see the module docstring.
    - `row_shape`: the shape of one row.
    - `dtype`: a real float dtype.
    """
    dtype = jnp.dtype(dtype)
    if not _exact_at_rows(key, block_size * math.prod(row_shape), dtype):
        return _rows_of(jax.random.normal(key, (block_size, *row_shape), dtype), rows, block_size)
    lo = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype), dtype=dtype)
    return _normal_of(uniform(key, rows, block_size, row_shape, dtype, lo, 1.0))


@jax.jit
def _normal_of(u):
    return lax.mul(jnp.asarray(np.sqrt(2), u.dtype), lax.erf_inv(u))


def _high_range_gumbel() -> bool:
    # JAX's gumbel switches to two uniforms per draw under this flag; drawn in full then
    return bool(getattr(jax.config, "jax_high_dynamic_range_gumbel", False))
