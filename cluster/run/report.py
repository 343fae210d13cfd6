"""The job's report: partition figures for `summary.json` and the short text printed at the end."""

from __future__ import annotations

from typing import Any

from .engine import Engine

_PARTITION_KEYS = ("method", "seed", "edge_cut", "edge_cut_fraction", "max_halo", "mean_halo", "imbalance",
                   "neighbor_parts_max", "halo_bytes_per_sweep", "bytes_per_node")


def sharding_summary(engine: Engine, parts: int, chains_axis: int) -> dict[str, Any]:
    """The `sharding` entry of `summary.json`: mesh, partition report and executed halo bytes.

    **Arguments:**

    - `engine`: the job's engine.
    - `parts`, `chains_axis`: the mesh's graph and chains axis sizes.
    """
    out: dict[str, Any] = {"parts": parts, "chains_axis": chains_axis, "sharded": engine.sharded}
    if engine.sharded:
        out["exchange"] = list(engine.target.exchange)
    if engine.partition is None:
        out.update(edge_cut=0, max_halo=0, imbalance=0.0, halo_bytes_per_sweep=0, executed_halo_bytes_per_sweep=0)
        return out
    report = engine.partition.report(engine.model.node_bytes)
    out.update({k: report[k] for k in _PARTITION_KEYS if k in report})
    sizes = report["part_sizes"]
    out["part_sizes_min"], out["part_sizes_max"] = int(min(sizes)), int(max(sizes))
    out["executed_halo_bytes_per_sweep"] = int(engine.target.halo_bytes_per_sweep())
    return out


def _pm(value: float, error: float | None, digits: int = 5) -> str:
    return f"{value:.{digits}f}" + (f" +- {error:.{digits}f}" if error is not None else " (1 chain: no error bar)")


def format_report(summary: dict[str, Any]) -> str:
    """The few lines printed after a run (partition table, speed, observables).

    **Arguments:**

    - `summary`: the run's summary (as written to `summary.json`).
    """
    sh, t = summary["sharding"], summary["timing"]
    rows = [("model", f"{summary['model_name']} (built in {t['build_seconds']:.2f} s)")]
    rows.append(("devices", f"{summary['devices']} x {summary['platform']} of {summary['devices_available']} "
                             f"({summary['cores']} cores); mesh chains {sh['chains_axis']} x graph {sh['parts']}"))
    if sh["sharded"]:
        rows += [
            ("partition", (f"{sh['method']} into {sh['parts']} parts of {sh['part_sizes_min']}..{sh['part_sizes_max']} "
                           f"nodes ({t['partition_seconds']:.2f} s)")),
            ("  edge cut", f"{sh['edge_cut']} ({100 * sh['edge_cut_fraction']:.2f}% of edges)"),
            ("  max halo", f"{sh['max_halo']} nodes; imbalance {sh['imbalance']:.3f}; <= {sh['neighbor_parts_max']} neighbour parts"),
            ("  halo bytes/sweep", f"{sh['halo_bytes_per_sweep']} planned, {sh['executed_halo_bytes_per_sweep']} executed"),
        ]
    s = summary["sampling"]
    timing = f"(compile {t['compile_seconds']:.2f} s, wall {t['wall_seconds']:.1f} s)"
    rows.append(("sampling", f"{s['chains']} chains x {summary['sweeps']} sweeps in {t['sample_seconds']:.2f} s {timing}"))
    if summary["flips_per_ns"] is not None:
        rows.append(("speed", f"{summary['flips_per_ns']:.4f} flips/ns ({summary['rng']} stream; {summary['kernel']})"))
    if summary.get("resumed_after_chunk") is not None:
        rows.append(("resumed", f"after chunk {summary['resumed_after_chunk']} of {summary['chunks']}"))
    if t.get("checkpoints"):
        share = t["checkpoint_seconds"] / t["sample_seconds"] if t["sample_seconds"] else 0.0
        rows.append(("checkpoints", f"{t['checkpoints']} saved in {t['checkpoint_seconds']:.2f} s "
                                    f"({100 * share:.1f}% of the sampling time)"))
    obs = summary["observables"]
    energy = _pm(obs["energy_per_site"], obs["energy_per_site_stderr"])
    if "onsager_energy_per_site" in obs:
        z = obs["energy_minus_onsager_in_stderr"]
        energy += f"  (Onsager {obs['onsager_energy_per_site']:.5f}" + (f", {z:+.1f} std. errors)" if z is not None else ")")
    rows.append(("energy/site", energy))
    if "abs_magnetization" in obs:
        rows.append(("|magnetization|", _pm(obs["abs_magnetization"], obs["abs_magnetization_stderr"], 4)))
    else:
        rows.append(("majority fraction", _pm(obs["order_parameter"], obs["order_parameter_stderr"], 4)))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
