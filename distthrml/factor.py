"""Factors: batches of undirected interactions that compile to interaction groups."""

from __future__ import annotations

import abc
from collections.abc import Sequence

import equinox as eqx
from jaxtyping import Array

from .block_management import Block
from .block_sampling import BlockGibbsSpec, BlockSamplingProgram
from .conditional_samplers import AbstractConditionalSampler
from .errors import InteractionError
from .interaction import InteractionGroup


class AbstractFactor(eqx.Module):
    """A batch of factors over parallel node groups: factor i acts on `node_groups[k][i]` for all k.

    **Attributes:**

    - `node_groups`: the parallel blocks of the batch.
    """

    node_groups: list[Block]

    def __init__(self, node_groups: list[Block]):
        """**Arguments:**

        - `node_groups`: parallel blocks of equal length.
        """
        node_groups = list(node_groups)
        if not node_groups:
            raise InteractionError("A factor should not be empty. (no node groups given)")
        n = len(node_groups[0])
        for k, group in enumerate(node_groups):
            if not isinstance(group, Block):
                raise InteractionError(f"node group {k} is a {type(group).__name__}, not a Block")
            if len(group) != n:
                raise InteractionError(
                    f"Every block in node_groups must contain the same number of nodes: group 0 has {n}, "
                    f"group {k} has {len(group)}."
                )
        self.node_groups = node_groups

    @abc.abstractmethod
    def to_interaction_groups(self) -> list[InteractionGroup]:
        """The directed interactions this batch of factors produces."""


class WeightedFactor(AbstractFactor):
    """A factor parameterised by a weight tensor whose leading axis runs over the batch.

    **Attributes:**

    - `weights`: the weight tensor, shape `[len(node_groups[0]), ...]`.
    """

    weights: Array

    def __init__(self, weights: Array, node_groups: list[Block]):
        super().__init__(node_groups)
        shape = getattr(weights, "shape", None)
        if shape is None or len(shape) == 0 or shape[0] != len(self.node_groups[0]):
            raise InteractionError(
                "The leading dimension of weights must have the same length as the number of nodes in each "
                f"node group ({len(self.node_groups[0])}); {type(self).__name__} got weights of shape {shape}."
            )
        self.weights = weights


class FactorSamplingProgram(BlockSamplingProgram):
    """A `BlockSamplingProgram` built from factors (plus any extra interaction groups)."""

    def __init__(
        self,
        gibbs_spec: BlockGibbsSpec,
        samplers: list[AbstractConditionalSampler],
        factors: Sequence[AbstractFactor],
        other_interaction_groups: list[InteractionGroup],
        *,
        allow_simultaneous_reads: bool = False,
        rng: str | None = None,
    ):
        """**Arguments:**

        - `gibbs_spec`: the division into free and clamped blocks.
        - `samplers`: the update rule of each free block.
        - `factors`: the factors of the model.
        - `other_interaction_groups`: interaction groups to add to those of the factors.
        - `allow_simultaneous_reads`, `rng`: see `BlockSamplingProgram`.
        """
        groups = list(other_interaction_groups)
        for factor in factors:
            groups += factor.to_interaction_groups()
        super().__init__(gibbs_spec, samplers, groups, allow_simultaneous_reads=allow_simultaneous_reads, rng=rng)
