"""Block Gibbs specifications, sampling programs and the sampling loop.

THRML's API on the one engine (`distthrml.engine`): a program's own tables are its sweep plan,
run on the *global* state (one array pytree per node shape/dtype), each updated block written
into its contiguous slice. A program draws from one of two random streams, fixed when it is
built (`rng=`, see `distthrml.rng`): THRML's (the same key splits and `jax.random` draws as
THRML 0.1.4, so the same samples for the same keys) or the per-node stream (sweep t of a chain
uses `fold_in(key, t)` and every node draws from that key and its program index,
`distthrml.node_rng`). Programs that run many chains at once (`BatchedProgram`, e.g. a sharded
program) are dispatched to through their own `sample_with_observation`.
"""

from __future__ import annotations

import abc
import copy
import dataclasses
from collections.abc import Sequence
from typing import Mapping, Type, TypeAlias

import equinox as eqx
import jax
import numpy as np
from jax import numpy as jnp
from jaxtyping import Array, Key, PyTree, Shaped

from ._arrays import Frozen, take_rows
from .block_management import Block, BlockSpec, _State, block_state_to_global, global_to_block_state, verify_block_state
from .conditional_samplers import AbstractConditionalSampler, _SamplerState
from .engine import program_plan, run_chain, sweep, update_block
from .errors import BlockError, ProgramError, StateCountError, StateError
from .interaction import InteractionGroup
from .lowering import check_simultaneous_updates, lower_interaction_groups
from .observers import AbstractObserver, ObserveCarry, StateObserver, observe_global_state
from .pgm import DEFAULT_NODE_SHAPE_DTYPES, AbstractNode
from .rng import check_rng, resolve_rng

SuperBlock: TypeAlias = tuple[Block, ...] | Block
_SD: TypeAlias = Mapping[Type[AbstractNode], PyTree[jax.ShapeDtypeStruct]]


class BlockGibbsSpec(BlockSpec):
    """A `BlockSpec` of free blocks (grouped into superblocks) followed by clamped blocks.

    Blocks in one superblock are sampled at the same algorithmic time: all read the state as it
    was before any of them is updated.

    **Attributes:**

    - `free_blocks`: the free blocks, in order.
    - `sampling_order`: per superblock, the indices of its free blocks.
    - `clamped_blocks`: the blocks held fixed.
    - `superblocks`: the superblocks as tuples of blocks.
    """

    def __init__(
        self,
        free_super_blocks: Sequence[SuperBlock],
        clamped_blocks: list[Block],
        node_shape_dtypes: _SD = DEFAULT_NODE_SHAPE_DTYPES,
    ):
        """**Arguments:**

        - `free_super_blocks`: each element a `Block` or a tuple of blocks sampled together.
        - `clamped_blocks`: blocks whose nodes stay fixed.
        - `node_shape_dtypes`: node type -> pytree of `jax.ShapeDtypeStruct`.
        """
        free_blocks, sampling_order, superblocks = [], [], []
        for s, item in enumerate(free_super_blocks):
            members = (item,) if isinstance(item, Block) else tuple(item)
            for m in members:
                if not isinstance(m, Block):
                    raise BlockError(f"free superblock {s} contains a {type(m).__name__}, not a Block")
            superblocks.append(members)
            sampling_order.append(list(range(len(free_blocks), len(free_blocks) + len(members))))
            free_blocks.extend(members)
        clamped_blocks = list(clamped_blocks)
        super().__init__(free_blocks + clamped_blocks, node_shape_dtypes)
        self.free_blocks = free_blocks
        self.clamped_blocks = clamped_blocks
        self.sampling_order = sampling_order
        self.superblocks = superblocks


