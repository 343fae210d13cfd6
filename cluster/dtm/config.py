"""The DTM training configuration (`model.kind: dtm`): YAML sections mapped onto frozen
dataclasses and checked strictly, every error one line naming the key, before JAX starts."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib

from ..config_file import ConfigError, check_sections, in_file, optional, parse_section, read_yaml

KIND = "dtm"
SOURCES = ("digits", "digits16", "idx", "npz")
# offsets (dy, dx) of the built-in neighbourhoods: each offset and its three rotations by 90
# degrees join a node to 4 neighbours; every offset has an odd dy + dx, so the checkerboard
# colouring stays a proper 2-colouring (two blocks per sweep) whatever the degree
OFFSETS = ((0, 1), (4, 1), (9, 10), (2, 7), (1, 2), (3, 6))
DEGREES = tuple(4 * (i + 1) for i in range(len(OFFSETS)))


@dataclasses.dataclass(frozen=True)
class DataConfig:
    source: str = "digits"  # digits (8x8) | digits16 (upsampled 16x16) | idx | npz
    path: str = ""  # idx: image file (.idx / .gz); npz: a file with "data" [N, rows, cols] (+ "labels")
    labels_path: str = ""  # idx: label file (optional: the FID classifier's targets)
    threshold: float = 0.5  # binarise at this fraction of the maximum value
    holdout_fraction: float = 0.2
    limit: int = 0  # use at most this many examples (0: all)
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    kind: str = KIND
    grid_side: int = 16  # the step graph is a side x side grid
    degree: int = 8  # one of DEGREES: the first degree/4 offsets of OFFSETS
    offsets: list | None = optional(list)  # [[dy, dx], ...] instead of `degree` (dy + dx odd)
    placement: str = "spread"  # spread: pixels on an even lattice of the grid | random
    placement_seed: int = 0
    beta: float = 1.0
    init_scale: float = 0.01
    learn_input_coupling: bool = True  # else the x_t -> x_{t-1} couplings stay at the forward process's


@dataclasses.dataclass(frozen=True)
class DiffusionConfig:
    steps: int = 4  # T: diffusion steps, one conditional Boltzmann machine each
    schedule: str = "log"  # linear | log: the times t_1..t_T in (0, 1]
    rate: float = 3.0  # pixel flip rate r: q(t) = (1 - exp(-2 r t)) / 2
    t_min: float = 0.05  # log schedule: t_1 (t_k geometric from t_min to 1)


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    positive_warmup: int = 2  # sweeps of the latents (outputs and inputs clamped) before observing
    positive_samples: int = 4
    positive_steps_per_sample: int = 1
    negative_warmup: int = 8  # sweeps of outputs and latents (inputs clamped) before observing
    negative_samples: int = 4
    negative_steps_per_sample: int = 2


@dataclasses.dataclass(frozen=True)
class GenerationConfig:
    samples: int = 500  # generated images per evaluation
    sweeps: int = 50  # Gibbs sweeps per diffusion step
    anneal: str = "last"  # which steps anneal: last (x_1 -> x_0) | all
    beta_start: float = 1.0  # annealed steps: the first stage's beta (times model.beta)
    beta_end: float = 1.0  # the last stage's (above 1: colder than the model, cleaner images)
    anneal_stages: int = 1  # stages of equal sweeps, beta linear from beta_start to beta_end
    strip_chains: int = 8  # chains shown in the denoising strip
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class PenaltyConfig:
    enabled: bool = True
    target: float = 0.1  # autocorrelation of the outputs at `lag` sweeps the controller aims below
    initial: float = 0.01  # penalty strength lambda at the start
    minimum: float = 0.001
    maximum: float = 1.0
    increase: float = 1.2  # lambda *= increase when the (smoothed) autocorrelation is above target
    decrease: float = 0.9  # lambda *= decrease when it is below
    smoothing: float = 0.7  # the controller reads a moving average of the measurements (0: the latest)
    lag: int = 20  # sweeps between the two states compared
    warmup: int = 20  # sweeps from noise before the first state
    conditions: int = 4  # inputs x_t the measurement conditions on
    replicas: int = 16  # chains per input
    measure_every: int = 10  # iterations between measurements


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    optimizer: str = "adam"  # adam | sgd
    learning_rate: float = 0.005
    ema: float = 0.99  # generation uses this exponential moving average of the parameters (0: the last ones)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    batch_size: int = 64  # also the number of persistent chains of each phase
    seed: int = 0
    checkpoint_every: int = 1  # epochs
    keep_last: int = 2


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    every: int = 5  # epochs between evaluations (and the last epoch); 0: only at the end
    enabled: bool = True
    classifier_hidden: int = 64  # hidden units of the FID feature classifier
    classifier_seed: int = 0


@dataclasses.dataclass(frozen=True)
class ShardingConfig:
    parts: int = 1  # graph parts (devices) each step graph is sampled on


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    plots: bool = True
    tensorboard: bool = True
    progress: bool = True


@dataclasses.dataclass(frozen=True)
class DTMConfig:
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    diffusion: DiffusionConfig = DiffusionConfig()
    sampling: SamplingConfig = SamplingConfig()
    generation: GenerationConfig = GenerationConfig()
    penalty: PenaltyConfig = PenaltyConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    sharding: ShardingConfig = ShardingConfig()
    output: OutputConfig = OutputConfig()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def identity(self) -> dict:
        """The keys a step's checkpoints must match to be resumed: those that change training.
        More epochs, another cadence, generation, evaluation, sharding and output settings are
        the same run (sharded sampling gives the unsharded bits)."""
        d = self.to_dict()
        for section in ("generation", "evaluation", "sharding", "output"):
            d.pop(section)
        for key in ("epochs", "checkpoint_every", "keep_last"):
            d["train"].pop(key)
        return d

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:16]

    def offsets(self) -> list[tuple[int, int]]:
        """The neighbourhood offsets of the step graph."""
        if self.model.offsets is not None:
            return [tuple(int(v) for v in o) for o in self.model.offsets]
        return list(OFFSETS[: self.model.degree // 4])


_CLASSES = {
    "data": DataConfig, "model": ModelConfig, "diffusion": DiffusionConfig, "sampling": SamplingConfig,
    "generation": GenerationConfig, "penalty": PenaltyConfig, "optim": OptimConfig, "train": TrainConfig,
    "evaluation": EvaluationConfig, "sharding": ShardingConfig, "output": OutputConfig,
}
SECTIONS = tuple(_CLASSES)

MAX_LEARNING_RATE = 10.0
MAX_BETA = 1e3
MAX_SIDE = 8192  # 67M grid nodes: beyond any one machine's memory for the tables
MAX_STEPS = 1000
MAX_PARTS = 1024


def is_dtm(raw) -> bool:
    """Whether a parsed config asks for a DTM (`model.kind: dtm`)."""
    return isinstance(raw, dict) and isinstance(raw.get("model"), dict) and raw["model"].get("kind") == KIND


def config_from_dict(raw: dict, base: pathlib.Path | None = None) -> DTMConfig:
    """Validate a DTM config mapping.

    **Arguments:**

    - `raw`: the parsed YAML (sections of keys).
    - `base`: the config file's folder; relative data paths are resolved against it.
    """
    raw = check_sections(raw, "train")
    config = DTMConfig(**{name: parse_section(cls, raw.get(name), name) for name, cls in _CLASSES.items()})
    _check(config)
    if base is not None:
        config = _resolve_paths(config, base)
    return config


def load_dtm_config(path: str | pathlib.Path) -> DTMConfig:
    """Read and validate a DTM config file (see `configs/dtm_digits.yaml`).

    **Arguments:**

    - `path`: the YAML file.
    """
    with in_file(path):
        return config_from_dict(read_yaml(path), pathlib.Path(path).absolute().parent)


def _resolve_paths(c: DTMConfig, base: pathlib.Path) -> DTMConfig:
    def resolve(p: str) -> str:
        return str(base / p) if p and not pathlib.Path(p).is_absolute() else p

    data = dataclasses.replace(c.data, path=resolve(c.data.path), labels_path=resolve(c.data.labels_path))
    return dataclasses.replace(c, data=data)


def _need(ok: bool, msg: str) -> None:
    if not ok:
        raise ConfigError(msg)


def _check(c: DTMConfig) -> None:
    d, m, f, s, g, p, o, t, e = (c.data, c.model, c.diffusion, c.sampling, c.generation, c.penalty, c.optim,
                                 c.train, c.evaluation)
    _need(m.kind == KIND, f"model.kind must be '{KIND}' here, got {m.kind!r}")
    _need(d.source in SOURCES, f"data.source must be one of {list(SOURCES)}, got {d.source!r}")
    _need(d.source not in ("idx", "npz") or bool(d.path), f"data.path is required when data.source is {d.source!r}")
    _need(0 < d.threshold < 1, f"data.threshold must be in (0, 1), got {d.threshold}")
    _need(0 < d.holdout_fraction < 1, f"data.holdout_fraction must be in (0, 1), got {d.holdout_fraction}")
    _need(d.limit >= 0, f"data.limit must be >= 0 (0: all examples), got {d.limit}")
    _need(2 <= m.grid_side <= MAX_SIDE, f"model.grid_side must be in [2, {MAX_SIDE}], got {m.grid_side}")
    if m.offsets is None:
        _need(m.degree in DEGREES, f"model.degree must be one of {list(DEGREES)} (or give model.offsets), got {m.degree}")
    else:
        _check_offsets(m.offsets, m.grid_side)
    _need(m.placement in ("spread", "random"), f"model.placement must be 'spread' or 'random', got {m.placement!r}")
    _need(0 < m.beta <= MAX_BETA, f"model.beta must be in (0, {MAX_BETA:g}], got {m.beta}")
    _need(0 <= m.init_scale <= 10, f"model.init_scale must be in [0, 10], got {m.init_scale}")
    _need(1 <= f.steps <= MAX_STEPS, f"diffusion.steps must be in [1, {MAX_STEPS}], got {f.steps}")
    _need(f.schedule in ("linear", "log"), f"diffusion.schedule must be 'linear' or 'log', got {f.schedule!r}")
    _need(0 < f.rate <= 100, f"diffusion.rate must be in (0, 100], got {f.rate}")
    _need(0 < f.t_min < 1, f"diffusion.t_min must be in (0, 1), got {f.t_min}")
    for name in ("positive_samples", "positive_steps_per_sample", "negative_samples", "negative_steps_per_sample"):
        _need(getattr(s, name) >= 1, f"sampling.{name} must be >= 1, got {getattr(s, name)}")
    for name in ("positive_warmup", "negative_warmup"):
        _need(getattr(s, name) >= 0, f"sampling.{name} must be >= 0, got {getattr(s, name)}")
    for name in ("samples", "sweeps", "anneal_stages"):
        _need(getattr(g, name) >= 1, f"generation.{name} must be >= 1, got {getattr(g, name)}")
    _need(g.samples >= 2, f"generation.samples must be >= 2 (the FID needs a covariance), got {g.samples}")
    _need(g.anneal_stages <= g.sweeps, f"generation.anneal_stages ({g.anneal_stages}) must not exceed generation.sweeps ({g.sweeps})")
    _need(g.anneal in ("last", "all"), f"generation.anneal must be 'last' or 'all', got {g.anneal!r}")
    _need(g.strip_chains >= 0, f"generation.strip_chains must be >= 0, got {g.strip_chains}")
    for name in ("beta_start", "beta_end"):
        _need(0 < getattr(g, name) <= MAX_BETA, f"generation.{name} must be in (0, {MAX_BETA:g}], got {getattr(g, name)}")
    _need(0 < p.target < 1, f"penalty.target must be in (0, 1), got {p.target}")
    _need(0 < p.minimum <= p.maximum <= 1e3, f"penalty.minimum and penalty.maximum must satisfy 0 < minimum <= maximum <= 1000, got {p.minimum}, {p.maximum}")
    _need(p.minimum <= p.initial <= p.maximum, f"penalty.initial must be in [penalty.minimum, penalty.maximum], got {p.initial}")
    _need(0 <= p.smoothing < 1, f"penalty.smoothing must be in [0, 1), got {p.smoothing}")
    _need(p.increase > 1, f"penalty.increase must be > 1, got {p.increase}")
    _need(0 < p.decrease < 1, f"penalty.decrease must be in (0, 1), got {p.decrease}")
    for name in ("lag", "conditions", "measure_every"):
        _need(getattr(p, name) >= 1, f"penalty.{name} must be >= 1, got {getattr(p, name)}")
    _need(p.replicas >= 2, f"penalty.replicas must be >= 2 (a correlation across chains), got {p.replicas}")
    _need(not p.enabled or s.negative_samples >= 2,
          f"penalty.enabled needs sampling.negative_samples >= 2 (a correlation per chain), got {s.negative_samples}")
    _need(p.warmup >= 0, f"penalty.warmup must be >= 0, got {p.warmup}")
    _need(o.optimizer in ("adam", "sgd"), f"optim.optimizer must be 'adam' or 'sgd', got {o.optimizer!r}")
    _need(0 <= o.ema < 1, f"optim.ema must be in [0, 1), got {o.ema}")
    _need(0 < o.learning_rate <= MAX_LEARNING_RATE, f"optim.learning_rate must be in (0, {MAX_LEARNING_RATE:g}], got {o.learning_rate}")
    for name in ("epochs", "batch_size", "checkpoint_every", "keep_last"):
        _need(getattr(t, name) >= 1, f"train.{name} must be >= 1, got {getattr(t, name)}")
    for name, seed in (("data.seed", d.seed), ("train.seed", t.seed), ("model.placement_seed", m.placement_seed),
                       ("generation.seed", g.seed), ("evaluation.classifier_seed", e.classifier_seed)):
        _need(0 <= seed < 2**32, f"{name} must be in [0, 2**32), got {seed}")
    _need(e.every >= 0, f"evaluation.every must be >= 0 (0: only at the end), got {e.every}")
    _need(1 <= e.classifier_hidden <= 4096, f"evaluation.classifier_hidden must be in [1, 4096], got {e.classifier_hidden}")
    _need(1 <= c.sharding.parts <= MAX_PARTS, f"sharding.parts must be in [1, {MAX_PARTS}], got {c.sharding.parts}")


def _check_offsets(offsets: list, side: int) -> None:
    _need(len(offsets) >= 1, "model.offsets must list at least one [dy, dx]")
    seen = set()
    for i, o in enumerate(offsets):
        ok = isinstance(o, list) and len(o) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in o)
        _need(ok, f"model.offsets[{i}] must be a pair of integers [dy, dx], got {o!r}")
        dy, dx = o
        _need((dy, dx) != (0, 0) and max(abs(dy), abs(dx)) < side,
              f"model.offsets[{i}] {o} must be nonzero and shorter than model.grid_side ({side})")
        _need((dy + dx) % 2 == 1, f"model.offsets[{i}] {o}: dy + dx must be odd (the grid stays 2-colourable)")
        rotations = {(dy, dx), (-dx, dy), (-dy, -dx), (dx, -dy)}
        _need(not rotations & seen, f"model.offsets[{i}] {o} repeats an earlier offset or one of its rotations")
        seen |= rotations

