r"""Discrete EBMs: factors over spin and categorical variables, and their Gibbs conditionals.

A `DiscreteEBMFactor` adds terms $-s_1 \cdots s_M \, W[c_1, \ldots, c_N]$ to the energy
(spins $s \in \{-1, 1\}$ stored as bool, categories $c$ as unsigned integers).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import equinox as eqx
import jax
from jax import numpy as jnp
from jaxtyping import Array, Key, PyTree

from .._arrays import array_module, check_finite, host, is_concrete
from ..block_management import Block, BlockSpec, _State, concat_blocks, from_global_state
from ..pgm import AbstractNode as AbstractNode
from .. import multispin, node_rng
from ..conditional_samplers import BernoulliConditional, SoftmaxConditional, _check_categories
from ..draws import bernoulli_draw, categorical_draw_split
from ..errors import InteractionError, ProgramError, StateError
from ..factor import WeightedFactor
from ..interaction import InteractionGroup
from ..engine import UNROLL_SLOTS
from .ebm import EBMFactor


class DiscreteEBMInteraction(eqx.Module):
    """The interaction discrete EBM factors produce.

    **Attributes:**

    - `n_spin`: how many of the tail states are spins (they come first).
    - `weights`: the weight tensor, `[rows, K_head?, K_1, ..., K_N]`.
    """

    n_spin: int = eqx.field(static=True)
    weights: Array


def _spin_signs(spins: list[Array], dtype) -> Array:
    """Product of spins as +-1 in `dtype` (1 when there are none)."""
    out = jnp.array(1, dtype=dtype)
    for s in spins:
        out = out * jnp.where(s, 1, -1).astype(dtype)
    return out


def _gather_categories(weights: Array, categories: list[Array]) -> Array:
    """`weights[i, j, c_1[i, j], ..., c_N[i, j], ...]` for weights `[n, k, K_1..K_N, ...]`."""
    if not categories:
        return weights
    n, k = weights.shape[:2]
    index = (jnp.arange(n)[:, None], jnp.arange(k)[None, :]) + tuple(c.astype(jnp.int32) for c in categories)
    return weights[index]


def _split_tail_states(states: list, n_spin: int, where: str):
    """(spin states, categorical states) of one interaction's tails, checked as THRML checks them
    (scalar bool spins, scalar unsigned-integer categories), with THRML's wording."""
    spins, cats = states[:n_spin], states[n_spin:]
    for name, group, kind in (("Spin", spins, "bool"), ("Categorical", cats, "unsigned integer")):
        for s in group:
            if s.ndim != 2:
                raise StateError(f"{name} states must be scalar. ({where}: got {s.dtype}{list(s.shape[2:])} per node)")
            if not jnp.isdtype(s.dtype, kind):
                raise StateError(f"{name} states must be {kind}. ({where}: got {s.dtype})")
    return spins, cats


def _split_states(states: list, n_spin: int):
    """THRML 0.1.4's private helper: `(spin states, categorical states)`, raising a
    `RuntimeError` (a `StateError`) unless spins are scalar bool and categories scalar unsigned.

    **Arguments:**

    - `states`: one interaction's tail states `[n, k]`, spins first.
    - `n_spin`: how many of them are spins.
    """
    return _split_tail_states(states, n_spin, "tail states")


def _spin_product(spin_vals: list[Array]) -> Array:
    """THRML 0.1.4's private helper: the product of spins as int8 +-1 (`jnp.array(1)` for none).

    **Arguments:**

    - `spin_vals`: bool spin states of one shape.
    """
    if len(spin_vals) == 0:
        return jnp.array(1)
    return jnp.prod(2 * jnp.stack(spin_vals, -1).astype(jnp.int8) - 1, axis=-1)