class BlockSamplingProgram(eqx.Module):
    """A block-sampling program: a spec, one sampler per free block, and the interactions lowered
    to padded arrays.

    **Attributes:**

    - `gibbs_spec`: the division into free and clamped blocks.
    - `samplers`: one sampler per free block.
    - `per_block_interactions`: per free block, the interaction pytrees sliced to `[n, k, ...]`.
    - `per_block_interaction_active`: per free block, bool `[n, k]` masks (False = padding).
    - `per_block_interaction_global_inds`: per free block and interaction, the global-state
        entry of each tail.
    - `per_block_interaction_global_slices`: per free block and interaction, int `[n, k]`
        positions of each tail in its global-state entry.
    - `per_block_interaction_groups`: per free block, the index of the interaction group each
        entry comes from (distthrml).
    - `per_block_node_index`: per free block, its nodes' program indices (distthrml; the
        counters of per-node randomness).
    - `per_block_interaction_tail_index`: per free block and interaction, the tails' program
        indices `[n, k]` (-1 for padding), numpy (distthrml; used by `interaction_graph` and sharding).
    - `rng`: the random stream, `"thrml"`, `"per_node"` or `"multispin"` (distthrml; see
        `distthrml.rng`).
    - `per_block_multispin`: per free block, its `distthrml.multispin.MultispinTables` when the
        stream is `"multispin"`, else None (distthrml).
    """

    gibbs_spec: BlockGibbsSpec
    samplers: list[AbstractConditionalSampler]
    per_block_interactions: list[list[PyTree]]
    per_block_interaction_active: list[list[Array]]
    per_block_interaction_global_inds: list[list[list[int]]]
    per_block_interaction_global_slices: list[list[list[Array]]]
    per_block_interaction_groups: list[list[int]]
    per_block_node_index: list[Array]
    per_block_interaction_tail_index: list[list[tuple[np.ndarray, ...]]] = eqx.field(static=True)
    rng: str = eqx.field(static=True)
    per_block_multispin: list | None = None

    def __init__(
        self,
        gibbs_spec: BlockGibbsSpec,
        samplers: list[AbstractConditionalSampler],
        interaction_groups: list[InteractionGroup],
        *,
        allow_simultaneous_reads: bool = False,
        rng: str | None = None,
    ):
        """**Arguments:**

        - `gibbs_spec`: the division of the PGM into free and clamped blocks.
        - `samplers`: the update rule of each free block, in order.
        - `interaction_groups`: the interactions that define how nodes affect each other.
        - `allow_simultaneous_reads`: accept nodes that read each other's state while being
            sampled at the same time (same block or superblock); each then reads the other's
            state from before the step, as THRML does. This is not Gibbs sampling of the model,
            so by default such a program is an error.
        - `rng`: the random stream, `"thrml"`, `"per_node"` or `"multispin"`; None takes the
            process default (`distthrml.set_rng`, else the environment variable `DISTTHRML_RNG`,
            else `"per_node"`).
        """
        self.rng = resolve_rng(rng)
        n_free = len(gibbs_spec.free_blocks)
        if len(samplers) != n_free:
            raise ProgramError(
                f"Expected {n_free} samplers, received {len(samplers)} (one per free block)"
            )
        for i, sampler in enumerate(samplers):
            if not isinstance(sampler, AbstractConditionalSampler):
                raise ProgramError(f"sampler {i} is a {type(sampler).__name__}, not an AbstractConditionalSampler")
        for g, group in enumerate(interaction_groups):
            if not isinstance(group, InteractionGroup):
                raise ProgramError(f"interaction group {g} is a {type(group).__name__}, not an InteractionGroup")
        lowered = lower_interaction_groups(gibbs_spec, interaction_groups)
        if not allow_simultaneous_reads:
            check_simultaneous_updates(gibbs_spec, lowered)

        self.gibbs_spec = gibbs_spec
        self.samplers = list(samplers)
        self.per_block_interactions = [
            [
                jax.tree.map(lambda x, r=e.rows: take_rows(x, r) if eqx.is_array(x) else x, interaction_groups[e.group].interaction)
                for e in entries
            ]
            for entries in lowered
        ]
        self.per_block_interaction_active = [[jnp.asarray(e.active) for e in entries] for entries in lowered]
        self.per_block_interaction_global_inds = [[list(e.tail_sd) for e in entries] for entries in lowered]
        self.per_block_interaction_global_slices = [
            [[jnp.asarray(p) for p in e.tail_positions] for e in entries] for entries in lowered
        ]
        self.per_block_interaction_groups = [[e.group for e in entries] for entries in lowered]
        self.per_block_node_index = [
            jnp.asarray(np.arange(gibbs_spec.block_starts[b], gibbs_spec.block_starts[b + 1], dtype=np.int32))
            for b in range(n_free)
        ]
        self.per_block_interaction_tail_index = Frozen([[e.tail_program_index for e in entries] for entries in lowered])
        self.per_block_multispin = multispin_tables(self) if self.rng == "multispin" else None

    def with_rng(self, rng: str) -> "BlockSamplingProgram":
        """The same program drawing from another random stream (nothing is lowered again).

        **Arguments:**

        - `rng`: `"thrml"`, `"per_node"` or `"multispin"`.
        """
        out = copy.copy(self)
        object.__setattr__(out, "rng", check_rng(rng))
        object.__setattr__(out, "per_block_multispin", multispin_tables(out) if rng == "multispin" else None)
        return out


