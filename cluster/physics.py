"""Exact results used to check samplers."""

from __future__ import annotations

import numpy as np
from scipy.special import ellipk


def onsager_energy_per_spin(beta: float, coupling: float = 1.0) -> float:
    r"""Energy per spin of the infinite 2D square-lattice Ising model $H = -J \sum_{\langle ij \rangle} s_i s_j$
    in zero field (Onsager): $u = -J \coth(2\beta J)\,[1 + \tfrac{2}{\pi}(2\tanh^2(2\beta J) - 1) K(k)]$,
    $k = 2\sinh(2\beta J)/\cosh^2(2\beta J)$.

    **Arguments:**

    - `beta`: inverse temperature.
    - `coupling`: J.
    """
    x = 2.0 * beta * coupling
    k = 2.0 * np.sinh(x) / np.cosh(x) ** 2
    m = min(k * k, np.nextafter(1.0, 0.0))  # k <= 1 exactly; near beta_c rounding can push m past 1 (nan)
    return float(-coupling / np.tanh(x) * (1.0 + 2.0 / np.pi * (2.0 * np.tanh(x) ** 2 - 1.0) * ellipk(m)))


def onsager_magnetization(beta: float, coupling: float = 1.0) -> float:
    """Spontaneous magnetisation of the infinite 2D Ising model (0 above the critical temperature)."""
    s = np.sinh(2.0 * beta * coupling)
    return float((1.0 - s**-4) ** 0.125) if s > 1.0 else 0.0
