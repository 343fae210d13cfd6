"""Many-chip system emulation: map a model onto chips of fixed capacity joined by links, sample
it with one shard per chip, count the link traffic of the executed exchange plans, and project
sweep time and energy (see README, "Emulating a many-chip system")."""

from .config import (
    EmulateConfig,
    EmulateConfigError,
    load_emulate_config,
    parse_emulate_config,
)
from .placement import place_parts, placement_cost
from .projection import project
from .topology import Topology, build_topology
from .traffic import (
    PartTraffic,
    Traffic,
    count_traffic,
    partition_part_traffic,
    route_parts,
)

__all__ = [
    "EmulateConfig",
    "EmulateConfigError",
    "PartTraffic",
    "Topology",
    "Traffic",
    "build_topology",
    "count_traffic",
    "load_emulate_config",
    "parse_emulate_config",
    "partition_part_traffic",
    "place_parts",
    "placement_cost",
    "project",
    "route_parts",
]
