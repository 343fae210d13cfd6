"""Energy-based models: things with an energy function, and ones that are sums of factors."""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..block_management import Block, BlockSpec, _State, block_state_to_global
from ..block_sampling import _SD
from ..factor import AbstractFactor
from ..pgm import DEFAULT_NODE_SHAPE_DTYPES


class AbstractEBM(eqx.Module):
    """Something with an energy function (a map from a state to a scalar)."""

    @abc.abstractmethod
    def energy(self, state: list[_State], blocks: list[Block]) -> Float[Array, ""]:
        """The energy of `state`.

        **Arguments:**

        - `state`: one state per block of `blocks`.
        - `blocks`: how `state` is organised.
        """


class EBMFactor(AbstractFactor):
    """A factor with an energy function."""

    @abc.abstractmethod
    def energy(self, global_state: list[Array], block_spec: BlockSpec) -> Float[Array, ""]:
        """The factor's energy.

        **Arguments:**

        - `global_state`: a global state of `block_spec`.
        - `block_spec`: the layout of `global_state`.
        """


class AbstractFactorizedEBM(AbstractEBM):
    r"""An EBM whose energy is a sum over factors, $\mathcal{E}(x) = \sum_i \mathcal{E}^i(x)$.
    Subclasses provide the `factors` property.

    **Attributes:**

    - `node_shape_dtypes`: the nodes' shapes/dtypes, used to lay out the state the factors read.
    """

    node_shape_dtypes: _SD

    def __init__(self, node_shape_dtypes: _SD = DEFAULT_NODE_SHAPE_DTYPES):
        self.node_shape_dtypes = node_shape_dtypes

    def energy(self, state: list[_State], blocks: list[Block]) -> Float[Array, ""]:
        spec = BlockSpec(blocks, self.node_shape_dtypes)
        global_state = block_state_to_global(state, spec)
        total = jnp.array(0.0)
        for factor in self.factors:
            term = factor.energy(global_state, spec)
            total = total.astype(jnp.result_type(total.dtype, term.dtype)) + term
        return total

    @property
    @abc.abstractmethod
    def factors(self) -> list[EBMFactor]:
        """The factors whose energies add up to the model's."""


class FactorizedEBM(AbstractFactorizedEBM):
    """An EBM given by a concrete list of factors.

    **Attributes:**

    - `_factors`: the factors.
    """

    _factors: list[EBMFactor]

    def __init__(self, factors: list[EBMFactor], node_shape_dtypes: _SD = DEFAULT_NODE_SHAPE_DTYPES):
        super().__init__(node_shape_dtypes)
        self._factors = list(factors)

    @property
    def factors(self) -> list[EBMFactor]:
        return self._factors