def _batch_gather(x: Array, *idx: Array) -> Array:
    """THRML 0.1.4's private helper: `x[..., i_1, ..., i_n]` per batch element, for `x` of shape
    `[*batch, K_1, ..., K_n]` and indices of shape `batch`.

    **Arguments:**

    - `x`: the array.
    - `idx`: one integer index array per trailing axis.
    """
    if len(idx) == 0:
        return x
    batch = x.shape[: x.ndim - len(idx)]
    flat = x.reshape((-1, *x.shape[x.ndim - len(idx) :]))
    return flat[(jnp.arange(flat.shape[0]),) + tuple(i.reshape(-1) for i in idx)].reshape(batch)


def _batch_gather_with_k(x: Array, *idx: Array) -> Array:
    """THRML 0.1.4's private helper: `_batch_gather` keeping the axis before the gathered ones,
    `x[..., :, i_1, ..., i_n]` for `x` of shape `[*batch, K, K_1, ..., K_n]`.

    **Arguments:**

    - `x`: the array.
    - `idx`: one integer index array (shape `batch`) per trailing axis.
    """
    batch = x.shape[: x.ndim - len(idx)]
    if len(batch) == 0:
        return x
    k = batch[-1]
    wide = [jnp.broadcast_to(i[..., None], (*i.shape, k)).reshape(-1) for i in idx]
    return _batch_gather(x.reshape((-1, *x.shape[x.ndim - len(idx) :])), *wide).reshape(batch)


class DiscreteEBMFactor(EBMFactor, WeightedFactor):
    r"""A batch of energy terms $-s_1 \cdots s_M W[c_1, \ldots, c_N]$.

    No node may appear twice in one term (not checked, as in THRML).

    **Attributes:**

    - `spin_node_groups`: the spin-valued node groups.
    - `categorical_node_groups`: the categorical node groups.
    - `weights`: `[b, K_1, ..., K_N]`, N = number of categorical groups.
    - `is_spin`: node type -> whether it is spin-valued here.
    """

    spin_node_groups: list[Block]
    categorical_node_groups: list[Block]
    weights: Array
    is_spin: dict

    def __init__(self, spin_node_groups: list[Block], categorical_node_groups: list[Block], weights: Array):
        """**Arguments:**

        - `spin_node_groups`: parallel blocks of spin nodes.
        - `categorical_node_groups`: parallel blocks of categorical nodes.
        - `weights`: the weight tensor `[b, K_1, ..., K_N]`.
        """
        spin_node_groups, categorical_node_groups = list(spin_node_groups), list(categorical_node_groups)
        check_finite(type(self).__name__, weights=weights)  # NaN weights would sample garbage silently
        WeightedFactor.__init__(self, weights, spin_node_groups + categorical_node_groups)
        is_spin: dict = {}
        for group in spin_node_groups:
            is_spin[group.node_type] = True
        for k, group in enumerate(categorical_node_groups):
            if is_spin.get(group.node_type, False):
                raise InteractionError(
                    f"A node cannot be both categorical and spin. (categorical group {k} holds "
                    f"{group.node_type.__name__}, which is also in a spin group)"
                )
            is_spin[group.node_type] = False
        if weights.ndim != 1 + len(categorical_node_groups):
            raise InteractionError(
                "The shape of the weight tensor must be [b, x_1, ..., x_k], where k is the length of "
                f"categorical_node_groups (here {len(categorical_node_groups)}); got shape {tuple(weights.shape)}."
            )
        self.is_spin = is_spin
        self.spin_node_groups = spin_node_groups
        self.categorical_node_groups = categorical_node_groups
        self.weights = weights

    def _spin_head_group(self) -> list[InteractionGroup]:
        n_spin = len(self.spin_node_groups)
        if n_spin == 0:
            return []
        heads = concat_blocks(self.spin_node_groups)
        # for head group i, the tail slots hold the other spin groups in order
        tails = [
            concat_blocks([self.spin_node_groups[t] for _, t in _slot_pairs(n_spin, slot)])
            for slot in range(n_spin - 1)
        ]
        tails += [concat_blocks([g] * n_spin) for g in self.categorical_node_groups]
        reps = (n_spin,) + (1,) * (self.weights.ndim - 1)
        xp = array_module(self.weights)
        weights = xp.tile(host(self.weights), reps)
        return [InteractionGroup(DiscreteEBMInteraction(n_spin - 1, jnp.asarray(weights)), heads, tails)]

    def _categorical_head_groups(self) -> list[InteractionGroup]:
        groups = []
        n_cat = len(self.categorical_node_groups)
        for i in range(n_cat):
            others = [j for j in range(n_cat) if j != i]
            xp = array_module(self.weights)
            weights = xp.moveaxis(host(self.weights), [0, i + 1] + [j + 1 for j in others], list(range(n_cat + 1)))
            groups.append(
                InteractionGroup(
                    DiscreteEBMInteraction(len(self.spin_node_groups), jnp.asarray(weights)),
                    self.categorical_node_groups[i],
                    self.spin_node_groups + [self.categorical_node_groups[j] for j in others],
                )
            )
        return groups

    def to_interaction_groups(self) -> list[InteractionGroup]:
        """One group with every spin group as head (tails: the other spins, then the categories),
        and one group per categorical group as head (tails: the spins, then the other categories)."""
        return self._spin_head_group() + self._categorical_head_groups()

    def energy(self, global_state: list[Array], block_spec: BlockSpec) -> Array:
        r"""The sum of this batch's terms $-s_1 \cdots s_M W[c_1, \ldots, c_N]$."""
        spins = from_global_state(global_state, block_spec, self.spin_node_groups)
        cats = from_global_state(global_state, block_spec, self.categorical_node_groups)
        index = (jnp.arange(self.weights.shape[0]),) + tuple(c.astype(jnp.int32) for c in cats)
        w = self.weights[index] if cats else self.weights
        return -jnp.sum(w * _spin_signs(spins, w.dtype))


