"""Which random stream (and so which kernel) a `distthrml run` job samples with.

`sampling.rng: auto` (the default) takes the multispin stream (32 chains per word, bitwise
updates; `distthrml.multispin`) when the model qualifies (spins whose couplings have one
magnitude per node: the `ising2d` lattices, +-J graphs), its chain groups do not straddle the
mesh's chains axis, and every block's nodes share one set of thresholds (uniform field and
degree: the comparator is then specialised at trace time). Per-node thresholds (random fields,
irregular degrees) are sampled exactly too, but slower than the per-node stream on this CPU,
so `auto` leaves them to it. The choice is in `summary.json`.
"""

from __future__ import annotations

import dataclasses

from distthrml.errors import ProgramError
from distthrml.multispin import LANES

from ..config_file import ConfigError

STREAMS = ("auto", "per_node", "multispin", "thrml")

KERNELS = {
    "multispin": "multispin: 32 chains per uint32 word, bitwise updates",
    "per_node": "chains innermost",
    "thrml": "THRML's stream: jax.vmap of one chain",
}


def choose_stream(model, rng: str, chains: int, chains_axis: int):
    """`(model with its program in the chosen stream, stream name)`.

    **Arguments:**

    - `model`: the built model (`cluster.workloads.build.BuiltModel`).
    - `rng`: `sampling.rng`.
    - `chains`, `chains_axis`: the batch and how many devices split it.
    """
    # chain groups of 32 must not cross devices of the chains axis, or the samples would depend on it
    grouped = chains_axis == 1 or (chains // chains_axis) % LANES == 0
    if rng in ("auto", "multispin"):
        try:
            if not grouped:
                raise ProgramError(
                    f"{chains} chains over a chains axis of {chains_axis} split groups of {LANES} chains across devices"
                )
            program = model.program.with_rng("multispin")
            fast = all(t.uniform is not None for t in program.per_block_multispin)
            if rng == "multispin" or fast:
                return dataclasses.replace(model, program=program), "multispin"
            rng = "per_node"
        except ProgramError as err:
            if rng == "multispin":
                raise ConfigError(f"sampling.rng: multispin cannot sample this model: {err}") from None
            rng = "per_node"
    return dataclasses.replace(model, program=model.program.with_rng(rng)), rng
