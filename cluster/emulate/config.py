"""Chip-system configs (`configs/chips/*.yaml`): schema, loading and validation.

A config names the model to map (the `model:` section of `distthrml run`, read by
`cluster.workloads.schema`), the chips (capacity, update time), the links (topology, bandwidth, latency), the
energy costs, the mapping, the emulated sampling run and the output. Every error names the file
and the offending key, before anything is built or compiled.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from typing import Any

from ..config_file import ConfigError, check_sections, in_file, optional, parse_section, read_yaml
from ..resources import check_sampling_fits
from ..workloads.schema import ModelConfig, graph_size, parse_model

TOPOLOGIES = ("mesh2d", "torus2d", "ring", "all_to_all", "explicit")
PLACEMENTS = ("greedy_swap", "identity")
SWEEP_OVER = ("parts", "bandwidth")


@dataclasses.dataclass(frozen=True)
class ChipsConfig:
    """`chips:` capacity (variables per chip) and update time: exactly one of
    `time_per_color_step` (seconds a chip needs for one colour step, whatever its load) or
    `time_per_node` (seconds per node update; a chip updates its nodes of a colour one after
    another)."""

    capacity: int = 262144
    time_per_color_step: float | None = optional(float)
    time_per_node: float | None = optional(float)


@dataclasses.dataclass(frozen=True)
class LinksConfig:
    """`links:` topology, its `shape` ([rows, cols] for mesh2d/torus2d), `count` (chips, for
    ring/all_to_all/explicit), `edges` (explicit chip pairs `[a, b]`, or `[a, b, {bandwidth: x,
    latency: y}]` for a link unlike the others), full-duplex `bandwidth` (bits/s per direction),
    `latency` (seconds per hop) and `state_bits` (bits per node state on a link; null: the bytes
    the exchange plans move x 8)."""

    topology: str = "mesh2d"
    shape: list | None = optional(list)
    count: int | None = optional(int)
    edges: list | None = optional(list)
    bandwidth: float = 1.0e11
    latency: float = 1.0e-7
    state_bits: int | None = optional(int)


@dataclasses.dataclass(frozen=True)
class EnergyConfig:
    """`energy:` joules per node update (`per_flip`, charged for every update) and per bit moved
    over one link hop (`per_bit`)."""

    per_flip: float = 1.0e-15
    per_bit: float = 1.0e-12


@dataclasses.dataclass(frozen=True)
class MappingConfig:
    """`mapping:` `parts` (K; null: ceil(nodes / capacity)), partition `method`, `seed`, and
    `placement` of parts onto chips (`greedy_swap` or `identity`)."""

    parts: int | None = optional(int)
    method: str = "metis"
    seed: int = 0
    placement: str = "greedy_swap"


@dataclasses.dataclass(frozen=True)
class RunSection:
    """`run:` the emulated sampling run: `chains`, `warmup`, `samples`, `steps_per_sample`,
    `seed`; `sample: false` maps and projects without sampling."""

    sample: bool = True
    chains: int = 2
    warmup: int = 0
    samples: int = 4
    steps_per_sample: int = 1
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """`sweep:` optional sweep mode: `over` (`parts`: re-partition and re-place for every K in
    `values`; `bandwidth`: re-project the config's mapping for every bandwidth in `values`, bits/s
    per direction, every link scaled together) and the `values`; the curve goes to `sweep.png`
    and `emulation.json`. The `--sweep parts=4,8,16` flag sets the same."""

    over: str | None = optional(str)
    values: list | None = optional(list)


@dataclasses.dataclass(frozen=True)
class OutputSection:
    """`output:` `dir` for emulation.json / report.txt / PNGs; `plots` on or off."""

    dir: str = "out/emulate"
    plots: bool = True


@dataclasses.dataclass(frozen=True)
class EmulateConfig:
    """A chip-system config: the model and the hardware (see the section classes)."""

    model: ModelConfig
    chips: ChipsConfig
    links: LinksConfig
    energy: EnergyConfig
    mapping: MappingConfig
    run: RunSection
    sweep: SweepConfig
    output: OutputSection
    source: str | None = None

    @property
    def n_chips(self) -> int:
        """Number of chips of the system (from the link topology)."""
        if self.links.topology in ("mesh2d", "torus2d"):
            return int(self.links.shape[0]) * int(self.links.shape[1])
        return int(self.links.count)


_SECTIONS = {
    "chips": ChipsConfig, "links": LinksConfig, "energy": EnergyConfig, "mapping": MappingConfig,
    "run": RunSection, "sweep": SweepConfig, "output": OutputSection,
}
_NUMBER = (int, float)


def _yaml_float(text: str, key: str) -> float:
    # PyYAML reads 1.0e10 (no exponent sign, YAML 1.1) as a string; accept it as the number it means
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{key} must be a number, got {text!r}") from None


def _positive(value: Any, key: str, integer: bool = False) -> None:
    kind = int if integer else _NUMBER
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{key} must be a positive {'integer' if integer else 'number'}, got {value!r}")


def parse_emulate_config(raw: Any, *, source: str | pathlib.Path | None = None) -> EmulateConfig:
    """Validate a chip-system config given as the parsed YAML mapping.

    **Arguments:**

    - `raw`: the mapping.
    - `source`: the file it came from (named in errors; relative edge-list paths start there).
    """
    with in_file(source):
        raw = check_sections(raw, "emulate")
        if not isinstance(raw.get("model"), dict):
            raise ConfigError("model: a `distthrml run` model section (mapping) is required")
        model = parse_model(raw["model"], source)
        s = {name: parse_section(cls, raw.get(name), name) for name, cls in _SECTIONS.items()}
        config = EmulateConfig(model=model, **s, source=str(source) if source else None)
        _validate(config)
    return config


def _validate(c: EmulateConfig) -> None:
    _positive(c.chips.capacity, "chips.capacity", integer=True)
    timed = [k for k in ("time_per_color_step", "time_per_node") if getattr(c.chips, k) is not None]
    if len(timed) != 1:
        raise ConfigError(f"chips: give exactly one of time_per_color_step, time_per_node (got {timed or 'none'})")
    _positive(getattr(c.chips, timed[0]), f"chips.{timed[0]}")
    _validate_links(c.links)
    if c.links.latency < 0 or not math.isfinite(c.links.latency):
        raise ConfigError(f"links.latency must be >= 0, got {c.links.latency!r}")
    _positive(c.links.bandwidth, "links.bandwidth")
    if c.links.state_bits is not None:
        _positive(c.links.state_bits, "links.state_bits", integer=True)
    for key in ("per_flip", "per_bit"):
        value = getattr(c.energy, key)
        if value < 0 or not math.isfinite(value):
            raise ConfigError(f"energy.{key} must be >= 0, got {value!r}")
    if c.mapping.method not in ("metis", "random", "contiguous"):
        raise ConfigError(f"mapping.method must be one of metis, random, contiguous, got {c.mapping.method!r}")
    if c.mapping.placement not in PLACEMENTS:
        raise ConfigError(f"mapping.placement must be one of {PLACEMENTS}, got {c.mapping.placement!r}")
    if c.mapping.parts is not None:
        _positive(c.mapping.parts, "mapping.parts", integer=True)
        if c.mapping.parts > c.n_chips:
            raise ConfigError(f"mapping.parts={c.mapping.parts} exceeds the {c.n_chips} chips of links")
    for key in ("chains", "samples", "steps_per_sample"):
        _positive(getattr(c.run, key), f"run.{key}", integer=True)
    if c.run.warmup < 0:
        raise ConfigError(f"run.warmup must be >= 0, got {c.run.warmup}")
    size = graph_size(c.model)
    if size is not None and c.run.sample:
        check_sampling_fits(*size, chains=c.run.chains, samples=c.run.samples, key="run.chains")
    if c.sweep.over is not None:
        if c.sweep.over not in SWEEP_OVER:
            raise ConfigError(f"sweep.over must be one of {SWEEP_OVER}, got {c.sweep.over!r}")
        if not c.sweep.values:
            raise ConfigError("sweep.values: a non-empty list is required with sweep.over")
        values = [_yaml_float(v, "sweep.values") if isinstance(v, str) else v for v in c.sweep.values]
        object.__setattr__(c.sweep, "values", values)
        for v in values:
            _positive(v, "sweep.values entries", integer=c.sweep.over == "parts")


def _validate_links(links: LinksConfig) -> None:
    if links.topology not in TOPOLOGIES:
        raise ConfigError(f"links.topology must be one of {TOPOLOGIES}, got {links.topology!r}")
    if links.topology in ("mesh2d", "torus2d"):
        shape = links.shape
        if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in shape)):
            raise ConfigError(f"links.shape must be [rows, cols] of positive integers for {links.topology}, got {shape!r}")
        if links.count is not None and links.count != shape[0] * shape[1]:
            raise ConfigError(f"links.count={links.count} disagrees with links.shape {shape}")
        if links.edges is not None:
            raise ConfigError(f"links.edges is only read for the explicit topology, not {links.topology}")
        return
    if links.shape is not None:
        raise ConfigError(f"links.shape is only read for mesh2d/torus2d, not {links.topology}")
    _positive(links.count, "links.count", integer=True)
    if links.topology != "explicit":
        if links.edges is not None:
            raise ConfigError(f"links.edges is only read for the explicit topology, not {links.topology}")
        return
    if not isinstance(links.edges, list) or not links.edges:
        raise ConfigError("links.edges must be a non-empty list of [chip, chip] pairs for the explicit topology")
    seen = set()
    for i, e in enumerate(links.edges):  # loops over chip links
        ok = isinstance(e, list) and len(e) in (2, 3) and all(isinstance(x, int) and not isinstance(x, bool) for x in e[:2])
        if not ok or not all(0 <= x < links.count for x in e[:2]) or e[0] == e[1]:
            raise ConfigError(f"links.edges[{i}] = {e!r} must be two different chips in [0, {links.count}), "
                               "optionally followed by {bandwidth: ..., latency: ...}")
        if frozenset(e[:2]) in seen:
            raise ConfigError(f"links.edges[{i}] = {e!r} repeats the link {e[0]}-{e[1]}")
        seen.add(frozenset(e[:2]))
        if len(e) == 3:
            extra = e[2]
            if not isinstance(extra, dict) or not extra or set(extra) - {"bandwidth", "latency"}:
                raise ConfigError(f"links.edges[{i}]: the third entry must be a mapping of bandwidth and/or latency, "
                                   f"got {extra!r}")
            for key, value in extra.items():
                value = _yaml_float(value, f"links.edges[{i}].{key}") if isinstance(value, str) else value
                extra[key] = value
                _positive(value, f"links.edges[{i}].{key}")


def load_emulate_config(path: str | pathlib.Path) -> EmulateConfig:
    """Read and validate a chip-system config file.

    **Arguments:**

    - `path`: a YAML file.
    """
    with in_file(path):
        return parse_emulate_config(read_yaml(path), source=pathlib.Path(path))


def with_overrides(config: EmulateConfig, **sections: dict) -> EmulateConfig:
    """A copy of `config` with some section fields replaced, re-validated.

    **Arguments:**

    - `sections`: section name -> {field: value}, e.g. `links={"bandwidth": 5e10}`.
    """
    changed = {name: dataclasses.replace(getattr(config, name), **fields) for name, fields in sections.items()}
    out = dataclasses.replace(config, **changed)
    with in_file(config.source):
        _validate(out)
    return out
