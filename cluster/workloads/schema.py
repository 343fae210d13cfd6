"""The `model:` section every sampling command reads (`distthrml run`, `distthrml emulate`):
which graph, which energy, which temperature. Pure Python: a bad section fails in milliseconds,
naming the key, before JAX starts."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

from ..config_file import ConfigError, optional, parse_section, suggest
from ..resources import check_sampling_fits

MODEL_KINDS = ("ising2d", "potts2d", "pegasus", "random_regular", "edge_list")

# keys of `model` that only some kinds read; a key given for another kind is an error
KIND_KEYS = {
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


def parse_model(raw: Any, source: str | pathlib.Path | None = None) -> ModelConfig:
    """Validate a `model:` section (the parsed YAML mapping; None: the defaults).

    **Arguments:**

    - `raw`: the section.
    - `source`: the config file; relative `path`s are relative to its folder.
    """
    model = parse_section(ModelConfig, raw, "model")
    _validate(model, raw or {})
    size = graph_size(model)
    if size is not None:
        check_sampling_fits(*size, chains=0, samples=0, key=SIZE_KEYS[model.kind])
    if model.kind == "edge_list" and not edge_list_path(model, source).is_file():
        raise ConfigError(f"model.path: edge-list file not found: {edge_list_path(model, source)}")
    return model


def model_keys(model: ModelConfig) -> dict[str, Any]:
    """The keys of `model` that its kind reads, with their values (what `summary.json` shows and
    what re-validates after command-line overrides).

    **Arguments:**

    - `model`: a validated section.
    """
    values = dataclasses.asdict(model)
    keys = [k for k in values if model.kind in KIND_KEYS.get(k, (model.kind,))]
    if model.kind == "potts2d":
        keys.remove("field")  # always 0 for Potts (checked): not a parameter of the model
    return {k: values[k] for k in keys}


def edge_list_path(model: ModelConfig, source: str | pathlib.Path | None = None) -> pathlib.Path:
    """`model.path`, a relative path taken from the config file's folder (or the working directory).

    **Arguments:**

    - `model`: the section.
    - `source`: the config file, if any.
    """
    path = pathlib.Path(model.path or "")
    if not path.is_absolute() and source:
        path = pathlib.Path(source).parent / path
    return path


def _validate(m: ModelConfig, raw: dict) -> None:
    if m.kind not in MODEL_KINDS:
        raise ConfigError(f"model.kind must be one of {list(MODEL_KINDS)}, got {m.kind!r}{suggest(m.kind, list(MODEL_KINDS))}")
    for key in raw:
        kinds = KIND_KEYS.get(key)
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


SIZE_KEYS = {"ising2d": "model.rows x model.cols", "potts2d": "model.rows x model.cols", "pegasus": "model.m",
             "random_regular": "model.n", "edge_list": "model.path"}

# Pegasus P(m) has at most 24 m (m - 1) nodes and fewer than 7.5 edges per node (degree <= 15)
PEGASUS_EDGES_PER_NODE = 7.5


def graph_size(m: ModelConfig) -> tuple[int, int] | None:
    """Upper bounds on `(nodes, edges)` of a validated `model:` section, by arithmetic alone (so a
    huge size is refused before anything is built); None for an edge list (known once read).

    **Arguments:**

    - `m`: the section.
    """
    if m.kind in ("ising2d", "potts2d"):
        return m.rows * m.cols, 2 * m.rows * m.cols
    if m.kind == "pegasus":
        nodes = 24 * m.m * (m.m - 1)
        return nodes, int(PEGASUS_EDGES_PER_NODE * nodes)
    if m.kind == "random_regular":
        return m.n, m.n * m.degree // 2
    return None
