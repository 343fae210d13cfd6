"""The sampling-job configuration: schema, YAML loading and validation (pure Python, no JAX).

Everything that can be checked without building the model is checked here, so that a bad
config fails in milliseconds, naming the key, before JAX starts or anything is compiled.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

from ..config_file import (
    check_sections,
    check_value,
    optional,
    parse_section,
    read_yaml,
    suggest,
)
from ..errors import DistThrmlError

MODEL_KINDS = ("ising2d", "potts2d", "pegasus", "random_regular", "edge_list")
PARTITION_METHODS = ("metis", "random", "contiguous")

# keys of `model` that only some kinds read; a key given for another kind is an error
_KIND_KEYS = {
    "rows": ("ising2d", "potts2d"),
    "cols": ("ising2d", "potts2d"),
    "categories": ("potts2d",),
    "m": ("pegasus",),
    "n": ("random_regular",),
    "degree": ("random_regular",),
    "seed": ("random_regular",),
    "path": ("edge_list",),
    "weights": ("edge_list",),
}


class ConfigError(DistThrmlError):
    """A run configuration is invalid."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """`model:` which graph, which energy, which temperature (see README, "The main job")."""

    kind: str = "ising2d"
    rows: int = 128
    cols: int = 128
    m: int = 6
    n: int = 1000
    degree: int = 3
    seed: int = 0
    path: str | None = optional(str)
    weights: int | None = optional(int)
    beta: float = 0.3
    coupling: float = 1.0
    field: float = 0.0
    categories: int = 3


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """`sampling:` chains, schedule (`warmup` sweeps, then `samples` observations one every
    `steps_per_sample` sweeps) and the run's seed."""

    chains: int = 8
    warmup: int = 200
    samples: int = 50
    steps_per_sample: int = 4
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class ShardingConfig:
    """`sharding:` graph parts (default: one per device), how they are cut, the mesh's chains axis."""

    parts: int | None = optional(int)
    method: str = "metis"
    seed: int = 0
    chains_axis: int = 1


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    """`output:` where and what to write."""

    dir: str = "out/run"
    plots: bool = True
    samples: bool = True
    moments: bool = False
    snapshots: int = 4
    progress: bool = True


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A whole run. `devices`: `auto` (the default: on CPU one emulated device per core this
    process may use, else JAX's accelerators), a number of CPU devices to emulate, or null (JAX's
    own devices as they are)."""

    model: ModelConfig = ModelConfig()
    sampling: SamplingConfig = SamplingConfig()
    sharding: ShardingConfig = ShardingConfig()
    output: OutputConfig = OutputConfig()
    devices: int | str | None = "auto"
    source: str | None = None  # the file the config came from (not a YAML key)


_SECTIONS = {"model": ModelConfig, "sampling": SamplingConfig, "sharding": ShardingConfig, "output": OutputConfig}
_TOP_LEVEL = sorted([*_SECTIONS, "devices"])


def parse_run_config(raw: Any, *, source: str | pathlib.Path | None = None) -> RunConfig:
    """Validate a config given as a dict (the parsed YAML).

    **Arguments:**

    - `raw`: the mapping.
    - `source`: the file it came from; relative `model.path`s are relative to its folder.
    """
    where = f"{source}: " if source else ""
    raw = check_sections(raw, _TOP_LEVEL, ConfigError, where)
    sections = {name: parse_section(cls, raw.get(name), name, ConfigError) for name, cls in _SECTIONS.items()}
    devices = raw.get("devices", "auto")
    if devices != "auto":
        devices = check_value(devices, int, "devices", True, ConfigError)
    config = RunConfig(**sections, devices=devices, source=str(source) if source else None)
    _validate_model(config.model, raw.get("model") or {}, source)
    if config.model.kind == "edge_list" and not edge_list_path(config).is_file():
        raise ConfigError(f"model.path: edge-list file not found: {edge_list_path(config)}")
    _validate_rest(config)
    return config


def load_run_config(path: str | pathlib.Path) -> RunConfig:
    """Read and validate a run config file.

    **Arguments:**

    - `path`: a YAML file.
    """
    return parse_run_config(read_yaml(path, ConfigError), source=pathlib.Path(path))


def as_raw(config: RunConfig) -> dict:
    """`config` as the mapping `parse_run_config` reads (to re-validate it after overrides).

    **Arguments:**

    - `config`: a validated config.
    """
    raw = {name: dataclasses.asdict(getattr(config, name)) for name in _SECTIONS}
    kind = config.model.kind
    # keys that do not apply to the model's kind would be rejected on re-parsing
    raw["model"] = {k: v for k, v in raw["model"].items() if kind in _KIND_KEYS.get(k, (kind,))}
    raw["devices"] = config.devices
    return raw


def edge_list_path(config: RunConfig) -> pathlib.Path:
    """`model.path`, relative paths taken from the config file's folder (or the working directory)."""
    path = pathlib.Path(config.model.path or "")
    if not path.is_absolute() and config.source:
        path = pathlib.Path(config.source).parent / path
    return path


