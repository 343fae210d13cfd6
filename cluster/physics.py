"""Exact results used to check samplers."""

from __future__ import annotations

import numpy as np
from scipy.special import ellipkm1


def onsager_energy_per_spin(beta: float, coupling: float = 1.0) -> float:
    r"""Energy per spin of the infinite 2D square-lattice Ising model $H = -J \sum_{\langle ij \rangle} s_i s_j$
    in zero field (Onsager): $u = -J \coth(2\beta J)\,[1 + \tfrac{2}{\pi}(2\tanh^2(2\beta J) - 1) K(k)]$,
    $k = 2\sinh(2\beta J)/\cosh^2(2\beta J)$.

    **Arguments:**

    - `beta`: inverse temperature.
    - `coupling`: J.
    """
    x = 2.0 * beta * coupling
    if x == 0.0:
        return 0.0  # the infinite-temperature limit: independent spins, no energy
    s, c = np.sinh(x), np.cosh(x)
    # K is evaluated through 1 - k^2 = ((s^2 - 1) / c^2)^2, exact near the critical point where
    # k^2 itself rounds to 1 and K(1) = inf would turn the (vanishing) product into nan
    complement = ((s * s - 1.0) / (c * c)) ** 2
    return float(-coupling / np.tanh(x) * (1.0 + 2.0 / np.pi * (2.0 * np.tanh(x) ** 2 - 1.0) * ellipkm1(complement)))


def onsager_magnetization(beta: float, coupling: float = 1.0) -> float:
    """Spontaneous magnetisation of the infinite 2D Ising model (0 above the critical temperature)."""
    s = np.sinh(2.0 * beta * coupling)
    return float((1.0 - s**-4) ** 0.125) if s > 1.0 else 0.0
