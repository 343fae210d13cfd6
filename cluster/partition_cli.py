"""`distthrml partition`: partition a graph and print its quality report (the front end of
`partition/`).

Examples::

    distthrml partition --graph torus --size 256x256 --parts 8
    distthrml partition --graph pegasus --m 14 --parts 4 --json --plot pegasus.png
    distthrml partition --edges graph.txt --parts 16 --method random
    distthrml partition --config configs/partition_torus.yaml --hosts 2 --devices-per-host 4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import time
from typing import Any

from partition.api import partition_capacity, partition_graph, partition_hierarchical
from partition.errors import PartitionError
from partition.methods import METHODS
from partition.sources import GRAPH_KINDS, build_graph

from .config_file import ConfigError, check_sections, in_file, optional, parse_section, read_yaml

_DEFAULTS = {"parts": None, "method": "metis", "seed": 0, "bytes_per_node": 1}
_DEFAULT_PARTS = 8  # without a capacity; with one, ceil(nodes / capacity)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `partition` subcommand to an argparse subparsers object.

    **Arguments:**

    - `subparsers`: the result of `ArgumentParser.add_subparsers()`.
    """
    parser = subparsers.add_parser(
        "partition",
        help="partition a graph (METIS/random/contiguous) and report cut, halos, traffic",
        description="Partition a graph and print its quality report.",
    )
    _add_arguments(parser)
    parser.set_defaults(handler=run)
    return parser


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("graph (--graph or --edges, and/or --config)")
    source.add_argument("--graph", choices=[k for k in GRAPH_KINDS if k != "edges"], help="generator")
    source.add_argument("--size", help="grid2d/torus size ROWSxCOLS, e.g. 256x256")
    source.add_argument("--m", type=int, help="pegasus size parameter")
    source.add_argument("--nodes", type=int, help="random-regular/random: number of nodes")
    source.add_argument("--degree", type=int, help="random-regular: degree")
    source.add_argument("--mean-degree", type=float, help="random: mean degree (default 6)")
    source.add_argument("--graph-seed", type=int, help="seed of the random generators (default 0)")
    source.add_argument("--edges", help="edge-list file: `u v` lines, or a .npy array (E, 2)")
    source.add_argument("--config", help="YAML file with `graph:` and `partition:` sections")

    options = parser.add_argument_group("partition (override the config)")
    options.add_argument("--parts", type=int, help="number of parts (default 8)")
    options.add_argument("--method", choices=METHODS, help="partitioning method (default metis)")
    options.add_argument("--seed", type=int, help="partition seed (default 0)")
    options.add_argument("--capacity", type=int, help="at most this many nodes per part")
    options.add_argument("--hosts", type=int, help="hierarchical: number of hosts")
    options.add_argument("--devices-per-host", type=int, help="hierarchical: devices per host")
    options.add_argument("--bytes-per-node", type=float, help="bytes of one node state (default 1)")

    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="print the report as one JSON object")
    output.add_argument("--plot", metavar="PNG", help="draw the graph colored by part (needs coordinates)")
    output.add_argument("--save", metavar="NPZ", help="save the partition for later runs")
    output.add_argument("--colors", action="store_true", help="also color the graph and report the colors")


def run(args: argparse.Namespace) -> int:
    """Run `distthrml partition` with parsed arguments; returns the exit status. Bad input raises
    (`PartitionError`, `ConfigError`), for the command line to report.

    **Arguments:**

    - `args`: parsed arguments from the parser `add_parser` made.
    """
    report = _run(args)
    print(json.dumps(report) if args.json else format_table(report))
    return 0