def _validate_model(m: ModelConfig, raw: dict, source) -> None:
    if m.kind not in MODEL_KINDS:
        raise ConfigError(f"model.kind must be one of {list(MODEL_KINDS)}, got {m.kind!r}{suggest(m.kind, list(MODEL_KINDS))}")
    for key in raw:
        kinds = _KIND_KEYS.get(key)
        if kinds and m.kind not in kinds:
            raise ConfigError(f"'model.{key}' does not apply to model.kind '{m.kind}' (it is read by {', '.join(kinds)})")
    if m.kind in ("ising2d", "potts2d") and (m.rows < 2 or m.cols < 2 or m.rows % 2 or m.cols % 2):
        raise ConfigError(
            f"model.rows and model.cols must be even and >= 2 (checkerboard coloring), got {m.rows}x{m.cols}"
        )
    if m.kind == "potts2d":
        if not 2 <= m.categories <= 255:
            raise ConfigError(f"model.categories must be in [2, 255] (uint8 states), got {m.categories}")
        if m.field != 0.0:
            raise ConfigError(f"model.field is not supported for potts2d (got {m.field}); leave it 0")
    if m.kind == "pegasus" and m.m < 2:
        raise ConfigError(f"model.m (the Pegasus size) must be >= 2, got {m.m}")
    if m.kind == "random_regular" and (m.n < 2 or not 1 <= m.degree < m.n or (m.n * m.degree) % 2):
        raise ConfigError(
            f"model.n and model.degree must satisfy 1 <= degree < n and n * degree even, got n={m.n}, degree={m.degree}"
        )
    if m.kind == "edge_list":
        if not m.path:
            raise ConfigError("model.path (the edge-list file) is required for model.kind 'edge_list'")
        if m.weights is not None and m.weights < 2:
            raise ConfigError(f"model.weights is the 0-based column of the edge weights, >= 2 (columns 0 and 1 are the nodes), got {m.weights}")


def _validate_rest(config: RunConfig) -> None:
    s, sh, out = config.sampling, config.sharding, config.output
    if min(s.chains, s.samples, s.steps_per_sample) < 1 or s.warmup < 0:
        raise ConfigError(
            f"sampling.chains, samples and steps_per_sample must be >= 1 and warmup >= 0, got chains={s.chains}, "
            f"samples={s.samples}, steps_per_sample={s.steps_per_sample}, warmup={s.warmup}"
        )
    if sh.method not in PARTITION_METHODS:
        raise ConfigError(f"sharding.method must be one of {list(PARTITION_METHODS)}, got {sh.method!r}{suggest(sh.method, list(PARTITION_METHODS))}")
    if sh.parts is not None and sh.parts < 1:
        raise ConfigError(f"sharding.parts must be >= 1, got {sh.parts}")
    if sh.chains_axis < 1:
        raise ConfigError(f"sharding.chains_axis must be >= 1, got {sh.chains_axis}")
    if s.chains % sh.chains_axis:
        raise ConfigError(f"sampling.chains ({s.chains}) must be divisible by sharding.chains_axis ({sh.chains_axis})")
    if isinstance(config.devices, int):
        if config.devices < 1:
            raise ConfigError(f"devices must be >= 1, got {config.devices}")
        check_device_count(config, config.devices)
    if out.snapshots < 1:
        raise ConfigError(f"output.snapshots must be >= 1, got {out.snapshots}")
    target = pathlib.Path(out.dir)
    if target.exists() and not target.is_dir():
        raise ConfigError(f"output.dir {str(target)!r} exists and is not a directory")


def check_device_count(config: RunConfig, available: int) -> None:
    """Raise if the mesh (`chains_axis` x `parts`) needs more devices than `available`.

    **Arguments:**

    - `config`: the run config.
    - `available`: the number of devices the run may use.
    """
    parts = resolve_parts(config, available)
    need = parts * config.sharding.chains_axis
    if need > available:
        raise ConfigError(
            f"sharding.parts ({parts}) x sharding.chains_axis ({config.sharding.chains_axis}) = {need} devices, but only "
            f"{available} are available (set 'devices: {need}' or pass --devices {need} to emulate CPU devices)"
        )


# node updates per device and sweep below which a shard's colour steps are too short to pay for
# their exchange on emulated CPU devices. Measured 2 parts against unsharded on 2 cores
# (`benchmarks/sharded.py --case torus:S:C --parts 2`): 64x64 x 32 chains (131k updates) 0.57x,
# 128x128 x 8 chains (131k) 1.62x, 128x128 x 32 (524k) 1.60x; 2^17 per device keeps every
# default split on the winning side.
MIN_UPDATES_PER_DEVICE = 2**17


def resolve_parts(config: RunConfig, available: int, updates_per_sweep: int | None = None) -> int:
    """`sharding.parts`, by default every device not taken by the chains axis; given
    `updates_per_sweep` (`devices: auto`), no more parts than keep `MIN_UPDATES_PER_DEVICE`
    updates per device and sweep.

    **Arguments:**

    - `config`: the run config.
    - `available`: the number of devices the run may use.
    - `updates_per_sweep`: nodes x chains, to cap the default by the work per device.
    """
    if config.sharding.parts:
        return config.sharding.parts
    parts = max(1, available // config.sharding.chains_axis)
    if updates_per_sweep is not None:
        parts = min(parts, max(1, updates_per_sweep // (MIN_UPDATES_PER_DEVICE * config.sharding.chains_axis)))
    return parts
