"""Physics observables of a job from its records: energy per site, magnetization, moments."""

from __future__ import annotations

import numpy as np

from ..physics import onsager_energy_per_spin, onsager_magnetization
from ..workloads.build import BuiltModel
from ..workloads.schema import ModelConfig


def traces(model: BuiltModel, m: ModelConfig, records: dict) -> tuple[np.ndarray, np.ndarray]:
    """Energy per site and order parameter, `[chains, observations]` each.

    The order parameter is the magnetization `mean(s)` for spins and the largest category's
    fraction for Potts. Energies leave out `beta` (they are `H / N`).

    **Arguments:**

    - `model`: the built model.
    - `m`: the model config (coupling, field).
    - `records`: the observer's records.
    """
    n = model.n_nodes
    if model.categories is not None:
        return -m.coupling * records["equal"] / n, records["majority"] / n
    pair = records["pair"].astype(np.float64)
    if model.weights is None:
        pair = m.coupling * pair
    spin = records["spin"].astype(np.float64)
    return -(pair + m.field * spin) / n, spin / n


def mean_and_error(x: np.ndarray) -> tuple[float, float | None]:
    """Mean over chains of per-chain time averages, and its standard error (None for 1 chain).

    **Arguments:**

    - `x`: `[chains, observations]`.
    """
    per_chain = x.mean(axis=1)
    if len(per_chain) < 2:
        return float(per_chain.mean()), None
    return float(per_chain.mean()), float(per_chain.std(ddof=1) / np.sqrt(len(per_chain)))


def observables(model: BuiltModel, m: ModelConfig, energy: np.ndarray, order: np.ndarray) -> dict:
    """Summary figures of the sampling phase; for the zero-field 2D Ising lattice also Onsager's.

    **Arguments:**

    - `model`, `m`: the model and its config.
    - `energy`, `order`: `[chains, samples]` from `traces` (sampling phase only).
    """
    e, e_err = mean_and_error(energy)
    out = {"energy_per_site": e, "energy_per_site_stderr": e_err}
    if model.categories is None:
        mag, mag_err = mean_and_error(order)
        abs_mag, abs_err = mean_and_error(np.abs(order))
        out.update(magnetization=mag, magnetization_stderr=mag_err, abs_magnetization=abs_mag,
                   abs_magnetization_stderr=abs_err, order_parameter=abs_mag)
    else:
        out["order_parameter"], out["order_parameter_stderr"] = mean_and_error(order)
    if m.kind == "ising2d" and m.field == 0.0 and m.coupling > 0:
        exact = onsager_energy_per_spin(m.beta, m.coupling)
        out["onsager_energy_per_site"] = exact
        out["onsager_magnetization"] = onsager_magnetization(m.beta, m.coupling)
        out["energy_minus_onsager"] = e - exact
        # how many standard errors the estimate is from the exact (infinite-lattice) value
        out["energy_minus_onsager_in_stderr"] = (e - exact) / e_err if e_err else None
    return out


def moments(model: BuiltModel, counts: dict, slots: np.ndarray, n_observations: int) -> dict:
    """Node and edge moments (node order) from the summed counts of the sampling phase.

    **Arguments:**

    - `model`: the built model.
    - `counts`: `node` (per slot) and `edge` counts summed over chains and observations.
    - `slots`: the global-state slot of every node number.
    - `n_observations`: chains x observations the counts cover.
    """
    node = counts["node"][slots] / n_observations
    agree = counts["edge"] / n_observations
    out = {"edges": model.edges, "n_observations": np.int64(n_observations)}
    if model.categories is None:
        mean = 2.0 * node - 1.0
        out["mean_spin"] = mean.reshape(model.lattice) if model.lattice else mean
        out["edge_correlation"] = 2.0 * agree - 1.0  # <s_u s_v>
    else:
        out["category_frequency"] = node.reshape(*model.lattice, -1) if model.lattice else node
        out["edge_agreement"] = agree
    return out
