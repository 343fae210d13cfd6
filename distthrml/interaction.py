"""Interaction groups: the directed dependencies a block update reads."""

from __future__ import annotations

import equinox as eqx
import jax
from jaxtyping import PyTree

from .block_management import Block
from .errors import InteractionError


class InteractionGroup(eqx.Module):
    """A batch of directed interactions: updating `head_nodes[i]` reads the states of
    `tail_nodes[k][i]` for every k, and row i of every array in `interaction`.

    **Attributes:**

    - `head_nodes`: the nodes whose conditional updates this group affects.
    - `tail_nodes`: the blocks (parallel to `head_nodes`) whose states the update reads.
    - `interaction`: a pytree of parameters; every array has leading dimension `len(head_nodes)`.
    """

    head_nodes: Block
    tail_nodes: list[Block]
    interaction: PyTree

    def __init__(self, interaction: PyTree, head_nodes: Block, tail_nodes: list[Block]):
        """**Arguments:**

        - `interaction`: the parameters, arrays with leading dimension `len(head_nodes)`.
        - `head_nodes`: the nodes whose update is affected.
        - `tail_nodes`: blocks parallel to `head_nodes` whose states the update needs.
        """
        n = len(head_nodes)
        for k, block in enumerate(tail_nodes):
            if len(block) != n:
                raise InteractionError(
                    f"All tail node blocks must have the same length as head_nodes: tail block {k} has "
                    f"{len(block)} nodes, head_nodes has {n}."
                )
        for path, leaf in jax.tree.leaves_with_path(interaction):
            if eqx.is_array(leaf) and (leaf.ndim == 0 or leaf.shape[0] != n):
                raise InteractionError(
                    "All arrays in interaction must have leading dimension equal to the length of "
                    f"head_nodes ({n}): interaction{jax.tree_util.keystr(path)} has shape {leaf.shape}."
                )
        self.interaction = interaction
        self.head_nodes = head_nodes
        self.tail_nodes = list(tail_nodes)
