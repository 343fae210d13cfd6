"""The `distthrml run` configuration: schema, YAML loading and validation (pure Python, no JAX).

Everything that can be checked without building the model is checked here, so that a bad
config fails in milliseconds, naming the key, before JAX starts or anything is compiled.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

from ..config_file import (
    ConfigError,
    check_sections,
    check_value,
    in_file,
    optional,
    parse_section,
    read_yaml,
    suggest,
)
from ..resources import check_sampling_fits
from ..workloads.schema import ModelConfig, graph_size, model_keys, parse_model

PARTITION_METHODS = ("metis", "random", "contiguous")
RNG_CHOICES = ("auto", "per_node", "multispin", "thrml")  # cluster.run.stream.STREAMS (no JAX here)


MAX_DEVICES = 1024  # XLA segfaults creating ~1e5 host devices


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """`sampling:` chains, schedule (`warmup` sweeps, then `samples` observations one every
    `steps_per_sample` sweeps), the run's seed and random stream (`rng`: auto, per_node,
    multispin or thrml; see `cluster.run.stream`)."""

    chains: int = 8
    warmup: int = 200
    samples: int = 50
    steps_per_sample: int = 4
    seed: int = 0
    rng: str = "auto"


@dataclasses.dataclass(frozen=True)
class ShardingConfig:
    """`sharding:` graph parts (default: one per device), how they are cut, the mesh's chains axis."""

    parts: int | None = optional(int)
    method: str = "metis"
    seed: int = 0
    chains_axis: int = 1


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    """`output:` where and what to write; `states` streams every observed state to `states.zarr`;
    `checkpoint_every` (sweeps) checkpoints the run in `dir` so that rerunning it resumes (as
    `--workdir DIR` does, which otherwise checkpoints as often as costs at most 5% of the
    sampling time)."""

    dir: str = "out/run"
    plots: bool = True
    samples: bool = True
    moments: bool = False
    states: bool = False
    snapshots: int = 4
    progress: bool = True
    checkpoint_every: int | None = optional(int)


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


_SECTIONS = {"sampling": SamplingConfig, "sharding": ShardingConfig, "output": OutputConfig}


def parse_run_config(raw: Any, *, source: str | pathlib.Path | None = None) -> RunConfig:
    """Validate a config given as a dict (the parsed YAML); errors name `source`.

    **Arguments:**

    - `raw`: the mapping.
    - `source`: the file it came from; relative `model.path`s are relative to its folder.
    """
    with in_file(source):
        raw = check_sections(raw, "run")
        model = parse_model(raw.get("model"), source)
        sections = {name: parse_section(cls, raw.get(name), name) for name, cls in _SECTIONS.items()}
        devices = raw.get("devices", "auto")
        if devices != "auto":
            devices = check_value(devices, int, "devices", True)
        config = RunConfig(model, **sections, devices=devices, source=str(source) if source else None)
        _validate_rest(config)
    return config


def load_run_config(path: str | pathlib.Path) -> RunConfig:
    """Read and validate a run config file.

    **Arguments:**

    - `path`: a YAML file.
    """
    with in_file(path):
        return parse_run_config(read_yaml(path), source=pathlib.Path(path))


def as_raw(config: RunConfig) -> dict:
    """`config` as the mapping `parse_run_config` reads (to re-validate it after overrides).

    **Arguments:**

    - `config`: a validated config.
    """
    raw = {name: dataclasses.asdict(getattr(config, name)) for name in _SECTIONS}
    # keys that do not apply to the model's kind would be rejected on re-parsing
    raw["model"] = model_keys(config.model)
    raw["devices"] = config.devices
    return raw


def _validate_rest(config: RunConfig) -> None:
    s, sh, out = config.sampling, config.sharding, config.output
    if min(s.chains, s.samples, s.steps_per_sample) < 1 or s.warmup < 0:
        raise ConfigError(
            f"sampling.chains, samples and steps_per_sample must be >= 1 and warmup >= 0, got chains={s.chains}, "
            f"samples={s.samples}, steps_per_sample={s.steps_per_sample}, warmup={s.warmup}"
        )
    if s.rng not in RNG_CHOICES:
        raise ConfigError(f"sampling.rng must be one of {list(RNG_CHOICES)}, got {s.rng!r}{suggest(s.rng, list(RNG_CHOICES))}")
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
        if config.devices > MAX_DEVICES:
            raise ConfigError(f"devices must be <= {MAX_DEVICES} (emulated CPU devices), got {config.devices}")
        check_device_count(config, config.devices)
    if out.snapshots < 1:
        raise ConfigError(f"output.snapshots must be >= 1, got {out.snapshots}")
    if out.checkpoint_every is not None and out.checkpoint_every < 1:
        raise ConfigError(f"output.checkpoint_every must be >= 1 sweeps, got {out.checkpoint_every}")
    size = graph_size(config.model)
    if size is not None:
        check_sampling_fits(*size, chains=s.chains, samples=s.samples, key="sampling.chains")
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
