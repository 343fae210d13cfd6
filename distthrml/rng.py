"""Which random stream a sampling program draws from: THRML's, or distthrml's per-node or multispin stream.

- `"thrml"`: THRML 0.1.4's key splitting and `jax.random` draws, bit for bit: for the same key,
  program and schedule, `sample_states` returns THRML's samples (`distthrml.thrml_rng`).
- `"per_node"`: every node draws from (chain key, sweep, program index) with a cheap hash
  (`distthrml.node_rng`); this is what lets the chains-innermost kernel run, several times faster.
- `"multispin"`: spin programs whose conditionals take few field values per node (uniform or
  +-J couplings) run 32 chains per uint32 word with bitwise updates; every group of 32 chains
  draws bit planes from (the group's keys, sweep, program index, plane) (`distthrml.multispin`).

All three streams are shard-invariant: a sharded program reproduces the unsharded one bit for bit in
each. A program's stream is fixed when it is built (its `rng` field): the `rng=` argument of the
program's constructor, else the process default set by `set_rng`, else the environment variable
`DISTTHRML_RNG`, else `DEFAULT_RNG`. Nothing is read inside traced code.
"""

from __future__ import annotations

import os

from .errors import ProgramError

RNG_MODES = ("thrml", "per_node", "multispin")
DEFAULT_RNG = "per_node"
ENV_VAR = "DISTTHRML_RNG"

_process_default: str | None = None


def check_rng(rng: str, where: str = "rng") -> str:
    """`rng` if it names a stream, else a `ProgramError` listing the choices.

    **Arguments:**

    - `rng`: `"thrml"` or `"per_node"`.
    - `where`: what to call it in the message.
    """
    if rng not in RNG_MODES:
        raise ProgramError(f"{where} must be one of {RNG_MODES}, got {rng!r}")
    return rng


def set_rng(rng: str | None) -> None:
    """Set the stream of programs built from now on in this process (`None`: back to
    `DISTTHRML_RNG` or the default). Programs already built keep theirs.

    **Arguments:**

    - `rng`: `"thrml"`, `"per_node"` or `None`.
    """
    global _process_default
    _process_default = None if rng is None else check_rng(rng, "set_rng")


def get_rng() -> str:
    """The stream a program built now gets when its constructor is not told one."""
    if _process_default is not None:
        return _process_default
    env = os.environ.get(ENV_VAR, "").strip()
    return check_rng(env, f"the environment variable {ENV_VAR}") if env else DEFAULT_RNG


def resolve_rng(rng: str | None) -> str:
    """`rng` checked, or `get_rng()` when it is None.

    **Arguments:**

    - `rng`: a program constructor's `rng=` argument.
    """
    return get_rng() if rng is None else check_rng(rng)
