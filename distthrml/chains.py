"""Running a call for every chain of a batch, whatever the program: a `BatchedProgram` (e.g. a
sharded one) takes the whole batch in one call, any other program is `jax.vmap`ped. Both give
the same bits (contract 4), so callers need not ask which one they hold."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from .block_sampling import BatchedProgram


def map_chains(call: Callable[..., Any], program: Any, *batched: Any) -> Any:
    """`call(*batched)` for every chain: each argument of `batched` carries a leading chain axis
    (keys, initial states, ...), and so does the result.

    **Arguments:**

    - `call`: a function of one chain's arguments that samples `program` (e.g. a
        `sample_with_observation` call); for a `BatchedProgram` it is called once with the
        whole batch.
    - `program`: the program `call` samples.
    - `batched`: the arguments, each with a leading chain axis.
    """
    if isinstance(program, BatchedProgram):
        return call(*batched)
    return jax.vmap(call)(*batched)
