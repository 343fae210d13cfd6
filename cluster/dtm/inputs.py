"""Checks of a DTM job that run on the driver before anything is built or Ray starts: the
workdir, `--init-step` values, and a memory estimate of one step graph against this machine."""

from __future__ import annotations

import pathlib

from ..config_file import ConfigError
from ..resources import check_fits
from .config import DTMConfig

PIXEL_BOUND = 784  # rough bound before the dataset is read (MNIST's 28 x 28)
# bytes per coupling of one step's training (both phases' lowered and sharded tables, the
# jitted iteration's compilation) and per node and chain of a sweep (states, float32 fields,
# random numbers): benchmarks/dtm.py measured 1.5 KB per coupling at 1M nodes (4.2M couplings,
# 6.6 GB peak, 4 parts); 2 KB leaves room for the mixing measurement's program
BYTES_PER_EDGE = 2048
BYTES_PER_NODE_CHAIN = 24
BYTES_PER_PARAM = 4 * 5  # parameters, moving average, two Adam moments, gradient


def parse_init_steps(values: list[str] | None, steps: int) -> dict[int, str]:
    """`{t: path}` from `--init-step t=PATH` values.

    **Arguments:**

    - `values`: the flag's values.
    - `steps`: the config's number of diffusion steps.
    """
    out: dict[int, str] = {}
    for value in values or []:
        head, sep, path = value.partition("=")
        if not sep or not head.strip().isdigit() or not path:
            raise ConfigError(f"--init-step {value!r}: expected STEP=PATH, e.g. --init-step 2=out/other_run")
        t = int(head)
        if not 1 <= t <= steps:
            raise ConfigError(f"--init-step {value!r}: step {t} is not one of the config's steps 1..{steps}")
        if t in out:
            raise ConfigError(f"--init-step: step {t} is given twice")
        if not pathlib.Path(path).exists():
            raise ConfigError(f"--init-step {value!r}: {path} does not exist")
        out[t] = str(pathlib.Path(path).absolute())
    return out


def step_graph_bytes(config: DTMConfig) -> int:
    """A rough upper bound of the memory one step's training needs."""
    nodes = config.model.grid_side ** 2 + PIXEL_BOUND
    edges = config.model.grid_side ** 2 * 2 * len(config.offsets()) + PIXEL_BOUND
    chains = config.train.batch_size + config.penalty.conditions * config.penalty.replicas
    return edges * (BYTES_PER_EDGE + BYTES_PER_PARAM) + nodes * (BYTES_PER_PARAM + chains * BYTES_PER_NODE_CHAIN)


def check_dtm_inputs(config: DTMConfig, workdir: str | pathlib.Path) -> None:
    """Raise `ConfigError` (one line naming the key or file) for what would fail later.

    **Arguments:**

    - `config`: a validated DTM config.
    - `workdir`: the run's working directory.
    """
    path = pathlib.Path(workdir)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--workdir {path} is a file, not a directory")
    for key, p in (("data.path", config.data.path), ("data.labels_path", config.data.labels_path)):
        if p and not pathlib.Path(p).is_file():
            raise ConfigError(f"{key}: file not found: {p}")
    check_fits(step_graph_bytes(config), "one step graph's training", "model.grid_side")
    nodes = config.model.grid_side ** 2 + PIXEL_BOUND
    check_fits(config.generation.samples * nodes * BYTES_PER_NODE_CHAIN * 2, "the generation chains",
               "generation.samples")