def multispin_tables(program: BlockSamplingProgram) -> list:
    """Every free block's multispin tables, or a `ProgramError` naming the block that the
    multispin stream cannot sample (`distthrml.multispin`).

    **Arguments:**

    - `program`: a program whose state entries are all spins.
    """
    spec = program.gibbs_spec
    for node_type in {b.node_type for b in spec.blocks}:
        sd = spec.node_shape_struct[node_type]
        leaves = jax.tree.leaves(sd)
        if len(leaves) != 1 or leaves[0].shape != () or leaves[0].dtype != jnp.bool_:
            raise ProgramError(
                f"the multispin stream samples spin programs only; {node_type.__name__} has state {sd}"
            )
    out = []
    for b, sampler in enumerate(program.samplers):
        try:
            out.append(sampler.multispin_tables(program.per_block_interactions[b], program.per_block_interaction_active[b]))
        except ProgramError as err:
            raise ProgramError(f"free block {b}: {err}") from None
    return out


@dataclasses.dataclass
class SamplingSchedule:
    """How long to sample.

    **Attributes:**

    - `n_warmup`: sweeps before the first sample.
    - `n_samples`: samples to collect.
    - `steps_per_sample`: sweeps between consecutive samples.
    """

    n_warmup: int
    n_samples: int
    steps_per_sample: int

    def __hash__(self) -> int:
        return hash((self.n_warmup, self.n_samples, self.steps_per_sample))


def global_to_block_states(program: BlockSamplingProgram, global_state: list) -> tuple[list[_State], list[_State]]:
    """Split a program's global state into (free block states, clamped block states)."""
    states = global_to_block_state(global_state, program.gibbs_spec)
    n_free = len(program.gibbs_spec.free_blocks)
    return states[:n_free], states[n_free:]


def check_program_states(program: BlockSamplingProgram, state_free, state_clamp) -> None:
    """Raise `StateError` naming the block when the free or clamped states do not fit `program`
    (count, node shapes and dtypes, one chain: no batch axis).

    **Arguments:**

    - `program`: the program.
    - `state_free`, `state_clamp`: one state per free and per clamped block.
    """
    spec = program.gibbs_spec
    if len(state_free) != len(spec.free_blocks):
        raise StateError(
            f"Number of states not equal to number of blocks: got {len(state_free)} free block states "
            f"for {len(spec.free_blocks)} free blocks"
        )
    if len(state_clamp) != len(spec.clamped_blocks):
        raise StateError(
            f"Number of states not equal to number of blocks: got {len(state_clamp)} clamped block states "
            f"for {len(spec.clamped_blocks)} clamped blocks"
        )
    try:
        verify_block_state(spec.free_blocks, state_free, spec.node_shape_struct, -1)
    except StateError as err:
        raise StateError(f"initial/free {err}") from None
    try:
        verify_block_state(spec.clamped_blocks, state_clamp, spec.node_shape_struct, -1)
    except StateError as err:
        raise StateError(f"clamped {err}") from None
    for kind, blocks, states in (("free", spec.free_blocks, state_free), ("clamped", spec.clamped_blocks, state_clamp)):
        for i, (block, state) in enumerate(zip(blocks, states)):
            sd = spec.node_shape_struct[block.node_type]
            for leaf, leaf_sd in zip(jax.tree.leaves(state), jax.tree.leaves(sd)):
                if leaf.ndim != len(leaf_sd.shape) + 1:
                    raise StateError(
                        f"{kind} block {i}: state has shape {leaf.shape}, expected {(len(block), *leaf_sd.shape)} "
                        "(batch dimensions belong outside: use jax.vmap)"
                    )


