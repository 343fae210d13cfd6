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

When an explicit topology gives some links their own bandwidth or latency, the link term is
max_link bits_s[link] / bandwidth[link] and the latency term is the largest summed latency of
the routes used in step s; `links.bandwidth` then scales every link (a link's bandwidth keeps
its ratio to it), so the sweep over bandwidth still moves every link together.
"""

from __future__ import annotations

import numpy as np

from .config import EmulateConfig
from .topology import Topology
from .traffic import Traffic


def project(traffic: Traffic, config: EmulateConfig, topology: Topology | None = None) -> dict:
    """The projection of `traffic` on `config`'s chips and links (see the module docstring).

    **Arguments:**

    - `traffic`: counted traffic of the mapping.
    - `config`: the chip-system config.
    - `topology`: its `Topology`, needed when links differ (default: every link alike).
    """
    chips, links, energy = config.chips, config.links, config.energy
    if chips.time_per_node is not None:
        compute = chips.time_per_node * traffic.step_nodes.max(axis=1).astype(np.float64)
    else:
        compute = np.full(len(traffic.steps), float(chips.time_per_color_step))
    n_links = traffic.link_bits.shape[1]
    if topology is None or topology.uniform:
        bandwidth = np.full(n_links, float(links.bandwidth))
        latency = links.latency * traffic.max_hops
    else:
        bandwidth = links.bandwidth * topology.bandwidth_scale  # a changed links.bandwidth scales every link
        latency = np.where(traffic.chip_bits > 0, topology.route_latency[None], 0.0).max(axis=(1, 2))
    per_link_time = traffic.link_bits / bandwidth if n_links else np.zeros((len(traffic.steps), 0))
    slowest = per_link_time.argmax(axis=1) if n_links else np.zeros(len(traffic.steps), np.int64)
    busiest = traffic.link_bits[np.arange(len(traffic.steps)), slowest] if n_links else np.zeros(len(traffic.steps))
    link_time = per_link_time.max(axis=1) if n_links else np.zeros(len(traffic.steps))
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
        "link_utilisation": (per_sweep / (bandwidth * sweep)).tolist() if sweep > 0 else [0.0] * len(per_sweep),
    }