def _slot_pairs(n_spin: int, slot: int):
    """(head group i, tail group in `slot`) for every head group i: the other groups in order."""
    for i in range(n_spin):
        others = [j for j in range(n_spin) if j != i]
        yield i, others[slot]


def _merge_groups(groups: list[InteractionGroup], n_tail_groups: int | None = None) -> list[InteractionGroup]:
    """THRML 0.1.4's private helper: discrete interaction groups of one kind merged into one
    (heads, tails and weights concatenated in order). `n_tail_groups` is accepted for THRML's
    signature; the tail count is the groups' own."""
    return _merge(groups)


def _merge(groups: list[InteractionGroup]) -> list[InteractionGroup]:
    if len(groups) <= 1:
        return groups
    heads = concat_blocks([g.head_nodes for g in groups])
    tails = [concat_blocks([g.tail_nodes[k] for g in groups]) for k in range(len(groups[0].tail_nodes))]
    parts = [g.interaction.weights for g in groups]
    weights = array_module(*parts).concatenate([host(w) for w in parts], axis=0)
    return [InteractionGroup(DiscreteEBMInteraction(groups[0].interaction.n_spin, jnp.asarray(weights)), heads, tails)]


class SquareDiscreteEBMFactor(DiscreteEBMFactor):
    """A discrete factor with a square weight tensor `[b, x, ..., x]`, whose interaction groups
    for different head blocks can be merged into one (fewer, larger kernels)."""

    def __init__(self, spin_node_groups: list[Block], categorical_node_groups: list[Block], weights: Array):
        super().__init__(spin_node_groups, categorical_node_groups, weights)
        if len(set(weights.shape[1:])) > 1:
            raise InteractionError(f"Interaction tensor is not square: weights have shape {tuple(weights.shape)}.")

    def to_interaction_groups(self) -> list[InteractionGroup]:
        return self._spin_head_group() + _merge(self._categorical_head_groups())


class SpinEBMFactor(SquareDiscreteEBMFactor):
    r"""A discrete factor over spin variables only: terms $-W \, s_1 \cdots s_M$."""

    def __init__(self, node_groups: list[Block], weights: Array):
        super().__init__(node_groups, [], weights)


