"""The forward process: every pixel flips independently at rate r, so after time t it differs
from the data with probability q(t) = (1 - exp(-2 r t)) / 2. A schedule of times
0 = t_0 < t_1 < ... < t_T <= 1 gives T intervals; step k denoises x_k back to x_{k-1}."""

from __future__ import annotations

import dataclasses

import numpy as np

from .config import DiffusionConfig


def flip_probability(rate: float, duration: np.ndarray | float) -> np.ndarray:
    """q = (1 - exp(-2 r d)) / 2: the chance a pixel differs after time `d`.

    **Arguments:**

    - `rate`: the flip rate r.
    - `duration`: elapsed time(s).
    """
    return -np.expm1(-2.0 * rate * np.asarray(duration, np.float64)) / 2.0


def coupling(p: np.ndarray | float) -> np.ndarray:
    """Gamma = log((1 - p) / p) / 2, so that q(x_t | x_{t-1}) is proportional to
    exp(Gamma * sum_i x_t,i x_{t-1},i) for spins: the forward process as a coupling.

    **Arguments:**

    - `p`: flip probabilities in (0, 1/2).
    """
    p = np.asarray(p, np.float64)
    return 0.5 * (np.log1p(-p) - np.log(p))


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The times and the probabilities derived from them, float64.

    **Attributes:**

    - `times`: `[T + 1]` t_0 = 0 .. t_T.
    - `marginal`: `[T + 1]` q(t_k): the chance x_k differs from x_0 at a pixel.
    - `interval`: `[T + 1]` the chance x_k differs from x_{k-1} (entry 0 unused, 0).
    - `gamma`: `[T + 1]` the forward coupling of each interval (entry 0 unused, 0).
    """

    times: np.ndarray
    marginal: np.ndarray
    interval: np.ndarray
    gamma: np.ndarray

    @property
    def steps(self) -> int:
        return len(self.times) - 1


def make_schedule(config: DiffusionConfig) -> Schedule:
    """The schedule of a `diffusion` config section.

    **Arguments:**

    - `config`: steps, schedule kind (`linear` or `log`), rate, `t_min` (log only).
    """
    T = config.steps
    if config.schedule == "linear" or T == 1:
        inner = np.arange(1, T + 1, dtype=np.float64) / T
    else:
        inner = np.exp(np.linspace(np.log(config.t_min), 0.0, T))
    times = np.concatenate([[0.0], inner])
    marginal = flip_probability(config.rate, times)
    interval = np.concatenate([[0.0], flip_probability(config.rate, np.diff(times))])
    gamma = np.concatenate([[0.0], coupling(interval[1:])])
    return Schedule(times, marginal, interval, gamma)
