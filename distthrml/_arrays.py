"""Host-side array helpers for program construction.

Building a program is host work: with concrete parameters it runs in numpy (no XLA compile per
shape); with traced parameters (a program built inside `jax.jit`) the same code runs in jax.numpy.
"""

from __future__ import annotations

import jax
import numpy as np
from jax import numpy as jnp

from .errors import ParameterError


def is_concrete(x) -> bool:
    return isinstance(x, np.ndarray) or (isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer))


def check_finite(owner: str, **arrays) -> None:
    """Raise `ParameterError` naming the first concrete array with a NaN or inf; traced arrays
    (a model built inside `jax.jit`) are skipped, their values being unknown at trace time.

    **Arguments:**

    - `owner`: what holds the arrays (e.g. `IsingEBM`), for the message.
    - `arrays`: name -> parameter array.
    """
    for name, value in arrays.items():
        if is_concrete(value) and not np.all(np.isfinite(np.asarray(value))):
            raise ParameterError(f"{owner}: {name} must be finite (got a NaN or inf)")


def array_module(*xs):
    """numpy when every array in `xs` is concrete, else jax.numpy."""
    return np if all(is_concrete(x) for x in xs) else jnp


def host(x):
    """A concrete array as numpy (zero-copy on CPU); traced arrays are returned unchanged."""
    return np.asarray(x) if is_concrete(x) else x


def take_rows(x, rows: np.ndarray):
    """`x[rows]` along axis 0, as a jax array."""
    if is_concrete(x):
        return jnp.asarray(np.take(np.asarray(x), rows, axis=0))
    return jnp.take(x, jnp.asarray(rows), axis=0)


class Frozen:
    """Hashable-by-identity holder for static numpy bookkeeping inside an `eqx.Module` (static
    fields must hash, and numpy arrays do not); `memo` keeps what is derived from it once, shared
    by every copy of the module that shares this bookkeeping."""

    __slots__ = ("value", "memo")

    def __init__(self, value):
        self.value = value
        self.memo = {}

    def __getitem__(self, i):
        return self.value[i]

    def __len__(self):
        return len(self.value)

    def __iter__(self):
        return iter(self.value)