class CategoricalEBMFactor(DiscreteEBMFactor):
    r"""A discrete factor over categorical variables only: terms $-W[c_1, \ldots, c_N]$."""

    def __init__(self, node_groups: list[Block], weights: Array):
        super().__init__([], node_groups, weights)


class SquareCategoricalEBMFactor(SquareDiscreteEBMFactor):
    """A categorical-only discrete factor with a square weight tensor."""

    def __init__(self, node_groups: list[Block], weights: Array):
        super().__init__([], node_groups, weights)


def _unsupported(sampler, interaction) -> InteractionError:
    return InteractionError(
        f"Unsupported interaction found: {type(sampler).__name__} cannot handle an interaction of type "
        f"{type(interaction).__name__}; subclass it and override compute_parameters to handle it "
        "(see SpinGibbsConditional)."
    )


def _slot(x: Array, j) -> Array:
    """Slot j of `[n, k, ...]` (static or traced j)."""
    if isinstance(j, int):
        return jax.lax.index_in_dim(x, j, axis=1, keepdims=False)
    return jax.lax.dynamic_index_in_dim(x, j, axis=1, keepdims=False)


def _slot_term(interaction: DiscreteEBMInteraction, active: Array, tails: list, j, batch_ndim: int, head_categorical: bool):
    r"""Slot j's contribution $s_1 \cdots s_M W[\ldots, c_1, \ldots, c_N]$ for every node, `[n, *batch(, K)]`."""
    spins, cats = tails[: interaction.n_spin], tails[interaction.n_spin :]
    w = _slot(interaction.weights, j)  # [n, (K_head,) K_1..K_N]
    if head_categorical:
        w = jnp.moveaxis(w, 1, -1)
    n = w.shape[0]
    lead = (n,) + (1,) * batch_ndim
    if cats:
        rows = jnp.arange(n, dtype=jnp.int32).reshape(lead)
        w = w[(rows,) + tuple(c.astype(jnp.int32) for c in cats)]
    else:
        w = w.reshape(lead + w.shape[1:])
    extra = (1,) if head_categorical else ()
    if spins:
        # the product of +-1 spins is -1 iff an odd number of them is -1 (False): a select, exact
        negative = ~spins[0]
        for s in spins[1:]:
            negative = negative ^ ~s
        w = jnp.where(negative.reshape(negative.shape + extra), -w, w)
    if active is None:  # padding already holds zero weights (`_fold_padding`)
        return w
    on = _slot(active, j).reshape(lead + extra)
    return jnp.where(on, w, jnp.zeros((), w.dtype))


def discrete_field(
    interactions: list[PyTree],
    active_flags: list[Array],
    column,
    shape: tuple[int, ...],
    default_dtype,
    head_categorical: bool,
    owner,
) -> Array:
    """The conditional's field: the sum over interactions and slots of `_slot_term`, added one
    slot at a time in a fixed order (interaction by interaction, slot 0 first) so that the
    per-node path (`[n]` tails) and the batched kernel (`[n, chains]` tails) round identically.

    **Arguments:**

    - `interactions`, `active_flags`: the block's interactions and masks, `[n, k, ...]`.
    - `column`: `column(i, j)`, interaction i's tail states at slot j, `[n, *batch]` each.
    - `shape`: the field's shape, `[n, *batch(, K)]`.
    - `default_dtype`: its dtype when there are no interactions.
    - `head_categorical`: whether the updated nodes are categorical (field has a trailing K axis).
    - `owner`: the sampler, for error messages.
    """
    batch_ndim = len(shape) - 1 - int(head_categorical)
    acc = None
    for i, (interaction, active) in enumerate(zip(interactions, active_flags)):
        if not isinstance(interaction, DiscreteEBMInteraction):
            raise _unsupported(owner, interaction)
        if acc is None:
            acc = jnp.zeros(shape, interaction.weights.dtype)

        def add(j, acc, i=i, interaction=interaction, active=active):
            term = _slot_term(interaction, active, column(i, j), j, batch_ndim, head_categorical)
            return acc + term.astype(acc.dtype)

        acc = _fold_slots(interaction.weights.shape[1], add, acc)
    return jnp.zeros(shape, default_dtype) if acc is None else acc