def sample_single_block(
    key: Key[Array, ""],
    state_free: list[_State],
    clamp_state: list[_State],
    program: BlockSamplingProgram,
    block: int,
    sampler_state: _SamplerState,
    global_state: list[PyTree] | None = None,
) -> tuple[_State, _SamplerState]:
    """Sample one free block given the current states.

    As in THRML, the state lists are read by position: `state_free + clamp_state` may be longer
    than the spec's blocks (the first entries are used), and the sampler's output is returned as
    it is (THRML-stream programs call `sampler.sample(key, ...)` exactly as THRML does).

    **Arguments:**

    - `key`: the PRNG key of this update.
    - `state_free`: the free blocks' states.
    - `clamp_state`: the clamped blocks' states.
    - `program`: the sampling program.
    - `block`: index of the free block to sample.
    - `sampler_state`: that block's sampler state.
    - `global_state`: the global state of `state_free + clamp_state`, if already built.

    **Returns:** `(new block state, new sampler state)`.
    """
    if global_state is None:
        global_state = block_state_to_global(list(state_free) + list(clamp_state), program.gibbs_spec)
    return update_block(program_plan(program), block, key, global_state, sampler_state)


def sample_blocks(
    key: Key[Array, ""],
    state_free: list[_State],
    clamp_state: list[_State],
    program: BlockSamplingProgram,
    sampler_state: list[_SamplerState],
) -> tuple[list[_State], list[_SamplerState]]:
    """One sweep: sample every superblock once, in order (THRML stream: block i gets
    `jax.random.split(key, n_free_blocks)[i]`).

    **Arguments:**

    - `key`: the PRNG key of this sweep.
    - `state_free`: the free blocks' states.
    - `clamp_state`: the clamped blocks' states.
    - `program`: the sampling program.
    - `sampler_state`: one sampler state per free block.

    **Returns:** the free blocks' new states as their samplers returned them (a sampler may
    return another dtype, as in THRML) and the new sampler states; as in THRML, they are also
    written into the lists passed in.
    """
    check_program_states(program, state_free, clamp_state)
    global_state = block_state_to_global(list(state_free) + list(clamp_state), program.gibbs_spec)
    _, new_sampler_state, outputs = sweep(program_plan(program), key, global_state, sampler_state, keep_dtypes=True)
    # THRML writes the new states into the lists it is given and returns them
    state_free = _updated(state_free, outputs)
    return state_free, _updated(sampler_state, new_sampler_state)


def _updated(items, values: list):
    """`items` with every entry replaced by `values` (in place for a list, as THRML does)."""
    if isinstance(items, list):
        items[:] = values
        return items
    return list(values)


def _tree_slice(x, sl):
    """THRML 0.1.4's private helper: `jnp.take(x, sl, axis=0)` for arrays, anything else as is."""
    return jnp.take(x, sl, axis=0) if eqx.is_array(x) else x


def _run_blocks(
    key: Key[Array, ""],
    program: BlockSamplingProgram,
    init_chain_state: list[PyTree[Shaped[Array, "nodes ?*state"]]],
    state_clamp: list[_State],
    n_iters: int,
    sampler_states: list[_SamplerState],
) -> tuple[list[PyTree[Shaped[Array, "nodes ?*state"]]], list[_SamplerState]]:
    """THRML 0.1.4's private helper: `n_iters` sweeps, sweep i with `jax.random.split(key,
    n_iters)[i]` (in either stream), returning `(free block states, sampler states)`.

    **Arguments:**

    - `key`: the PRNG key.
    - `program`: the sampling program.
    - `init_chain_state`: the free blocks' states.
    - `state_clamp`: the clamped blocks' states.
    - `n_iters`: the number of sweeps.
    - `sampler_states`: one sampler state per free block.
    """
    if n_iters == 0:
        return init_chain_state, sampler_states
    check_program_states(program, init_chain_state, state_clamp)
    plan = program_plan(program)
    global_state = block_state_to_global(list(init_chain_state) + list(state_clamp), program.gibbs_spec)
    (global_state, sampler_states), _ = jax.lax.scan(
        lambda c, k: (sweep(plan, k, *c)[:2], None), (global_state, list(sampler_states)), jax.random.split(key, n_iters)
    )
    return global_to_block_states(program, global_state)[0], sampler_states


def _without_sweeps(schedule: "SamplingSchedule") -> bool:
    return schedule.n_warmup == 0 and (schedule.n_samples <= 1 or schedule.steps_per_sample == 0)


