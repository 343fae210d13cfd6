"""The emulation report: a JSON-serialisable dict and its printed table."""

from __future__ import annotations

from typing import Any

import numpy as np

from .config import EmulateConfig


def build_report(result: dict, config: EmulateConfig) -> dict[str, Any]:
    """Collect per-chip load, per-link traffic, the projection and the measured run.

    **Arguments:**

    - `result`: what `run.emulate` returned.
    - `config`: the chip-system config.
    """
    model, topo, mp = result["model"], result["topology"], result["mapping"]
    tr, proj = mp.traffic, mp.projection
    sizes = mp.partition.part_sizes()
    part_of_chip = {int(c): p for p, c in enumerate(mp.placement)}
    sent = tr.chip_bits.sum(axis=(0, 2))
    received = tr.chip_bits.sum(axis=(0, 1))
    chips = []
    for c in range(topo.n_chips):
        p = part_of_chip.get(c)
        nodes = int(sizes[p]) if p is not None else 0
        chips.append({"chip": c, "part": p, "nodes": nodes, "load": nodes / config.chips.capacity,
                      "bits_sent_per_sweep": int(sent[c]), "bits_received_per_sweep": int(received[c]),
                      "nodes_per_step": [int(x) for x in tr.step_nodes[:, c]]})
    links = [{"link": [int(a), int(b)], "bits_per_sweep": int(tr.link_bits[:, i].sum()),
              "bits_per_step": [int(x) for x in tr.link_bits[:, i]], "utilisation": proj["link_utilisation"][i],
              "bandwidth_bits_per_s": float(config.links.bandwidth * topo.bandwidth_scale[i]),
              "latency_s": float(topo.graph.edges[a, b]["latency"])}
             for i, (a, b) in enumerate(tr.links)]
    prep = mp.partition.report()
    report = {
        "config": config.source,
        "model": model.name,
        "n_nodes": model.n_nodes,
        "system": {"chips": topo.n_chips, "topology": config.links.topology, "capacity": config.chips.capacity,
                   "bandwidth_bits_per_s": config.links.bandwidth, "latency_s": config.links.latency,
                   "uniform_links": bool(topo.uniform),
                   "time_per_color_step_s": config.chips.time_per_color_step, "time_per_node_s": config.chips.time_per_node,
                   "energy_per_flip_j": config.energy.per_flip, "energy_per_bit_hop_j": config.energy.per_bit},
        "mapping": {"parts": mp.parts, "method": config.mapping.method, "placement_method": config.mapping.placement,
                    "placement": [int(c) for c in mp.placement], "edge_cut": prep["edge_cut"],
                    "imbalance": prep["imbalance"], "max_part": int(sizes.max()),
                    "bit_hops_identity": mp.costs["bit_hops"][0], "bit_hops_placed": mp.costs["bit_hops"][1],
                    "sweep_time_identity_s": mp.costs["sweep_time_s"][0], "sweep_time_placed_s": mp.costs["sweep_time_s"][1],
                    "seconds": mp.seconds},
        "traffic": {"state_bits": config.links.state_bits or "bytes x 8",
                    "counted_bytes_per_sweep": tr.bytes_per_sweep,
                    "partition_halo_bytes_per_sweep": prep["halo_bytes_per_sweep"],
                    "counted_equals_partition": tr.bytes_per_sweep == prep["halo_bytes_per_sweep"],
                    "bits_per_sweep": int(tr.chip_bits.sum()),
                    "chip_bits_per_sweep": tr.chip_bits.sum(axis=0).tolist()},
        "chips": chips,
        "links": links,
        "projection": proj,
    }
    run = result.get("run")
    if run is not None:
        report["traffic"]["sharded_halo_bytes_per_sweep"] = run["halo_bytes_per_sweep"]
        report["measured"] = run["measured"]
        report["measured"]["samples_per_s_vs_projected"] = run["measured"]["samples_per_s"] / proj["samples_per_s"]
    if result.get("sweep") is not None:
        report["sweep"] = result["sweep"]
    return report