# tail-category combinations up to which a categorical head's weights are picked by selects
# (exact, vectorise) rather than by a gather per (node, chain)
SELECT_COMBINATIONS = 16


def _pick_categories(w: Array, cats: list[Array], lead: tuple[int, ...]) -> list[Array]:
    """`w[:, k, c_1, ..., c_N]` for every head category k, as K arrays of the tails' shape.

    **Arguments:**

    - `w`: one slot's weights `[n, K, K_1, ..., K_N]`.
    - `cats`: the N tail categories, `[n, *batch]` each.
    - `lead`: `(n, 1, ...)`, the weights' shape broadcast against the tails.
    """
    n, n_heads = w.shape[:2]
    if not cats:
        return [w[:, k].reshape(lead) for k in range(n_heads)]
    combos = math.prod(w.shape[2:])
    if combos > SELECT_COMBINATIONS:
        rows = jnp.arange(n, dtype=jnp.int32).reshape(lead)
        index = tuple(c.astype(jnp.int32) for c in cats)
        return [w[:, k][(rows,) + index] for k in range(n_heads)]
    flat = w.reshape(n, n_heads, combos)
    index = cats[0].astype(jnp.int32)
    for c, size in zip(cats[1:], w.shape[3:]):
        index = index * size + c.astype(jnp.int32)
    # one compare per combination, shared by the K selects of each; the last combination is the default
    hits = [index == v for v in range(combos - 1)]
    out = []
    for k in range(n_heads):
        picked = flat[:, k, combos - 1].reshape(lead)
        for v in range(combos - 2, -1, -1):
            picked = jnp.where(hits[v], flat[:, k, v].reshape(lead), picked)
        out.append(picked)
    return out


def categorical_field(
    interactions: list[PyTree], active_flags: list, column, n_categories: int, shape: tuple[int, ...], owner
) -> list[Array]:
    """The logits of a categorical block with the categories outermost: K arrays of `shape`,
    `theta_k = sum over interactions and slots of s_1..s_M W[.., k, c_1, .., c_N]`, added slot by
    slot in the order of `discrete_field` (the same values, in the layout the draw wants).

    **Arguments:**

    - `interactions`, `active_flags`: the block's interactions and masks (None: padding holds
        zero weights, `_fold_padding`).
    - `column`: `column(i, j)`, interaction i's tail states at slot j, `[n, *batch]` each.
    - `n_categories`: K.
    - `shape`: `[n, *batch]`.
    - `owner`: the sampler, for error messages.
    """
    lead = (shape[0],) + (1,) * (len(shape) - 1)
    acc = None
    for i, (interaction, active) in enumerate(zip(interactions, active_flags)):
        if not isinstance(interaction, DiscreteEBMInteraction):
            raise _unsupported(owner, interaction)
        dtype = interaction.weights.dtype
        if acc is None:
            acc = [jnp.zeros(shape, dtype) for _ in range(n_categories)]

        def add(j, acc, i=i, interaction=interaction, active=active, dtype=dtype):
            tails = column(i, j)
            spins, cats = tails[: interaction.n_spin], tails[interaction.n_spin :]
            terms = _pick_categories(_slot(interaction.weights, j), cats, lead)
            if spins:
                negative = ~spins[0]
                for s in spins[1:]:
                    negative = negative ^ ~s
                terms = [jnp.where(negative, -t, t) for t in terms]
            if active is not None:
                on = _slot(active, j).reshape(lead)
                terms = [jnp.where(on, t, jnp.zeros((), dtype)) for t in terms]
            return [a + t.astype(a.dtype) for a, t in zip(acc, terms)]

        acc = _fold_slots(interaction.weights.shape[1], add, acc)
    return [jnp.zeros(shape, jnp.float32) for _ in range(n_categories)] if acc is None else acc


