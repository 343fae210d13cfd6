"""One emulation: build the model, partition it under the chip capacity, place the parts on
chips, sample it with one shard per chip (each chip a JAX device), count the executed exchange
plans' traffic per link and colour step, and project time and energy.

The chips are JAX devices: the local process's (emulated CPU) devices, or, with a `RayLaunch`,
the devices of Ray-launched worker processes joined into one `jax.distributed` run
(`ray_chips.py`). `sweep` re-maps (for `parts`) or re-projects (for `bandwidth`) without sampling.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import numpy as np

from ..config_file import ConfigError, in_file
from ..workloads.build import BuiltModel, build_model
from ..workloads.build import partition_model as partition_built_model
from .config import EmulateConfig, with_overrides
from .placement import place_parts
from .projection import project
from .sampling import sample_on_chips
from .topology import Topology, build_topology
from .traffic import (
    Traffic,
    count_traffic,
    partition_part_traffic,
    route_parts,
)


@dataclasses.dataclass(frozen=True)
class Mapping:
    """A model mapped onto a chip system.

    **Fields:** `parts` (K), `partition`, `placement` (`[K]` chip of every part), `costs`
    (`bit_hops` and projected `sweep_time_s` of part p on chip p, and of `placement`), `layout` (the
    `ShardLayout` whose plans were counted), `traffic`, `projection`, `seconds` (per stage).
    """

    parts: int
    partition: object
    placement: np.ndarray
    costs: dict
    layout: object
    traffic: Traffic
    projection: dict
    seconds: dict


def resolve_parts(config: EmulateConfig, n_nodes: int, parts: int | None = None) -> int:
    """K: `parts`, else `mapping.parts`, else ceil(nodes / capacity); checked against the capacity.

    **Arguments:**

    - `config`: the chip-system config.
    - `n_nodes`: the model's node count.
    - `parts`: an override (sweep mode).
    """
    cap, chips = config.chips.capacity, config.n_chips
    if n_nodes > cap * chips:
        raise ConfigError(
            f"chips.capacity: the model's {n_nodes} nodes do not fit on {chips} chips of {cap} variables "
            f"({chips * cap} in all); raise chips.capacity or add chips to links"
        )
    k = parts or config.mapping.parts or math.ceil(n_nodes / cap)
    if k > chips:
        raise ConfigError(f"mapping.parts: {k} parts need {k} chips, the system has {chips}")
    if k * cap < n_nodes:
        raise ConfigError(
            f"chips.capacity: {k} parts of at most {cap} variables hold {k * cap} < {n_nodes} nodes; "
            f"raise mapping.parts to at least {math.ceil(n_nodes / cap)} or chips.capacity"
        )
    return k


def partition_model(model: BuiltModel, config: EmulateConfig, k: int):
    """A capacity-constrained partition of the model's interaction graph into `k` parts.

    **Arguments:**

    - `model`: the built model.
    - `config`: the chip-system config.
    - `k`: the number of parts.
    """
    m = config.mapping
    part = partition_built_model(model, k, m.method, m.seed, capacity=config.chips.capacity)
    sizes = part.part_sizes()
    if sizes.max() > config.chips.capacity:  # partition_capacity guarantees it; a violation is a bug there
        raise AssertionError(f"partition: part {int(sizes.argmax())} holds {int(sizes.max())} > capacity {config.chips.capacity}")
    return part


def place(model, part, topology: Topology, config: EmulateConfig) -> tuple[np.ndarray, dict]:
    """Placement of the parts: greedy by hop-weighted traffic, then swaps that lower the projected
    sweep time (ties: bit-hops), both computed from the partition's per colour step messages.

    **Returns:** the placement and `{"bit_hops": (identity, placed), "sweep_time_s": (identity, placed)}`.
    """
    messages = partition_part_traffic(model.program, part, config.links.state_bits)

    def cost_of(placement):
        routed = route_parts(messages, placement, topology)
        return project(routed, config, topology)["sweep_time_s"], int(routed.bit_hops.sum())

    placement = place_parts(messages.states.sum(axis=0), topology.hops, config.mapping.placement, cost_of)
    ident, placed = cost_of(np.arange(part.n_parts)), cost_of(placement)
    return placement, {"bit_hops": (ident[1], placed[1]), "sweep_time_s": (ident[0], placed[0])}


def map_model(model, config: EmulateConfig, topology: Topology, k: int, layout=None, partition=None,
              traffic: Traffic | None = None, placed: tuple | None = None) -> Mapping:
    """Partition, place, count and project; without `layout` (nor `traffic`), the plans come from
    `build_layout` (the function `shard_program` uses), so no devices are needed.

    **Arguments:**

    - `model`: the `BuiltModel`.
    - `config`: the chip-system config.
    - `topology`: its `Topology`.
    - `k`: the number of parts.
    - `layout`, `partition`: an executed sharded program's layout and partition, if any.
    - `traffic`: traffic already counted from executed plans (by Ray workers), if any.
    - `placed`: `place`'s result when the parts were already placed.
    """
    from distthrml.sharding.layout import build_layout, program_node_block

    seconds = {}
    t0 = time.perf_counter()
    part = partition if partition is not None else partition_model(model, config, k)
    seconds["partition"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    placement, costs = placed if placed is not None else place(model, part, topology, config)
    seconds["placement"] = time.perf_counter() - t0
    if traffic is None:
        t0 = time.perf_counter()
        if layout is None:
            layout = build_layout(model.program, part.with_blocks(program_node_block(model.program)))
            seconds["layout"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        traffic = count_traffic(model.program, layout, placement, topology, config.links.state_bits)
        seconds["count"] = time.perf_counter() - t0
    return Mapping(k, part, placement, costs, layout, traffic, project(traffic, config, topology), seconds)


def stages(config: EmulateConfig, sample: bool) -> int:
    """The stages `emulate` reports to `on_stage`: model, partition, sampling (if any), mapping,
    and one per sweep value.

    **Arguments:**

    - `config`: the chip-system config.
    - `sample`: whether the emulation samples.
    """
    return 3 + int(sample) + (len(config.sweep.values) if config.sweep.over is not None else 0)


def emulate(config: EmulateConfig, devices: list | None = None, *, sample: bool | None = None, echo=print,
            launch=None, storage=None, on_stage: Callable[[], object] = lambda: None) -> dict:
    """Run one emulation of `config` (see the module docstring); returns everything the report
    needs: `model`, `topology`, `mapping`, `run` (or None), `sweep` (or None).

    **Arguments:**

    - `config`: the chip-system config.
    - `devices`: one JAX device per chip (at least as many as parts); needed when sampling.
    - `sample`: override `run.sample`.
    - `echo`: progress printer.
    - `launch`: a `cluster.ray_launch.RayLaunch`: sample on the devices of Ray-launched processes
      (chip c is global device c) instead of `devices`.
    - `storage`: Ray Train's storage folder (with `launch`).
    - `on_stage`: called after every stage (`stages` of them), e.g. to advance a progress bar.
    """
    with in_file(config.source):  # errors found while mapping name the config file too
        return _emulate(config, devices, sample=config.run.sample if sample is None else sample, echo=echo,
                        launch=launch, storage=storage, on_stage=on_stage)


def _emulate(config: EmulateConfig, devices: list | None, *, sample: bool, echo, launch, storage, on_stage) -> dict:
    topology = build_topology(config.links)
    t0 = time.perf_counter()
    model = build_model(config.model, config.source)
    echo(f"model: {model.name} (built in {time.perf_counter() - t0:.1f} s)")
    on_stage()
    k = resolve_parts(config, model.n_nodes)
    t0 = time.perf_counter()
    part = partition_model(model, config, k)
    partition_s = time.perf_counter() - t0
    echo(f"partition: {k} parts of at most {config.chips.capacity} (largest {int(part.part_sizes().max())}) "
         f"in {time.perf_counter() - t0:.1f} s")
    on_stage()
    result = {"model": model, "topology": topology, "run": None, "sweep": None}
    if sample and launch is not None:
        from .ray_chips import sample_on_ray_chips

        placed = place(model, part, topology, config)
        ran = sample_on_ray_chips(config, part, placed[0], launch, storage)
        echo(_sampled(ran["measured"], f"{k} chips in {ran['measured']['processes']} Ray processes"))
        on_stage()
        mapping = map_model(model, config, topology, k, partition=part, traffic=ran["traffic"], placed=placed)
        result["run"] = ran
    elif sample:
        if devices is None or len(devices) < config.n_chips:
            raise ConfigError(f"sampling on {config.n_chips} chips needs {config.n_chips} devices, "
                              f"got {0 if devices is None else len(devices)}")
        placed = place(model, part, topology, config)
        ran = sample_on_chips(model, part, placed[0], devices, config)
        echo(_sampled(ran["measured"], f"{k} emulated chips"))
        on_stage()
        mapping = map_model(model, config, topology, k, layout=ran["sprog"].layout, partition=part, placed=placed)
        ran["halo_bytes_per_sweep"] = int(ran["sprog"].halo_bytes_per_sweep())
        result["run"] = ran
    else:
        mapping = map_model(model, config, topology, k, partition=part)
    mapping.seconds["partition"] = partition_s
    mapping.seconds["build_model"] = model.build_seconds
    result["mapping"] = mapping
    on_stage()
    if config.sweep.over is not None:
        result["sweep"] = sweep(model, config, topology, mapping, echo=echo, on_value=on_stage)
    return result


def _sampled(m: dict, where: str) -> str:
    return (f"sampled {m['chains']} chains x {m['sweeps']} sweeps on {where}: {m['seconds_per_sweep']:.3f} s/sweep "
            f"(first call {m['first_call_s']:.1f} s)")


def sweep(model, config: EmulateConfig, topology: Topology, base: Mapping, *, echo=print,
          on_value: Callable[[], object] = lambda: None) -> dict:
    """Projected sweep time against `sweep.over` (`parts`: re-partition and re-place; `bandwidth`:
    re-project the base mapping's traffic).

    **Arguments:**

    - `model`, `config`, `topology`: as for `map_model`.
    - `base`: the mapping of the config itself (reused for bandwidth sweeps).
    - `echo`: progress printer.
    - `on_value`: called after every swept value.
    """
    rows = []
    for value in config.sweep.values:
        if config.sweep.over == "bandwidth":
            c = with_overrides(config, links={"bandwidth": float(value)})
            proj = project(base.traffic, c, topology)
            k = base.parts
        else:
            k = resolve_parts(config, model.n_nodes, int(value))
            mp = map_model(model, config, topology, k)
            proj = mp.projection
        rows.append({"value": value, "parts": k, "sweep_time_s": proj["sweep_time_s"], "compute_s": proj["compute_s"],
                     "communication_s": proj["communication_s"], "bandwidth_term_s": proj["bandwidth_term_s"],
                     "samples_per_s": proj["samples_per_s"], "energy_per_sample_j": proj["energy_per_sample_j"]})
        echo(f"sweep {config.sweep.over}={value}: projected sweep {proj['sweep_time_s']:.3e} s")
        on_value()
    return {"over": config.sweep.over, "rows": rows}
