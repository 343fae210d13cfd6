"""The training configuration: YAML sections mapped onto frozen dataclasses, strictly checked.

Unknown or mistyped keys are errors that name the key (with the closest known key), so a typo
never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib

from ..config_file import ConfigError, check_sections, in_file, parse_section, read_yaml


@dataclasses.dataclass(frozen=True)
class DataConfig:
    source: str = "digits"  # "digits" (scikit-learn's 8x8 digits) or "npz" (a user file)
    path: str = ""  # npz file with an array "data" [N, rows, cols] or [N, rows*cols] (+ "shape")
    threshold: float = 0.5  # binarise at this fraction of the maximum value
    holdout_fraction: float = 0.2
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    graph: str = "local"  # "local": visible grid + hidden grid with local receptive fields; "npz": user edges
    graph_path: str = ""  # npz with "edges" [E, 2] over visible (0..V-1) then hidden (V..V+H-1), "n_hidden"
    hidden_rows: int = 6
    hidden_cols: int = 6
    window: float = 1.5  # a hidden unit sees the visible pixels within this (Chebyshev) distance
    visible_edges: bool = True  # nearest-neighbour couplings between visible pixels
    beta: float = 1.0
    init_scale: float = 0.01


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    negative_chains: int = 32  # persistent chains of the negative phase
    negative_samples: int = 4
    negative_steps_per_sample: int = 2
    positive_samples: int = 2
    positive_steps_per_sample: int = 1


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    optimizer: str = "adam"  # "adam" or "sgd"
    learning_rate: float = 0.03


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 200
    batch_size: int = 64
    seed: int = 0
    checkpoint_every: int = 50
    keep_last: int = 3
    eval_every: int = 25


@dataclasses.dataclass(frozen=True)
class ShardingConfig:
    parts: int = 1  # graph parts (devices); 1 samples unsharded


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    plots: bool = True
    tensorboard: bool = True
    progress: bool = True
    autocorrelation_sweeps: int = 200


@dataclasses.dataclass(frozen=True)
class Config:
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    sampling: SamplingConfig = SamplingConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    sharding: ShardingConfig = ShardingConfig()
    output: OutputConfig = OutputConfig()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def identity(self) -> dict:
        """The keys that define a run: a workdir's checkpoints must match them to be resumed.
        `train.steps` (a run may be extended), checkpoint cadence and output settings may change."""
        d = self.to_dict()
        d.pop("output")
        for k in ("steps", "checkpoint_every", "keep_last", "eval_every"):
            d["train"].pop(k)
        return d

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:16]


SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}
_CLASSES = {
    "data": DataConfig, "model": ModelConfig, "sampling": SamplingConfig, "optim": OptimConfig,
    "train": TrainConfig, "sharding": ShardingConfig, "output": OutputConfig,
}


def config_from_dict(raw: dict) -> Config:
    """Validate a config mapping.

    **Arguments:**

    - `raw`: the parsed YAML (sections of keys).
    """
    raw = _boltzmann_only(check_sections(raw, "train"))
    config = Config(**{name: parse_section(cls, raw.get(name), name) for name, cls in _CLASSES.items()})
    _check(config)
    return config


KINDS = ("boltzmann", "dtm")


def _boltzmann_only(raw: dict) -> dict:
    """`raw` without `model.kind: boltzmann` (the default kind); DTM configs and their sections
    are named, not silently ignored."""
    model = raw.get("model")
    if isinstance(model, dict) and "kind" in model:
        if model["kind"] not in KINDS:
            raise ConfigError(f"model.kind must be one of {list(KINDS)}, got {model['kind']!r}")
        if model["kind"] == "dtm":
            raise ConfigError("model.kind: dtm configs are read by cluster.dtm.config.load_dtm_config")
        raw = dict(raw, model={k: v for k, v in model.items() if k != "kind"})
    extra = sorted(set(raw) - set(_CLASSES))
    if extra:
        raise ConfigError(f"section(s) {extra} apply to model.kind: dtm only")
    return raw


MAX_LEARNING_RATE = 10.0  # beyond this a step overshoots any sensible PLL
MAX_BETA = 1e3  # larger inverse temperatures overflow float32 energies to NaN


def _check(c: Config) -> None:
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise ConfigError(msg)

    need(c.data.source in ("digits", "npz"), f"data.source must be 'digits' or 'npz', got {c.data.source!r}")
    need(c.data.source != "npz" or bool(c.data.path), "data.path is required when data.source is 'npz'")
    need(0 < c.data.holdout_fraction < 1, f"data.holdout_fraction must be in (0, 1), got {c.data.holdout_fraction}")
    need(c.model.graph in ("local", "npz"), f"model.graph must be 'local' or 'npz', got {c.model.graph!r}")
    need(c.model.graph != "npz" or bool(c.model.graph_path), "model.graph_path is required when model.graph is 'npz'")
    need(c.model.hidden_rows >= 1 and c.model.hidden_cols >= 1, "model.hidden_rows and model.hidden_cols must be >= 1")
    need(c.optim.optimizer in ("adam", "sgd"), f"optim.optimizer must be 'adam' or 'sgd', got {c.optim.optimizer!r}")
    need(0 < c.optim.learning_rate <= MAX_LEARNING_RATE, f"optim.learning_rate must be in (0, {MAX_LEARNING_RATE:g}], got {c.optim.learning_rate}")
    need(0 < c.model.beta <= MAX_BETA, f"model.beta must be in (0, {MAX_BETA:g}], got {c.model.beta}")
    need(0 < c.data.threshold < 1, f"data.threshold must be in (0, 1), got {c.data.threshold}")
    for name in ("negative_chains", "negative_samples", "negative_steps_per_sample", "positive_samples", "positive_steps_per_sample"):
        need(getattr(c.sampling, name) >= 1, f"sampling.{name} must be >= 1")
    for name in ("steps", "batch_size", "checkpoint_every", "keep_last", "eval_every"):
        need(getattr(c.train, name) >= 1, f"train.{name} must be >= 1")
    need(c.sharding.parts >= 1, "sharding.parts must be >= 1")
    need(c.output.autocorrelation_sweeps >= 4, "output.autocorrelation_sweeps must be >= 4")


def load_config(path: str | pathlib.Path) -> Config:
    """Read and validate a training config file.

    **Arguments:**

    - `path`: a YAML file (see `configs/train_digits.yaml`).
    """
    with in_file(path):
        return config_from_dict(read_yaml(path))