def thrml_field(
    interactions: list[PyTree], active_flags: list[Array], states: list[list], shape: tuple[int, ...], head_categorical: bool, owner
) -> Array:
    """The conditional's field in THRML's arithmetic, so that THRML-stream draws match THRML's
    bit for bit: per interaction, the terms `w * active * s_1..s_M` of every slot summed with
    `jnp.sum` over the slot axis (XLA's reduction order, as in THRML), then added interaction by
    interaction to zeros of the first interaction's weight dtype.

    **Arguments:**

    - `interactions`, `active_flags`, `states`: the block's interactions, masks and tail states.
    - `shape`: the field's shape, `[n(, K)]`.
    - `head_categorical`: whether the updated nodes are categorical (trailing K axis, slots on -2).
    - `owner`: the sampler, for error messages.
    """
    acc = jnp.zeros(shape)
    for i, (interaction, active, state) in enumerate(zip(interactions, active_flags, states)):
        if not isinstance(interaction, DiscreteEBMInteraction):
            raise _unsupported(owner, interaction)
        spins, cats = _split_tail_states(state, interaction.n_spin, f"interaction {i}")
        w = interaction.weights  # [n, k, (K,) K_1..K_N]
        if cats:
            n, k = w.shape[:2]
            rows, slots = jnp.arange(n)[:, None], jnp.arange(k)[None, :]
            middle = (slice(None),) if head_categorical else ()
            w = w[(rows, slots) + middle + tuple(c.astype(jnp.int32) for c in cats)]
        sign = _spin_product(spins).astype(w.dtype)
        if head_categorical:
            partial = jnp.sum(jnp.expand_dims(sign, -1) * w * active[..., None].astype(w.dtype), axis=-2)
        else:
            partial = jnp.sum(w * active.astype(w.dtype) * sign, axis=-1)
        if i == 0:
            acc = acc.astype(w.dtype)
        acc = acc + partial
    return acc


def _fold_padding(interactions: list[PyTree], active_flags: list[Array]) -> tuple[list[PyTree], list]:
    """Zero the weights of padding slots, so the batched kernel needs no mask: a padding slot then
    adds +-0, which leaves the field (and so the draw) exactly as the masked sum has it."""
    out = []
    for interaction, active in zip(interactions, active_flags):
        if isinstance(interaction, DiscreteEBMInteraction):
            w = interaction.weights
            on = active.reshape(active.shape + (1,) * (w.ndim - 2))
            interaction = DiscreteEBMInteraction(interaction.n_spin, jnp.where(on, w, jnp.zeros((), w.dtype)))
        out.append(interaction)
    return out, [None] * len(out)


def _plain_columns(states: list[list]):
    return lambda i, j: [_slot(s, j) for s in states[i]]


def _check_tails(interactions, states) -> None:
    for i, (interaction, state) in enumerate(zip(interactions, states)):
        if isinstance(interaction, DiscreteEBMInteraction):
            _split_tail_states(state, interaction.n_spin, f"interaction {i}")


def _is_builtin(sampler, cls, names: tuple[str, ...]) -> bool:
    return all(getattr(type(sampler), name) is getattr(cls, name) for name in names)


_KERNEL_METHODS = ("compute_parameters", "sample_per_node", "sample_given_parameters_per_node")


