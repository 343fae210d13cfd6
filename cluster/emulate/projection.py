"""Projected sweep time, throughput and energy of a mapping on the chip system.

For colour step s (one entry of the sampling order; the next step reads the states this one
exchanged, so compute and communication do not overlap):

    compute_s = t_color                                  (chips.time_per_color_step), or
              = t_node * max_chip nodes_s[chip]          (chips.time_per_node)
    comm_s    = latency * max_hops_s + max_link bits_s[link] / bandwidth    (0 without traffic)
    t_s       = compute_s + comm_s
    T_sweep   = sum_s t_s

`max_hops_s` is the longest route any message of step s takes (cut-through routing: latency
is paid per hop, the bits stream behind it), `bits_s[link]` the bits one direction of a link
carries in step s (links are full duplex, `bandwidth` per direction). A sample is one sweep of
one chain, so

    samples_per_s     = 1 / T_sweep
    energy_per_sample = per_flip * nodes_updated + per_bit * sum_messages bits * hops
    utilisation[link] = bits_per_sweep[link] / (bandwidth * T_sweep)

Halving the bandwidth adds exactly sum_s max_link bits_s[link] / bandwidth to T_sweep.
"""

from __future__ import annotations

import numpy as np

from .config import EmulateConfig
from .traffic import Traffic


def project(traffic: Traffic, config: EmulateConfig) -> dict:
    """The projection of `traffic` on `config`'s chips and links (see the module docstring).

    **Arguments:**

    - `traffic`: counted traffic of the mapping.
    - `config`: the chip-system config.
    """
    chips, links, energy = config.chips, config.links, config.energy
    if chips.time_per_node is not None:
        compute = chips.time_per_node * traffic.step_nodes.max(axis=1).astype(np.float64)
    else:
        compute = np.full(len(traffic.steps), float(chips.time_per_color_step))
    busiest = traffic.link_bits.max(axis=1) if traffic.link_bits.size else np.zeros(len(traffic.steps))
    link_time = busiest / links.bandwidth
    latency = links.latency * traffic.max_hops
    step = compute + latency + link_time
    sweep = float(step.sum())
    nodes = int(traffic.step_nodes.sum())
    bit_hops = int(traffic.bit_hops.sum())
    per_sweep = traffic.link_bits_per_sweep
    return {
        "steps": [
            {"blocks": blocks, "compute_s": float(compute[s]), "latency_s": float(latency[s]),
             "link_time_s": float(link_time[s]), "busiest_link_bits": int(busiest[s]),
             "max_hops": int(traffic.max_hops[s]), "step_s": float(step[s])}
            for s, blocks in enumerate(traffic.steps)
        ],
        "sweep_time_s": sweep,
        "compute_s": float(compute.sum()),
        "communication_s": float((latency + link_time).sum()),
        "bandwidth_term_s": float(link_time.sum()),
        "samples_per_s": 1.0 / sweep if sweep > 0 else float("inf"),
        "energy_per_sample_j": energy.per_flip * nodes + energy.per_bit * bit_hops,
        "energy_flips_j": energy.per_flip * nodes,
        "energy_links_j": energy.per_bit * bit_hops,
        "nodes_updated_per_sweep": nodes,
        "bit_hops_per_sweep": bit_hops,
        "link_utilisation": (per_sweep / (links.bandwidth * sweep)).tolist() if sweep > 0 else [0.0] * len(per_sweep),
    }
