"""Sharding both phases of KL-gradient training (the model layer, above `distthrml.sharding`)."""

from __future__ import annotations

import equinox as eqx
import numpy as np
from jax.sharding import Mesh

import partition as partition_lib
from partition.generators import edges_to_csr

from ..errors import ShardingError
from ..graph import interaction_graph
from ..sharding import ShardedProgram, shard_program
from .ising import IsingTrainingSpec


def _model_partition(program, model_assignment: np.ndarray, model_ids: np.ndarray, n_parts: int, method: str):
    """The partition of `program`'s nodes that puts each model node on the part it has in the model."""
    order = np.argsort(model_ids)
    program_ids = np.concatenate([np.asarray(b.ids) for b in program.gibbs_spec.blocks])
    pos = np.searchsorted(model_ids, program_ids, sorter=order)
    pos = order[np.minimum(pos, len(order) - 1)]
    if not np.array_equal(model_ids[pos], program_ids):
        raise ShardingError("a training program samples or clamps nodes that are not nodes of the model")
    return partition_lib.Partition(model_assignment[pos], n_parts, interaction_graph(program), method=method)


def shard_training_spec(
    training_spec: IsingTrainingSpec, partition, mesh: Mesh | None = None
) -> IsingTrainingSpec:
    """Shard the positive- and negative-phase programs of `training_spec` with one placement of
    the model's nodes, so `estimate_kl_grad` samples both phases across devices.

    **Arguments:**

    - `training_spec`: the unsharded training spec.
    - `partition`: an int (METIS on the model's coupling graph into that many parts), a
        `partition.Partition` of the model's nodes in `model.node_block` order, or an already
        sharded spec whose layouts to reuse for new parameters (cheap; works under `jax.jit`).
    - `mesh`: the `("chains", "graph")` mesh; by default the first devices on `graph`.

    **Returns:** an `IsingTrainingSpec` whose programs are `ShardedProgram`s.
    """
    if isinstance(partition, IsingTrainingSpec):
        template = partition
        if not isinstance(template.program_positive, ShardedProgram):
            raise ShardingError("the template training spec is not sharded")
        return _with_programs(
            training_spec,
            template.program_positive.with_program(training_spec.program_positive),
            template.program_negative.with_program(training_spec.program_negative),
        )
    model = training_spec.ebm
    model_ids = np.asarray(model.node_block.ids)
    if isinstance(partition, (int, np.integer)):
        n = len(model_ids)
        u, v = (np.asarray(b.ids) for b in model.edge_blocks)
        order = np.argsort(model_ids)
        iu, iv = order[np.searchsorted(model_ids, u, sorter=order)], order[np.searchsorted(model_ids, v, sorter=order)]
        graph = edges_to_csr(np.stack([iu, iv], axis=1).astype(np.int64), n)
        partition = partition_lib.partition_graph(graph, int(partition), method="metis")
    assignment = np.asarray(partition.assignment)
    if assignment.shape != model_ids.shape:
        raise ShardingError(
            f"the partition has {assignment.size} nodes but the model has {len(model_ids)}: partition the "
            "model's nodes in model.node_block order"
        )
    sharded = []
    for program in (training_spec.program_positive, training_spec.program_negative):
        part = _model_partition(program, assignment, model_ids, int(partition.n_parts), partition.method)
        sharded.append(shard_program(program, part, mesh))
    return _with_programs(training_spec, *sharded)


def _with_programs(spec: IsingTrainingSpec, positive, negative) -> IsingTrainingSpec:
    return eqx.tree_at(lambda s: (s.program_positive, s.program_negative), spec, (positive, negative))