class SpinGibbsConditional(BernoulliConditional):
    r"""Gibbs update of spins under `DiscreteEBMInteraction`s:
    $\gamma = \sum_i s_1^i \cdots s_K^i \, W^i[x_1^i, \ldots, x_M^i]$, $P(s=1) = \sigma(2\gamma)$.
    Subclasses handle other interactions by overriding `compute_parameters` and calling it."""

    def compute_parameters(
        self,
        key: Key,
        interactions: list[PyTree],
        active_flags: list[Array],
        states: list[list[_State]],
        sampler_state: None,
        output_sd: PyTree[jax.ShapeDtypeStruct],
    ) -> PyTree:
        return thrml_field(interactions, active_flags, states, output_sd.shape, False, self), sampler_state

    def sample_per_node(self, key, node_index, interactions, active_flags, states, sampler_state, output_sd):
        if type(self).compute_parameters is not SpinGibbsConditional.compute_parameters:
            return super().sample_per_node(key, node_index, interactions, active_flags, states, sampler_state, output_sd)
        # the per-node stream sums slot by slot, as its chains-innermost kernel does
        _check_tails(interactions, states)
        gamma = discrete_field(
            interactions, active_flags, _plain_columns(states), output_sd.shape, jnp.float32, False, self
        )
        return self.sample_given_parameters_per_node(key, node_index, gamma, sampler_state, output_sd)

    def has_chains_kernel(self, interactions: list[PyTree]) -> bool:
        return _is_builtin(self, SpinGibbsConditional, _KERNEL_METHODS) and all(
            isinstance(x, DiscreteEBMInteraction) for x in interactions
        )

    def chains_tables(self, interactions, active_flags):
        return _fold_padding(interactions, active_flags)

    def multispin_tables(self, interactions, active_flags):
        if not _is_builtin(self, SpinGibbsConditional, _KERNEL_METHODS):
            raise ProgramError(f"{type(self).__name__} overrides the conditional: the multispin kernel samples the built-in one only")
        return spin_multispin_tables(interactions, active_flags)

    def sample_packed(self, g0, g1, node_index, tables, column):
        return multispin.packed_update(g0, g1, node_index, tables, column)

    def sample_chains(self, k0, k1, node_index, interactions, active_flags, column, sampler_state, output_sd):
        gamma = discrete_field(interactions, active_flags, column, output_sd.shape, jnp.float32, False, self)
        u = node_rng.words_to_uniform(node_rng.hash_words(k0, k1, node_index[:, None]))
        return bernoulli_draw(u, gamma), sampler_state


def spin_multispin_tables(interactions: list[PyTree], active_flags: list) -> multispin.MultispinTables:
    """A spin block's `MultispinTables` (`distthrml.multispin`), or a `ProgramError` saying which
    interaction keeps its field from taking few values per node.

    **Arguments:**

    - `interactions`, `active_flags`: the block's interactions and masks (concrete).
    """
    bias, magnitude, degree = None, None, None
    neg, on, n_tails, groups, plain = [], [], [], [], []
    for i, (interaction, active) in enumerate(zip(interactions, active_flags)):
        if not isinstance(interaction, DiscreteEBMInteraction) or interaction.weights.ndim != 2:
            raise ProgramError(f"interaction {i} is not a spin-only DiscreteEBMInteraction (multispin needs spin tails only)")
        if not (is_concrete(interaction.weights) and is_concrete(active)):
            raise ProgramError("the multispin stream needs concrete parameters: build the program outside jax.jit")
        w = np.asarray(interaction.weights, np.float32)
        live = np.asarray(active, bool) & (w != 0)
        if bias is None:
            bias = np.zeros(w.shape[0], np.float64)
            magnitude = np.zeros(w.shape[0], np.float32)
            degree = np.zeros(w.shape[0], np.int64)
        if interaction.n_spin == 0:
            bias += np.where(live, w, 0).astype(np.float64).sum(axis=1)
            continue
        size = np.where(live, np.abs(w), 0)
        row_size = size.max(axis=1)
        mixed = live & (size != row_size[:, None])
        conflict = live.any(axis=1) & (magnitude != 0) & (row_size != magnitude)
        if mixed.any() or conflict.any():
            row = int(np.flatnonzero(mixed.any(axis=1) | conflict)[0])
            raise ProgramError(
                f"interaction {i}: row {row} has terms of different magnitudes (multispin needs one |J| per node: "
                "uniform or +-J couplings)"
            )
        magnitude = np.where(live.any(axis=1), row_size, magnitude)
        degree += live.sum(axis=1)
        full = np.uint32(0xFFFFFFFF)
        neg.append(jnp.asarray(np.where(live & (w < 0), full, np.uint32(0))))
        on.append(jnp.asarray(np.where(live, full, np.uint32(0))))
        n_tails.append(interaction.n_spin)
        groups.append(i)
        plain.append(bool(live.all() and (w > 0).all()))
    if bias is None:
        raise ProgramError("the block has no interactions")
    top = int(degree.max(initial=0))
    if top >= 32:
        raise ProgramError(f"a node has {top} terms; the multispin kernel handles up to 31")
    table = multispin.thresholds_of(bias, magnitude, degree, top)
    uniform = tuple(int(t) for t in table[0]) if len(table) and np.all(table == table[:1]) else None
    return multispin.MultispinTables(
        neg, on, jnp.asarray(table), jnp.asarray(multispin.threshold_planes(table)), tuple(n_tails), tuple(groups), uniform, tuple(plain)
    )


