"""Every check of a training job that can run on the driver, before training or a Ray launch, so
that a bad config never reaches Ray workers (where it would be retried, then end in a traceback)."""

from __future__ import annotations

import pathlib

from ..config_file import ConfigError
from ..resources import check_fits
from .config import Config
from .data import load_dataset
from .model import read_graph_file

BYTES = 4  # float32 parameters and states, the widest per-element type of a chain
# rough upper bounds, before the dataset is read: couplings per hidden node, and visible pixels
# (the shipped datasets have at most 28 x 28 = 784)
COUPLINGS_PER_HIDDEN = 64
VISIBLE_BOUND = 1024


def check_training_inputs(config: Config, workdir: str | pathlib.Path) -> None:
    """Raise `ConfigError` (one line naming the key or file) for what would fail later.

    **Arguments:**

    - `config`: a validated training config.
    - `workdir`: the run's working directory.
    """
    path = pathlib.Path(workdir)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--workdir {path} is a file, not a directory")
    m, s = config.model, config.sampling
    hidden = m.hidden_rows * m.hidden_cols
    check_fits(hidden * BYTES * COUPLINGS_PER_HIDDEN, "the hidden layer and its couplings", "model.hidden_rows")
    chain_bytes = s.negative_chains * (hidden + VISIBLE_BOUND) * BYTES
    check_fits(chain_bytes * max(s.negative_samples, 1), "the negative chains' samples", "sampling.negative_chains")
    check_fits(config.output.autocorrelation_sweeps * chain_bytes, "the autocorrelation buffer",
               "output.autocorrelation_sweeps")
    # the files the config names, read here as the workers would read them
    dataset = load_dataset(config.data)
    if m.graph == "npz":
        read_graph_file(dataset.train.shape[1], m.graph_path)
