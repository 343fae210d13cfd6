"""Ising models (Boltzmann machines): energies, sampling programs, initialisation and training
gradients. Every entry point takes THRML's node lists or distthrml's blocks (array-native)."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence

import equinox as eqx
import jax
import numpy as np
from jax import numpy as jnp
from jaxtyping import Array, Bool, Key

from .._arrays import check_finite
from ..block_management import Block, NodeIndex
from ..block_sampling import (
    BlockGibbsSpec,
    BlockSamplingProgram,
    SamplingSchedule,
    SuperBlock,
    sample_with_observation,
)
from ..chains import map_chains
from ..errors import BlockError, InteractionError, ParameterError, RepeatedEdgeWarning
from ..factor import FactorSamplingProgram
from ..observers import MomentAccumulatorObserver
from ..pgm import AbstractNode
from .discrete_ebm import SpinEBMFactor, SpinGibbsConditional
from .ebm import AbstractFactorizedEBM, EBMFactor

Edge = tuple[AbstractNode, AbstractNode]
Nodes = Sequence[AbstractNode] | Block
Edges = Sequence[Edge] | tuple[Block, Block]


def as_block(nodes: Nodes) -> Block:
    """`nodes` as a Block (a Block is returned as is)."""
    return nodes if isinstance(nodes, Block) else Block(list(nodes))


def as_edge_blocks(edges: Edges) -> tuple[Block, Block]:
    """Edges as two parallel blocks: accepts a list of node pairs or a pair of blocks."""
    if len(edges) == 2 and all(isinstance(e, Block) for e in edges):
        if len(edges[0]) != len(edges[1]):
            raise InteractionError(f"edge blocks have different lengths {len(edges[0])} and {len(edges[1])}")
        return edges[0], edges[1]
    edges = list(edges)
    for i, e in enumerate(edges[:1]):
        if len(e) != 2:
            raise InteractionError(f"edge {i} is not a pair of nodes: {e!r}")
    return Block([e[0] for e in edges]), Block([e[1] for e in edges])


class IsingEBM(AbstractFactorizedEBM):
    r"""$\mathcal{E}(s) = -\beta \left( \sum_{i} b_i s_i + \sum_{(i, j)} J_{ij} s_i s_j \right)$.

    **Attributes:**

    - `nodes`: the nodes with a bias (a list, or a Block on the array-native path).
    - `biases`: one bias per node.
    - `edges`: the coupled pairs (a list of pairs, or a pair of Blocks).
    - `weights`: one coupling per edge.
    - `beta`: the inverse temperature.
    - `node_block`, `edge_blocks`: the same nodes and edges as blocks.
    """

    nodes: Nodes
    biases: Array
    edges: Edges
    weights: Array
    beta: Array
    node_block: Block
    edge_blocks: tuple[Block, Block]

    def __init__(self, nodes: Nodes, edges: Edges, biases: Array, weights: Array, beta: Array):
        """**Arguments:**

        - `nodes`: the nodes with biases: a list of nodes or a `Block`.
        - `edges`: the coupled pairs: a list of node pairs or a pair of parallel `Block`s.
        - `biases`: `[len(nodes)]` biases.
        - `weights`: `[len(edges)]` couplings.
        - `beta`: scalar inverse temperature.
        """
        node_block = as_block(nodes)
        edge_blocks = as_edge_blocks(edges) if len(edges) else (Block([]), Block([]))
        if len(node_block) == 0:
            raise BlockError("IsingEBM needs at least one node")
        if biases.shape != (len(node_block),):
            raise InteractionError(f"biases have shape {tuple(biases.shape)}, expected ({len(node_block)},) (one per node)")
        if weights.shape != (len(edge_blocks[0]),):
            raise InteractionError(f"weights have shape {tuple(weights.shape)}, expected ({len(edge_blocks[0])},) (one per edge)")
        check_finite("IsingEBM", biases=biases, weights=weights, beta=beta)
        if np.any(edge_blocks[0].ids == edge_blocks[1].ids):
            raise ParameterError("IsingEBM: a self-loop edge (a node coupled to itself) pins its node; remove it")
        _warn_on_repeated_edges(edge_blocks)
        super().__init__({node_block.node_type: jax.ShapeDtypeStruct((), jnp.bool_)})
        self.nodes, self.edges = nodes, edges
        self.biases, self.weights, self.beta = biases, weights, beta
        self.node_block, self.edge_blocks = node_block, edge_blocks

    @property
    def factors(self) -> list[EBMFactor]:
        out = [SpinEBMFactor([self.node_block], self.beta * self.biases)]
        if len(self.edge_blocks[0]):
            out.append(SpinEBMFactor(list(self.edge_blocks), self.beta * self.weights))
        return out


class IsingSamplingProgram(FactorSamplingProgram):
    """A `FactorSamplingProgram` for an `IsingEBM`, with `SpinGibbsConditional` on every free block."""

    def __init__(
        self,
        ebm: IsingEBM,
        free_blocks: list[SuperBlock],
        clamped_blocks: list[Block],
        *,
        allow_simultaneous_reads: bool = False,
        rng: str | None = None,
    ):
        """**Arguments:**

        - `ebm`: the model.
        - `free_blocks`: the (super)blocks to sample.
        - `clamped_blocks`: the blocks held fixed.
        - `allow_simultaneous_reads`, `rng`: see `BlockSamplingProgram`.
        """
        spec = BlockGibbsSpec(free_blocks, clamped_blocks, ebm.node_shape_dtypes)
        sampler = SpinGibbsConditional()
        super().__init__(
            spec, [sampler for _ in spec.free_blocks], ebm.factors, [], allow_simultaneous_reads=allow_simultaneous_reads,
            rng=rng,
        )


class IsingTrainingSpec(eqx.Module):
    """The programs and schedules of KL-gradient training: a positive phase (data clamped) and a
    negative phase (model samples)."""

    ebm: IsingEBM
    program_positive: IsingSamplingProgram
    program_negative: IsingSamplingProgram
    schedule_positive: SamplingSchedule
    schedule_negative: SamplingSchedule

    def __init__(
        self,
        ebm: IsingEBM,
        data_blocks: list[Block],
        conditioning_blocks: list[Block],
        positive_sampling_blocks: list[SuperBlock],
        negative_sampling_blocks: list[SuperBlock],
        schedule_positive: SamplingSchedule,
        schedule_negative: SamplingSchedule,
    ):
        """**Arguments:**

        - `ebm`: the model.
        - `data_blocks`: the visible nodes, clamped to data in the positive phase.
        - `conditioning_blocks`: nodes clamped in both phases.
        - `positive_sampling_blocks`: the free (super)blocks of the positive phase.
        - `negative_sampling_blocks`: the free (super)blocks of the negative phase.
        - `schedule_positive`, `schedule_negative`: the phases' schedules.
        """
        self.ebm = ebm
        self.program_positive = IsingSamplingProgram(
            ebm, positive_sampling_blocks, list(data_blocks) + list(conditioning_blocks)
        )
        self.program_negative = IsingSamplingProgram(ebm, negative_sampling_blocks, list(conditioning_blocks))
        self.schedule_positive = schedule_positive
        self.schedule_negative = schedule_negative


def _positions_in(reference: Block, nodes: Block, what: str) -> np.ndarray:
    pos = NodeIndex(reference.ids).lookup(nodes.ids)
    if (pos < 0).any():
        i = int(np.flatnonzero(pos < 0)[0])
        raise BlockError(f"{what}: node {i} ({nodes.node_type.__name__}(id={nodes.ids[i]})) is not a node of the model")
    return pos


def hinton_init(
    key: Key[Array, ""], model: IsingEBM, blocks: list[Block], batch_shape: tuple[int, ...]
) -> list[Bool[Array, "*batch block"]]:
    r"""Initial spins drawn independently with $P(s_i = 1) = \sigma(\beta b_i)$ (Hinton, 2012).

    **Arguments:**

    - `key`: the PRNG key (one subkey per block, `jax.random.split(key, len(blocks))`).
    - `model`: the Ising model whose biases set the probabilities.
    - `blocks`: the blocks to initialise.
    - `batch_shape`: leading batch dimensions.

    **Returns:** one bool array `[*batch_shape, len(block)]` per block.
    """
    keys = jax.random.split(key, len(blocks))
    out = []
    for i, block in enumerate(blocks):
        if len(block) == 0:
            out.append(jnp.zeros((*batch_shape, 0), dtype=jnp.bool_))
            continue
        idx = jnp.asarray(_positions_in(model.node_block, block, f"hinton_init block {i}"))
        probs = jax.nn.sigmoid(model.beta * model.biases[idx])
        out.append(jax.random.bernoulli(keys[i], p=probs, shape=(*batch_shape, len(block))).astype(jnp.bool_))
    return out


def _spin_transform(state, _blocks):
    return [2 * x.astype(jnp.int8) - 1 for x in state]


def _moment_observer(first_moment_nodes: Nodes, second_moment_edges: Edges) -> MomentAccumulatorObserver:
    nodes = as_block(first_moment_nodes) if len(first_moment_nodes) else None
    u, v = as_edge_blocks(second_moment_edges) if len(second_moment_edges) else (None, None)
    first = [nodes] if nodes is not None else []
    second = [u, v] if u is not None else []
    return MomentAccumulatorObserver(moment_blocks=[first, second], f_transform=_spin_transform, elementwise_transform=True)


def estimate_moments(
    key: Key[Array, ""],
    first_moment_nodes: Nodes,
    second_moment_edges: Edges,
    program: BlockSamplingProgram,
    schedule: SamplingSchedule,
    init_state: list[Array],
    clamped_data: list[Array],
):
    """Estimate $\\langle s_i \\rangle$ and $\\langle s_i s_j \\rangle$ by sampling.

    **Arguments:**

    - `key`: the PRNG key.
    - `first_moment_nodes`: nodes whose means to estimate (list or Block).
    - `second_moment_edges`: pairs whose correlations to estimate (pairs or two Blocks).
    - `program`: the sampling program.
    - `schedule`: the sampling schedule.
    - `init_state`: the free blocks' initial states.
    - `clamped_data`: the clamped blocks' states.

    **Returns:** `(node_moments, edge_moments)`.
    """
    observer = _moment_observer(first_moment_nodes, second_moment_edges)
    sums, _ = sample_with_observation(key, program, schedule, init_state, clamped_data, observer.init(), observer)
    node_sums, edge_sums = sums
    return node_sums / schedule.n_samples, edge_sums / schedule.n_samples


def estimate_kl_grad(
    key: Key[Array, ""],
    training_spec: IsingTrainingSpec,
    bias_nodes: Nodes,
    weight_edges: Edges,
    data: list[Array],
    conditioning_values: list[Array],
    init_state_positive: list[Array],
    init_state_negative: list[Array],
) -> tuple:
    r"""Monte Carlo estimate of the KL-divergence gradient of an Ising model,
    $\Delta W = -\beta (\langle s_i s_j \rangle_+ - \langle s_i s_j \rangle_-)$ and
    $\Delta b = -\beta (\langle s_i \rangle_+ - \langle s_i \rangle_-)$.

    **Arguments:**

    - `key`: the PRNG key.
    - `training_spec`: the model, programs and schedules; its programs may be sharded
        (`distthrml.shard_training_spec`), with the same results as unsharded.
    - `bias_nodes`: nodes whose bias gradients to estimate.
    - `weight_edges`: edges whose weight gradients to estimate.
    - `data`: visible data, each array `[batch, nodes]`.
    - `conditioning_values`: values of the conditioning nodes, each `[nodes]`.
    - `init_state_positive`: positive-phase initial states `[n_chains_pos, batch, nodes]`
        (empty when there are no latent nodes: moments then come from the data).
    - `init_state_negative`: negative-phase initial states `[n_chains_neg, nodes]`.

    **Returns:** `(grad_w, grad_b, (pos_node_moments, pos_edge_moments), (neg_node_moments, neg_edge_moments))`.
    """
    float_type = training_spec.ebm.beta.dtype
    key_pos, key_neg = jax.random.split(key, 2)
    batch = data[0].shape[0]
    cond_batched = jax.tree.map(lambda x: jnp.broadcast_to(x, (batch, *x.shape)), conditioning_values)
    program_pos, program_neg = training_spec.program_positive, training_spec.program_negative

    if len(init_state_positive) == 0:
        node_block = as_block(bias_nodes)
        u, v = as_edge_blocks(weight_edges)
        spins = 2 * data[0].astype(float_type) - 1
        i = jnp.asarray(_positions_in(node_block, u, "weight_edges (first ends)"))
        j = jnp.asarray(_positions_in(node_block, v, "weight_edges (second ends)"))
        pos_b, pos_w = spins[None], (spins[:, i] * spins[:, j])[None]
    else:
        chains_pos = init_state_positive[0].shape[:2]
        keys_pos = jax.random.split(key_pos, chains_pos)
        # every (chain, datum) pair is one chain of one batch: the same keys and states as a
        # nested vmap, in one chain axis (the batched kernel batches once)
        flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
        clamp_pos = [flat(jnp.broadcast_to(x, (chains_pos[0], *x.shape))) for x in list(data) + cond_batched]
        init_pos = [flat(x) for x in init_state_positive]

        def positive(k, init, clamp):
            return estimate_moments(k, bias_nodes, weight_edges, program_pos, training_spec.schedule_positive, init, clamp)

        pos_b, pos_w = map_chains(positive, program_pos, flat(keys_pos), init_pos, clamp_pos)
        pos_b, pos_w = (x.reshape(*chains_pos, *x.shape[1:]) for x in (pos_b, pos_w))

    keys_neg = jax.random.split(key_neg, init_state_negative[0].shape[0])
    negative = functools.partial(
        estimate_moments, first_moment_nodes=bias_nodes, second_moment_edges=weight_edges, program=program_neg,
        schedule=training_spec.schedule_negative, clamped_data=conditioning_values,
    )
    neg_b, neg_w = map_chains(lambda k, init: negative(k, init_state=init), program_neg, keys_neg, init_state_negative)

    beta = training_spec.ebm.beta
    grad_b = -beta * (jnp.mean(pos_b, axis=(0, 1), dtype=float_type) - jnp.mean(neg_b, axis=0, dtype=float_type))
    grad_w = -beta * (jnp.mean(pos_w, axis=(0, 1), dtype=float_type) - jnp.mean(neg_w, axis=0, dtype=float_type))
    return grad_w, grad_b, (pos_b, pos_w), (neg_b, neg_w)


def _warn_on_repeated_edges(edge_blocks: tuple[Block, Block]) -> None:
    """Warn (THRML accepts it, and the couplings add up) when a node pair is listed more than once,
    in either orientation: in edge lists that is usually both directions of one undirected edge."""
    u, v = (np.asarray(b.ids, np.int64) for b in edge_blocks)
    if len(u) < 2:
        return
    keys = np.sort(np.minimum(u, v) << 32 | np.maximum(u, v))  # node ids are below 2**31
    repeated = np.flatnonzero(keys[1:] == keys[:-1])
    if repeated.size:
        key = int(keys[repeated[0]])
        warnings.warn(f"IsingEBM: the edge between node ids {key >> 32} and {key & 0xFFFFFFFF} is listed more than once "
                      "(in either orientation); its couplings add up", RepeatedEdgeWarning, stacklevel=3)