class CategoricalGibbsConditional(SoftmaxConditional):
    r"""Gibbs update of categorical variables under `DiscreteEBMInteraction`s:
    $\theta = \sum_i s_1^i \cdots s_K^i \, W^i[:, x_1^i, \ldots, x_M^i]$, $P(x=k) \propto e^{\theta_k}$.

    **Attributes:**

    - `n_categories`: the number of categories K.
    """

    n_categories: int = eqx.field(static=True)

    def _check_head(self, interactions) -> None:
        for i, interaction in enumerate(interactions):
            if isinstance(interaction, DiscreteEBMInteraction) and interaction.weights.shape[2] != self.n_categories:
                raise InteractionError(
                    f"CategoricalGibbsConditional(n_categories={self.n_categories}) got interaction {i} with "
                    f"{interaction.weights.shape[2]} categories for the updated node."
                )

    def compute_parameters(
        self,
        key: Key,
        interactions: list[PyTree],
        active_flags: list[Array],
        states: list[list[_State]],
        sampler_state: None,
        output_sd: PyTree[jax.ShapeDtypeStruct],
    ) -> PyTree:
        self._check_head(interactions)
        theta = thrml_field(interactions, active_flags, states, (*output_sd.shape, self.n_categories), True, self)
        return theta, sampler_state

    def sample_per_node(self, key, node_index, interactions, active_flags, states, sampler_state, output_sd):
        if type(self).compute_parameters is not CategoricalGibbsConditional.compute_parameters:
            return super().sample_per_node(key, node_index, interactions, active_flags, states, sampler_state, output_sd)
        # the per-node stream sums slot by slot, as its chains-innermost kernel does
        _check_tails(interactions, states)
        self._check_head(interactions)
        _check_categories(self.n_categories, output_sd.dtype)
        theta = categorical_field(interactions, active_flags, _plain_columns(states), self.n_categories, output_sd.shape, self)
        u = node_rng.uniform(key, node_index)
        return categorical_draw_split(u, theta, output_sd.dtype), sampler_state

    def has_chains_kernel(self, interactions: list[PyTree]) -> bool:
        return _is_builtin(self, CategoricalGibbsConditional, _KERNEL_METHODS) and all(
            isinstance(x, DiscreteEBMInteraction) for x in interactions
        )

    def chains_tables(self, interactions, active_flags):
        return _fold_padding(interactions, active_flags)

    def sample_chains(self, k0, k1, node_index, interactions, active_flags, column, sampler_state, output_sd):
        self._check_head(interactions)
        _check_categories(self.n_categories, output_sd.dtype)
        # categories outermost: K arrays [n, chains], so that every step vectorises over chains
        theta = categorical_field(interactions, active_flags, column, self.n_categories, output_sd.shape, self)
        u = node_rng.words_to_uniform(node_rng.hash_words(k0, k1, node_index[:, None]))
        return categorical_draw_split(u, theta, output_sd.dtype), sampler_state


def _fold_slots(k: int, add: Callable, acc):
    """`add(j, acc)` for every slot j < k: unrolled up to `UNROLL_SLOTS` slots, a loop beyond."""
    if k <= UNROLL_SLOTS:
        for j in range(k):
            acc = add(j, acc)
        return acc
    return jax.lax.fori_loop(0, k, add, acc)
