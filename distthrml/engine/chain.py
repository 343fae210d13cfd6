"""The chain loop: the sampling schedule of one chain, with its observations.

`run_chain` is written for one chain and is a `jax.custom_batching.custom_vmap` function. Called
for one chain it scans `sweep` (any sampler). Under `jax.vmap` over chains (THRML users'
`jax.vmap(sample_states)`, and every shard of a sharded program) it lays the state out
`[rows, chains, ...]` once and runs the whole schedule there: sweeps through `sweep_chains` (on
the entries cut into one piece per free block, `split_entries`; 5 to 15 chains padded to 16
lanes, `narrow_lanes`), observations through the observer `jax.vmap`ped over the chains axis
of that layout, its carry and records kept chains-last too (so nothing is transposed between
observations). Programs whose samplers have no chains-innermost
kernel, batched program arrays or sampler states, or an observer closing over batched values
fall back to `jax.vmap` of the one-chain loop. Both paths give the same bits.

The multispin stream (`distthrml.multispin`) is defined on the batch: its state is packed 32
chains per word once, straight from `jax.vmap`'s chains-first layout (`engine.packed`), swept
with `sweep_packed` and unpacked to that layout for each observation; a call for one chain is a
batch of one.

The random stream is the plan's (`distthrml.rng`). Per-node stream: sweep t of a chain with key
`key` uses `node_rng.step_key(key, t)`. THRML stream: THRML's splits, `key, warm = split(key)`,
the warm-up sweeps use `split(warm, n_warmup)`, sample i its `split(split(key, n_samples - 1)[i - 1],
steps_per_sample)` (`segment_keys`); THRML-stream plans always take the `jax.vmap` path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
from jax import numpy as jnp
from jaxtyping import Array, Key

from .. import multispin, node_rng
from .packed import kernel_tables, pack_state, sweep_packed, unpack_state
from .plan import SweepPlan, chains_ready
from .sweep import chains_tables, join_entries, split_entries, sweep, sweep_chains

Observe = Callable[[Any, list, Any, Array], tuple[Any, Any]]
"""`observe(observe_args, state, carry, iteration) -> (carry, observation)` for one chain."""


def segment_keys(rng: str, key: Key[Array, ""], schedule):
    """The keys of the warm-up and of every later sample's sweeps: THRML's
    `key, warm = split(key)` and `split(key, n_samples - 1)`; `(None, None)` for the per-node
    stream, whose sweep keys come from the sweep number."""
    if rng != "thrml":
        return None, None
    key, warm = jax.random.split(key, 2)
    return warm, (jax.random.split(key, schedule.n_samples - 1) if schedule.n_samples > 1 else None)


def schedule_loop(schedule, run: Callable, observe: Callable, state, sampler_states, carry, keys=(None, None)):
    """`n_warmup` sweeps, an observation, then `n_samples - 1` times `steps_per_sample` sweeps and
    an observation; observations stacked on a leading axis.

    **Arguments:**

    - `schedule`: the `SamplingSchedule`.
    - `run`: `(segment_key, first_sweep, n_sweeps, state, sampler_states) -> (state, sampler_states)`.
    - `observe`: `(state, carry, iteration) -> (carry, observation)`.
    - `state`, `sampler_states`, `carry`: where the chain starts.
    - `keys`: `(warm-up key, per-sample keys)` from `segment_keys`, handed to `run`.
    """
    warm_key, sample_keys = keys
    state, sampler_states = run(warm_key, 0, schedule.n_warmup, state, sampler_states)
    carry, first = observe(state, carry, jnp.array(0, jnp.int32))
    if schedule.n_samples <= 1:
        return carry, jax.tree.map(lambda x: x[None], first)

    def body(c, x):
        (st, ss), cr = c
        i, k = x
        st, ss = run(k, schedule.n_warmup + (i - 1) * schedule.steps_per_sample, schedule.steps_per_sample, st, ss)
        cr, observed = observe(st, cr, i)
        return ((st, ss), cr), observed

    iterations = jnp.arange(1, schedule.n_samples, dtype=jnp.int32)
    (_, carry), rest = jax.lax.scan(body, ((state, sampler_states), carry), (iterations, sample_keys))
    return carry, jax.tree.map(lambda a, b: jnp.concatenate([a[None], b], axis=0), first, rest)


def _steps(first, n_sweeps: int):
    return jnp.asarray(first, jnp.int32) + jnp.arange(n_sweeps, dtype=jnp.int32)


# sweeps whose key words are derived together (`scan_sweeps`)
KEY_CHUNK = 64


def scan_sweeps(body: Callable, carry, first, n_sweeps: int, words: Callable):
    """`n_sweeps` times `carry = body(carry, w)`, sweep numbers `first ...`, with `w` the
    sweep's key words from `words(step)`.

    The words of up to `KEY_CHUNK` sweeps are derived in one vectorised call before their
    sweeps run: derived per sweep, the threefry `fold_in` of every chain (a rolled loop of tiny
    kernels on XLA:CPU) took about a quarter of a multispin sweep of a 256x256 torus x 64
    chains. Each sweep then takes its words out of the chunk by a reduction: a slice of the
    chunk (a scan over it) was fused into the per-node hash and recomputed per element, which
    made the per_node torus 6x slower. The same words either way.

    **Arguments:**

    - `body`: `(carry, words) -> carry`.
    - `carry`: the loop's carry.
    - `first`: the first sweep's number (traced or static).
    - `n_sweeps`: how many (static).
    - `words`: `step -> words`, the words of one sweep.
    """
    steps = _steps(first, n_sweeps)
    full, rest = divmod(n_sweeps, KEY_CHUNK)

    def run(c, chunk_steps):
        chunk = jax.vmap(words)(chunk_steps)
        rows = jnp.arange(chunk.shape[0])[:, None, None]

        def one(i, c):
            return body(c, jnp.max(jnp.where(rows == i, chunk, jnp.zeros((), chunk.dtype)), axis=0))

        return jax.lax.fori_loop(0, chunk.shape[0], one, c)

    if full:
        carry = jax.lax.scan(lambda c, s: (run(c, s), None), carry, steps[: full * KEY_CHUNK].reshape(full, KEY_CHUNK))[0]
    return run(carry, steps[full * KEY_CHUNK :]) if rest else carry


def run_chain(
    plan: SweepPlan,
    key: Key[Array, ""],
    schedule,
    state: list,
    sampler_states: list,
    carry,
    observe: Observe,
    observe_args=None,
):
    """Run one chain's schedule and return `(final carry, observations)`.

    **Arguments:**

    - `plan`: the `SweepPlan` of the state the chain runs on.
    - `key`: the chain's key.
    - `schedule`: the `SamplingSchedule`.
    - `state`: the chain's state entries (`[rows, ...]`).
    - `sampler_states`: one per free block.
    - `carry`: the observer's carry.
    - `observe`: see `Observe`; `observe_args` are its array arguments (passed, not closed over,
        so that batching them is seen).
    """
    arrays, static = eqx.partition(plan, eqx.is_array)

    def observer_for(args):
        return lambda st, c, i: observe(args, st, c, i)

    def one_chain(key, state, sampler_states, carry, arrays, observe_args):
        p = eqx.combine(arrays, static)

        def run(segment_key, first, n_sweeps: int, st, ss):
            if n_sweeps == 0:
                return st, ss
            if p.rng == "thrml":
                sweep_keys = jax.random.split(segment_key, n_sweeps)
                return jax.lax.scan(lambda c, k: (sweep(p, k, *c)[:2], None), (st, ss), sweep_keys)[0]

            def body(c, step):
                return sweep(p, node_rng.step_key(key, step), *c)[:2], None

            return jax.lax.scan(body, (st, ss), _steps(first, n_sweeps))[0]

        keys = segment_keys(p.rng, key, schedule)
        return schedule_loop(schedule, run, observer_for(observe_args), state, sampler_states, carry, keys)

    ready = chains_ready(plan) or plan.rng == "multispin"

    def chains_body(p, axis_size, key, key_b, state, state_b, sampler_states, carry, carry_b, observe_args):
        def words(step):
            # every chain's key words of this sweep, [2, chains]: one word contiguous across chains
            if key_b:
                return jax.vmap(lambda k: node_rng.key_words(node_rng.step_key(k, step)), out_axes=1)(key)
            return jnp.broadcast_to(node_rng.key_words(node_rng.step_key(key, step))[:, None], (2, axis_size))

        if p.rng == "multispin":
            return _multispin_body(p, axis_size, words, state, state_b, carry, carry_b, observer_for(observe_args), schedule, sampler_states)
        # chains innermost; unbatched entries (e.g. clamped states shared by all chains) broadcast
        inner = jax.tree.map(
            lambda x, b: jnp.moveaxis(x, 0, 1) if b else jnp.broadcast_to(x[:, None], (x.shape[0], axis_size, *x.shape[1:])),
            state,
            state_b,
        )
        # the observer's carry and records also keep the chains axis last: no transpose per observation
        carry = jax.tree.map(
            lambda x, b: jnp.moveaxis(x, 0, -1) if b else jnp.broadcast_to(jnp.asarray(x)[..., None], (*jnp.shape(x), axis_size)),
            carry,
            carry_b,
        )
        observe_chains = jax.vmap(observer_for(observe_args), in_axes=(1, -1, None), out_axes=-1)
        tables = chains_tables(p)  # hoisted out of the sweep loop
        lanes = narrow_lanes(axis_size)

        def widen(x):
            # extra lanes repeat the last chain (its state and key words) and are dropped
            return x if lanes == axis_size else jnp.pad(x, [(0, 0), (0, lanes - axis_size)] + [(0, 0)] * (x.ndim - 2), mode="edge")

        def run(_segment_key, first, n_sweeps: int, st, ss):
            if n_sweeps == 0:
                return st, ss

            def body(pieces, w):
                w = widen(w)
                return sweep_chains(p, tables, w[0:1], w[1:2], pieces)

            # the sweeps run on the entries cut into pieces, one per free block (`sweep_chains`)
            return join_entries(scan_sweeps(body, split_entries(p, st), first, n_sweeps, words)), ss

        def observe_narrow(st, c, i):
            return observe_chains(jax.tree.map(lambda x: x[:, :axis_size], st), c, i)

        carry, observed = schedule_loop(schedule, run, observe_narrow, jax.tree.map(widen, inner), sampler_states, carry)
        return jax.tree.map(lambda x: jnp.moveaxis(x, -1, 0), (carry, observed))  # [chains, (samples,) ...]

    def one_group(key, state, sampler_states, carry, arrays, observe_args):
        # the multispin stream is defined on a batch of chains: one chain is a batch of one
        unbatched = jax.tree.map(lambda _: False, (state, carry))
        p = eqx.combine(arrays, static)
        out = chains_body(p, 1, key, False, state, unbatched[0], sampler_states, carry, unbatched[1], observe_args)
        return jax.tree.map(lambda x: x[0], out)

    single = one_group if plan.rng == "multispin" else one_chain
    if _closes_over_batched(observer_for(observe_args), state, carry):
        return single(key, state, sampler_states, carry, arrays, observe_args)
    batched = jax.custom_batching.custom_vmap(single)

    @batched.def_vmap
    def rule(axis_size, in_batched, key, state, sampler_states, carry, arrays, observe_args):
        key_b, state_b, ss_b, carry_b, arrays_b, args_b = in_batched
        if not ready or any(jax.tree.leaves((ss_b, arrays_b, args_b))):
            in_axes = tuple(jax.tree.map(lambda b: 0 if b else None, x) for x in in_batched)
            out = jax.vmap(single, in_axes=in_axes)(key, state, sampler_states, carry, arrays, observe_args)
            return out, jax.tree.map(lambda _: True, out)
        p = eqx.combine(arrays, static)
        out = chains_body(p, axis_size, key, key_b, state, state_b, sampler_states, carry, carry_b, observe_args)
        return out, jax.tree.map(lambda _: True, out)

    return batched(key, state, sampler_states, carry, arrays, observe_args)


def _multispin_body(p: SweepPlan, axis_size: int, words: Callable, state, state_b, carry, carry_b, observe: Callable, schedule, sampler_states):
    """The schedule of a batch under the multispin stream: the entries packed 32 chains per word
    once, straight from the chains-first layout of `jax.vmap`, and unpacked back to it for each
    observation; the observer, its carry and records keep the chains axis first (nothing is
    transposed). Returns `(carry, observations)`, `[chains, (samples,) ...]`."""
    batch = jax.tree.map(lambda x, b: x if b else jnp.broadcast_to(x[None], (axis_size, *x.shape)), state, state_b)
    carry = jax.tree.map(lambda x, b: x if b else jnp.broadcast_to(jnp.asarray(x)[None], (axis_size, *jnp.shape(x))), carry, carry_b)
    observe_chains = jax.vmap(observe, in_axes=(0, 0, None))
    tables = kernel_tables(p)  # hoisted out of the sweep loop

    def run(_segment_key, first, n_sweeps: int, st, ss):
        if n_sweeps == 0:
            return st, ss

        def body(st, w):
            return sweep_packed(p, tables, *multispin.group_words(w[0], w[1]), st)

        return scan_sweeps(body, st, first, n_sweeps, words), ss

    packed = pack_state(batch)

    def observe_packed(st, c, i):
        # before any sweep (no warm-up) the state is `batch` itself; unpacking there let XLA fuse
        # the packing into the unpacking and redo every word per bit (180 ms against 3)
        return observe_chains(batch if st is packed else unpack_state(st, batch), c, i)

    carry, observed = schedule_loop(schedule, run, observe_packed, packed, sampler_states, carry)
    return carry, jax.tree.map(lambda x: jnp.moveaxis(x, 1, 0), observed)


# chains-axis widths that XLA:CPU vectorises poorly, and the width they are padded to (every
# chain's update is its own, so padding lanes change no sample). Measured (2 cores, AVX-512,
# per_node torus, same samples): 8 chains 0.08-0.09 -> 0.23-0.37 flips/ns padded to 16, 12
# chains 0.11 -> 0.39, 6 chains 0.07 -> 0.20; 1, 2 and 4 chains ran slower padded (0.12 -> 0.02,
# 0.32 -> 0.10, 0.20 -> 0.09), 24 chains the same padded to 32.
NARROW_CHAINS = range(5, 16)
NARROW_LANES = 16


def narrow_lanes(chains: int) -> int:
    """The lanes the chains-innermost kernels run `chains` chains on (`NARROW_CHAINS`)."""
    return NARROW_LANES if chains in NARROW_CHAINS else chains


def _closes_over_batched(observe: Callable, state, carry) -> bool:
    """Whether `observe` reads a value of an enclosing `jax.vmap` that is not one of its arguments
    (e.g. a transform capturing a batched array): `custom_vmap` cannot batch such a function."""
    consts = jax.make_jaxpr(lambda st, c: observe(st, c, jnp.array(0, jnp.int32)))(state, carry).consts
    return any(type(c).__name__ == "BatchTracer" for c in consts)
