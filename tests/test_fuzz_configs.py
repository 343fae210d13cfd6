"""Issue 17 fuzz: seeded random mutations of the shipped configs (wrong types, huge, negative,
NaN and inf numbers, missing and extra keys) fed to the config loaders of `run`, `train` (both kinds)
and `emulate`. Each must end in a one-line `ValueError` (ConfigError and distthrml's errors) or a
config; never another exception. The default part is fast; the slow part takes the total past 200."""

from __future__ import annotations

import math
import pathlib
import random

import pytest
import yaml

from cluster.dtm.config import load_dtm_config
from cluster.emulate.config import load_emulate_config
from cluster.run.config import load_run_config
from cluster.train.config import load_config

CONFIGS = pathlib.Path(__file__).parent.parent / "configs"
TARGETS = [(CONFIGS / "quickstart.yaml", load_run_config), (CONFIGS / "train_digits.yaml", load_config),
           (CONFIGS / "chips" / "small.yaml", load_emulate_config), (CONFIGS / "dtm_digits.yaml", load_dtm_config)]
BAD = [None, "x", -1, 0, 1e300, -1e300, math.nan, math.inf, 2**64, [1], {"a": 1}, True, 1e39, 0.9999]


def _mutate(raw: dict, rng: random.Random) -> dict:
    section = rng.choice(sorted(raw))
    body = raw[section]
    if isinstance(body, dict) and body and rng.random() < 0.8:
        key = rng.choice(sorted(body))
        choice = rng.random()
        if choice < 0.7:
            body[key] = rng.choice(BAD)
        elif choice < 0.85:
            del body[key]
        else:
            body[key + "_extra"] = 1
    else:
        raw[section] = rng.choice(BAD)
    return raw


def _case(seed: int, tmp_path: pathlib.Path) -> None:
    rng = random.Random(seed)
    source, load = TARGETS[seed % len(TARGETS)]
    raw = yaml.safe_load(source.read_text())
    for _ in range(rng.randint(1, 3)):
        raw = _mutate(raw, rng)
    path = source.parent / f".fuzz_{seed}.yaml"  # beside the original: relative paths still resolve
    try:
        path.write_text(yaml.safe_dump(raw))
        try:
            load(path)
        except ValueError as err:
            assert "\n" not in " ".join(str(err).split()) and str(err), err
    finally:
        path.unlink(missing_ok=True)


@pytest.mark.parametrize("seed", range(60))
def test_fuzz_fast(seed, tmp_path):
    _case(seed, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(60, 260))
def test_fuzz_slow(seed, tmp_path):
    _case(seed, tmp_path)