def _si(value: float, unit: str) -> str:
    if value == 0:
        return f"0 {unit}"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p"), (1e-15, "f")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def format_report(r: dict[str, Any]) -> str:
    """The report as a printed table (summary, per chip, per link, projection, sweep).

    **Arguments:**

    - `r`: a `build_report` dict.
    """
    s, m, t, p = r["system"], r["mapping"], r["traffic"], r["projection"]
    lines = [
        f"model   {r['model']}",
        (f"system  {s['chips']} chips ({s['topology']}), capacity {s['capacity']}, links {_si(s['bandwidth_bits_per_s'], 'b/s')}"
         f" / {_si(s['latency_s'], 's')} per hop" + ("" if s["uniform_links"] else " (some links differ: see the link table)")),
        (f"mapping {m['parts']} parts ({m['method']}, largest {m['max_part']}, edge cut {m['edge_cut']}), placement "
         f"{m['placement_method']}: {m['bit_hops_placed']} state-hops/sweep, projected sweep "
         f"{_si(m['sweep_time_placed_s'], 's')} (identity {m['bit_hops_identity']}, {_si(m['sweep_time_identity_s'], 's')})"),
        (f"traffic {t['counted_bytes_per_sweep']} bytes/sweep counted from the exchange plans"
         f" (partition halo_bytes_per_sweep {t['partition_halo_bytes_per_sweep']}, equal: {t['counted_equals_partition']});"
         f" {t['bits_per_sweep']} bits/sweep at {t['state_bits']} per state"),
        "",
        f"{'chip':>4} {'part':>4} {'nodes':>9} {'load':>6} {'bits out/sweep':>15} {'bits in/sweep':>14}",
    ]
    for c in r["chips"]:
        part = "-" if c["part"] is None else str(c["part"])
        lines.append(f"{c['chip']:>4} {part:>4} {c['nodes']:>9} {c['load']:>6.1%} {c['bits_sent_per_sweep']:>15} {c['bits_received_per_sweep']:>14}")
    busy = [x for x in r["links"] if x["bits_per_sweep"]]
    header = (f"{'link':>9} {'bits/sweep':>12} {'utilisation':>11} {'bandwidth':>11} {'latency':>9}"
              f"   ({len(busy)} of {len(r['links'])} directed links carry traffic)")
    lines += ["", header]
    for x in sorted(busy, key=lambda x: -x["bits_per_sweep"]):
        lines.append(f"{x['link'][0]:>4}->{x['link'][1]:<4} {x['bits_per_sweep']:>12} {x['utilisation']:>11.1%} "
                     f"{_si(x['bandwidth_bits_per_s'], 'b/s'):>11} {_si(x['latency_s'], 's'):>9}")
    lines += ["", f"{'step':>4} {'blocks':>8} {'compute':>10} {'latency':>10} {'link time':>10} {'hops':>4} {'total':>10}"]
    for i, st in enumerate(p["steps"]):
        lines.append(f"{i:>4} {st['blocks']!s:>8} {_si(st['compute_s'], 's'):>10} {_si(st['latency_s'], 's'):>10} "
                     f"{_si(st['link_time_s'], 's'):>10} {st['max_hops']:>4} {_si(st['step_s'], 's'):>10}")
    lines += [
        "",
        (f"projected sweep time {_si(p['sweep_time_s'], 's')} (compute {_si(p['compute_s'], 's')}, communication "
         f"{_si(p['communication_s'], 's')}), {_si(p['samples_per_s'], 'samples/s')}, "
         f"{_si(p['energy_per_sample_j'], 'J')}/sample (flips {_si(p['energy_flips_j'], 'J')}, links {_si(p['energy_links_j'], 'J')})"),
    ]
    if "measured" in r:
        me = r["measured"]
        lines.append(f"measured here         {me['seconds_per_sweep']:.3g} s/sweep, {me['samples_per_s']:.3g} samples/s "
                     f"({me['chains']} chains x {me['sweeps']} sweeps on {me['devices']} {me['platform']} devices, "
                     f"{me['processes']} process{'es' if me['processes'] > 1 else ''}); projected/measured speedup {1 / me['samples_per_s_vs_projected']:.3g}x")
    if "sweep" in r:
        lines += ["", f"{r['sweep']['over']:>12} {'parts':>5} {'sweep time':>11} {'samples/s':>11} {'J/sample':>10}"]
        for row in r["sweep"]["rows"]:
            lines.append(f"{row['value']:>12.4g} {row['parts']:>5} {row['sweep_time_s']:>11.4g} {row['samples_per_s']:>11.4g} "
                         f"{row['energy_per_sample_j']:>10.4g}")
    return "\n".join(lines)


def jsonable(x: Any) -> Any:
    """`x` with numpy scalars and arrays turned into Python numbers and lists."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x
