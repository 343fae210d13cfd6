r"""The draws of the built-in samplers from 24-bit uniforms: written element by element, so that
every layout (one chain `[n]`, chains innermost `[n, chains]`, a shard's rows) computes the same
operations in the same order and rounds identically.

- `bernoulli_draw`: spin +1 iff `u < sigmoid(2 gamma)` (float32). (The same draw compared as
  integers, `m < ceil(p 2^24)` with `m` the word's top 24 bits, gives identical samples but
  measured 5-10% slower in the chains-innermost kernel, so it is not used.)
- `categorical_draw_split`: the categories as K separate arrays (categories outermost, no
  reduction over a short minor axis): with $e_k = \exp(\theta_k - \max_j \theta_j)$ and the
  running sums $E_k = e_0 + \dots + e_k$ (in category order), the category is
  $\#\{k < K - 1 : E_k \le u E_{K-1}\}$, i.e. the inverse CDF at u.

Why the categorical draw is spelled out: a `softmax`/`cumsum` over a `[..., K]` axis leaves the
order of the normaliser's sum and the fusion of `exp` to XLA, and both vary with the array's
shape on CPU (measured on JAX 0.10.2: the sum of K = 3..100 terms follows a halving tree for
1000 rows and another order for 1 to 37 rows; `exp` inside a reduction fusion differs in the last
bit from the element-wise `exp` in 2% of entries), so two layouts of the same draw could disagree
in rare last-bit cases. Here nothing is reduced over an axis and no product feeds an addition
(XLA:CPU contracts `a * b + c` into a fused multiply-add where they share a fusion), so the
result does not depend on how XLA fuses it.
"""

from __future__ import annotations

import jax
from jax import numpy as jnp
from jaxtyping import Array, Bool, Float


def bernoulli_draw(u: Float[Array, "..."], gamma: Float[Array, "..."]) -> Bool[Array, "..."]:
    r"""True (spin +1) with probability $\sigma(2\gamma)$, given 24-bit uniforms `u` of the same
    shape. Shared by the per-node and the batched kernels so that both round identically.

    **Arguments:**

    - `u`: uniforms on [0, 1), multiples of 2^-24.
    - `gamma`: the conditional's field.
    """
    return u < jax.nn.sigmoid(2 * gamma).astype(jnp.float32)


def categorical_draw_split(u: Float[Array, "..."], theta: list[Float[Array, "..."]], dtype) -> Array:
    r"""Category k with probability $\propto e^{\theta_k}$ by the inverse CDF at u (module doc).

    **Arguments:**

    - `u`: uniforms on [0, 1), multiples of 2^-24.
    - `theta`: K arrays of `u`'s shape, the logits of category 0, 1, ..., K - 1.
    - `dtype`: the dtype of the returned categories.
    """
    top = theta[0]
    for t in theta[1:]:
        top = jnp.maximum(top, t)
    running, sums = None, []
    for t in theta:
        e = jnp.exp((t - top).astype(jnp.float32))
        running = e if running is None else running + e
        sums.append(running)
    threshold = u * sums[-1]
    choice = jnp.zeros(u.shape, jnp.int32)
    for s in sums[:-1]:
        choice = choice + (s <= threshold).astype(jnp.int32)
    return choice.astype(dtype)


def categorical_draw(u: Float[Array, "..."], theta: Float[Array, "... K"], dtype) -> Array:
    r"""`categorical_draw_split` with the categories on the last axis of `theta` (`u` has
    `theta`'s shape without it).

    **Arguments:**

    - `u`: uniforms on [0, 1).
    - `theta`: logits `[..., K]`.
    - `dtype`: the dtype of the returned categories.
    """
    return categorical_draw_split(u, [theta[..., k] for k in range(theta.shape[-1])], dtype)