def _first_entries(program: BlockSamplingProgram, state_free: list, state_clamp: list) -> tuple[list, list]:
    """THRML's positional reading of `state_free + state_clamp`: the first entries, one per block."""
    spec = program.gibbs_spec
    combined = list(state_free) + list(state_clamp)
    n_free, n_blocks = len(spec.free_blocks), len(spec.blocks)
    if len(combined) < n_blocks:
        raise StateCountError(f"got {len(combined)} block states for {n_blocks} blocks (list index out of range)")
    return combined[:n_free], combined[n_free:n_blocks]


class BatchedProgram(eqx.Module):
    """A program that samples a batch of chains in one call, e.g. a `distthrml.ShardedProgram`.

    `sample_states` and `sample_with_observation` hand such a program the call: `key` is then
    one key per chain and every initial state carries that leading chain axis, as do the results.

    **Attributes:**

    - `program`: the unbatched program whose chains it samples.
    """

    program: eqx.AbstractVar[BlockSamplingProgram]

    @abc.abstractmethod
    def sample_with_observation(self, keys, schedule, init_chain_state, state_clamp, observation_carry_init, f_observe):
        """`distthrml.sample_with_observation` for every chain of the batch."""


def sample_with_observation(
    key: Key[Array, ""],
    program: BlockSamplingProgram,
    schedule: SamplingSchedule,
    init_chain_state: list[PyTree[Shaped[Array, "nodes ?*state"]]],
    state_clamp: list[_State],
    observation_carry_init: ObserveCarry,
    f_observe: AbstractObserver,
) -> tuple[ObserveCarry, list[PyTree[Shaped[Array, "n_samples nodes ?*state"]]]]:
    """Run a chain and observe it after the warmup and after every `steps_per_sample` sweeps.

    **Arguments:**

    - `key`: the chain's PRNG key (split as THRML splits it, or for the per-node stream sweep t
        uses `fold_in(key, t)`); for a `BatchedProgram`, one key per chain.
    - `program`: the sampling program (or a `BatchedProgram`).
    - `schedule`: warmup, number of samples, sweeps between samples.
    - `init_chain_state`: the free blocks' initial states.
    - `state_clamp`: the clamped blocks' states.
    - `observation_carry_init`: the observer's initial carry.
    - `f_observe`: the observer.

    **Returns:** `(final carry, observations)`, observations stacked along a leading
    `n_samples` axis (one observation when `n_samples <= 1`).
    """
    if isinstance(program, BatchedProgram):
        return program.sample_with_observation(key, schedule, init_chain_state, state_clamp, observation_carry_init, f_observe)
    if not isinstance(program, BlockSamplingProgram):
        raise ProgramError(f"expected a BlockSamplingProgram, got {type(program).__name__}")
    if _without_sweeps(schedule):
        # no sweep runs: THRML only observes, reading the state lists by position
        init_chain_state, state_clamp = _first_entries(program, init_chain_state, state_clamp)
    check_program_states(program, init_chain_state, state_clamp)
    global_state = block_state_to_global(list(init_chain_state) + list(state_clamp), program.gibbs_spec)
    observer_arrays, observer_static = eqx.partition(f_observe, eqx.is_array)

    def observe(observer_arrays, state, carry, iteration):
        return observe_global_state(eqx.combine(observer_arrays, observer_static), program, state, carry, iteration)

    return run_chain(
        program_plan(program),
        key,
        schedule,
        global_state,
        [s.init() for s in program.samplers],
        observation_carry_init,
        observe,
        observer_arrays,
    )


def sample_states(
    key: Key[Array, ""],
    program: BlockSamplingProgram,
    schedule: SamplingSchedule,
    init_state_free: list[PyTree[Shaped[Array, "nodes ?*state"]]],
    state_clamp: list[_State],
    nodes_to_sample: list[Block],
) -> list[PyTree[Shaped[Array, "n_samples nodes ?*state"]]]:
    """Run a chain and return the states of `nodes_to_sample` at every sample.

    **Arguments:**

    - `key`: the chain's PRNG key (one per chain for a `BatchedProgram`).
    - `program`: the sampling program.
    - `schedule`: the sampling schedule.
    - `init_state_free`: the free blocks' initial states.
    - `state_clamp`: the clamped blocks' states.
    - `nodes_to_sample`: the blocks to record.

    **Returns:** one array pytree per block in `nodes_to_sample`, shape `[n_samples, len(block), ...]`.
    """
    observer = StateObserver(nodes_to_sample)
    _, observations = sample_with_observation(
        key, program, schedule, init_state_free, state_clamp, observer.init(), observer
    )
    return observations