def _run(args: argparse.Namespace) -> dict[str, Any]:
    graph_spec, options = _graph_spec_and_options(args)
    started = time.perf_counter()
    source = build_graph(graph_spec)
    built = time.perf_counter()

    parts, method, seed = options["parts"], options["method"], options["seed"]
    hosts, per_host = options.get("hosts"), options.get("devices_per_host")
    if (hosts is None) != (per_host is None):
        raise PartitionError("--hosts and --devices-per-host go together")
    if hosts is not None:
        if options.get("capacity") is not None:
            raise PartitionError("--capacity cannot be combined with --hosts/--devices-per-host")
        partition = partition_hierarchical(source.csr, hosts, per_host, method=method, seed=seed)
    elif options.get("capacity") is not None:
        partition = partition_capacity(source.csr, options["capacity"], parts, method=method, seed=seed)
    else:
        parts = _DEFAULT_PARTS if parts is None else parts
        partition = partition_graph(source.csr, parts, method=method, seed=seed)
    done = time.perf_counter()

    report = {"graph": source.name, **partition.report(options["bytes_per_node"])}
    report["seconds_graph"] = round(built - started, 3)
    report["seconds_partition"] = round(done - built, 3)
    if args.colors:
        from partition.coloring import color_classes, greedy_color

        colors = greedy_color(source.csr)
        report["n_colors"] = len(color_classes(colors))
        report["seconds_coloring"] = round(time.perf_counter() - done, 3)
    if args.save:
        partition.save(args.save)
        report["saved"] = args.save
    if args.plot:
        if source.coordinates is None:
            raise PartitionError(f"--plot needs node coordinates, which graph {source.name} does not have")
        from partition.plot import plot_partition

        plot_partition(partition, source.coordinates, args.plot)
        report["plot"] = args.plot
    return report


def _graph_spec_and_options(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """Merge the config file (if any) with the command line; the command line wins."""
    chosen = [name for name in ("graph", "edges") if getattr(args, name)]
    if len(chosen) > 1:
        raise PartitionError("give only one of --graph and --edges")
    if not chosen and not args.config:
        raise PartitionError("give a graph: --graph KIND, --edges FILE or --config YAML")

    graph: dict[str, Any] = {}
    options: dict[str, Any] = dict(_DEFAULTS)
    if args.config:
        graph, from_config = load_config(args.config)
        options.update({k: v for k, v in from_config.items() if v is not None})
    if args.graph:
        graph = {"kind": args.graph}
    elif args.edges:
        graph = {"kind": "edges", "path": args.edges}
    flags = {
        "size": args.size,
        "m": args.m,
        "nodes": args.nodes,
        "degree": args.degree,
        "mean_degree": args.mean_degree,
        "seed": args.graph_seed,
    }
    graph.update({k: v for k, v in flags.items() if v is not None})
    overrides = {
        "parts": args.parts,
        "method": args.method,
        "seed": args.seed,
        "capacity": args.capacity,
        "hosts": args.hosts,
        "devices_per_host": args.devices_per_host,
        "bytes_per_node": args.bytes_per_node,
    }
    options.update({k: v for k, v in overrides.items() if v is not None})
    return graph, options


def format_table(report: dict[str, Any]) -> str:
    """The report as an aligned two-column table (lists summarised, dicts indented).

    **Arguments:**

    - `report`: a report dict.
    """
    rows: list[tuple[str, str]] = []
    for key, value in report.items():
        if isinstance(value, dict):
            rows.append((key, ""))
            rows.extend((f"  {k}", _format_value(v)) for k, v in value.items())
        elif isinstance(value, list):
            rows.append((key, f"min {min(value)}, max {max(value)}, {len(value)} values"))
        else:
            rows.append((key, _format_value(value)))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@dataclasses.dataclass(frozen=True)
class PartitionOptions:
    """`partition:` of a partition config: the defaults of the command's options."""

    parts: int | None = optional(int)
    method: str | None = optional(str)
    seed: int | None = optional(int)
    capacity: int | None = optional(int)
    hosts: int | None = optional(int)
    devices_per_host: int | None = optional(int)
    bytes_per_node: float | None = optional(float)


def load_config(path: str | pathlib.Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a partition config (`graph:` and `partition:` sections, see
    `configs/partition_torus.yaml`).

    **Arguments:**

    - `path`: the YAML file.

    **Returns:** `(graph spec, partition options)`; the graph spec is checked by
    `partition.sources.build_graph`.
    """
    with in_file(path):
        raw = check_sections(read_yaml(path), "partition")
        graph = raw.get("graph") or {}
        if not isinstance(graph, dict):
            raise ConfigError(f"config section 'graph' must be a mapping, got {type(graph).__name__}")
        options = parse_section(PartitionOptions, raw.get("partition"), "partition")
    return dict(graph), dataclasses.asdict(options)
