"""The interaction graph of a program: who reads whose state."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def interaction_graph(program) -> sp.csr_matrix:
    """A symmetric CSR adjacency matrix over the program's nodes, with an edge wherever one
    node's update reads another node's state (self reads and padding excluded).

    Nodes are numbered by *program index*: free blocks in `gibbs_spec.free_blocks` order, then
    clamped blocks, each block's nodes in order (`program.gibbs_spec.blocks` concatenated). The
    stored values are 1 (int8). The graph is built once per program and then returned again
    (the same object: do not modify it).

    **Arguments:**

    - `program`: a `BlockSamplingProgram`.
    """
    memo = program.per_block_interaction_tail_index.memo
    if "interaction_graph" not in memo:
        memo["interaction_graph"] = _build(program)
    return memo["interaction_graph"]


def _build(program) -> sp.csr_matrix:
    spec = program.gibbs_spec
    heads, tails = [], []
    for b, entries in enumerate(program.per_block_interaction_tail_index):
        head = spec.block_starts[b] + np.arange(len(spec.free_blocks[b]), dtype=np.int64)
        for tail_sets in entries:
            for tail in tail_sets:
                mask = (tail >= 0) & (tail != head[:, None])
                heads.append(np.broadcast_to(head[:, None], tail.shape)[mask])
                tails.append(tail[mask].astype(np.int64))
    n = spec.n_nodes
    if not heads:
        return sp.csr_matrix((n, n), dtype=np.int8)
    h, t = np.concatenate(heads), np.concatenate(tails)
    rows, cols = np.concatenate([h, t]), np.concatenate([t, h])
    graph = sp.csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    graph.sum_duplicates()
    graph.data[:] = 1
    return graph
