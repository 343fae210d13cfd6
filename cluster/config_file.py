"""YAML config files read into section dataclasses, shared by every command (`distthrml run`,
`partition`, `train`, `emulate`): unknown keys are named with a suggestion, values of the wrong
type are named with the type they must have, all before anything is built; every error names
the file.

A section is a dataclass whose field defaults give the types; a field may declare its type with
`optional(kind)` when its default is None. A field with a None default and no declared type is
not type-checked here (its command validates it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import pathlib
from collections.abc import Iterator
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file, or a command-line value standing in for one of its keys, is invalid."""


# the top-level sections of every command's config files: each command checks its files against
# its own row, and a file that fits another row is named as that command's config
COMMAND_SECTIONS = {
    "run": ("devices", "model", "output", "sampling", "sharding"),
    "partition": ("graph", "partition"),
    # the last four are read by `model.kind: dtm` configs only (cluster/dtm/config.py)
    "train": ("data", "model", "optim", "output", "sampling", "sharding", "train",
              "diffusion", "evaluation", "generation", "penalty"),
    "emulate": ("chips", "energy", "links", "mapping", "model", "output", "run", "sweep"),
}

_EXAMPLES = {
    "run": "configs/quickstart.yaml",
    "partition": "configs/partition_torus.yaml",
    "train": "configs/train_digits.yaml",
    "emulate": "configs/chips/small.yaml",
}


def optional(kind: type, default: Any = None) -> Any:
    """A dataclass field of type `kind` that may also be null.

    **Arguments:**

    - `kind`: the type the value has when it is not null.
    - `default`: the default value.
    """
    return dataclasses.field(default=default, metadata={"type": kind, "optional": True})


def suggest(key: str, known: list[str]) -> str:
    """` (did you mean 'x'?)` for the closest known key, or an empty string.

    **Arguments:**

    - `key`: the unknown key.
    - `known`: the keys allowed there.
    """
    close = difflib.get_close_matches(str(key), known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _hints(keys: list[str], known: list[str]) -> str:
    return "".join(f"; '{k}'{suggest(k, known)}" for k in keys if suggest(k, known))


@contextlib.contextmanager
def in_file(path: str | pathlib.Path | None) -> Iterator[None]:
    """Make every `ConfigError` raised inside name `path` (prefixed `path: ` unless it names the
    file already), so that the messages of a file's checks name the file wherever in the code
    they are raised.

    **Arguments:**

    - `path`: the config file (None: leave messages as they are).
    """
    try:
        yield
    except ConfigError as err:
        if path is None or str(path) in str(err):  # the message names the file already
            raise
        raise ConfigError(f"{path}: {err}") from None


def read_yaml(path: str | pathlib.Path) -> Any:
    """The parsed YAML of the file `path`, or a one-line `ConfigError` naming the file when it is
    missing, a directory, unreadable, not text or not YAML.

    **Arguments:**

    - `path`: the file.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a directory, not a config file")
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a text file (byte {err.start} is not UTF-8); a config is a YAML text file") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}:{_yaml_position(err)} not valid YAML: {_yaml_problem(err)}") from None


SEED_BOUND = 2**32
MAX_ALIASES = 100  # alias expansions a config may use; a few kilobytes of nested aliases can expand to gigabytes
FLOAT32_BOUND = 1e30  # config numbers become float32: bound them well inside its range (3.4e38)


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate mapping keys (naming the key and line) and more than
    `MAX_ALIASES` alias uses (an alias bomb)."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.events.AliasEvent):
            self._aliases = getattr(self, "_aliases", 0) + 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise ConfigError(f"line {mark.line + 1}: more than {MAX_ALIASES} YAML aliases (refused: alias expansion can exhaust memory)")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):  # type: ignore[no-untyped-def]
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_position(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    return f"{mark.line + 1}:{mark.column + 1}:" if mark is not None else ""


def _yaml_problem(err: yaml.YAMLError) -> str:
    # the parser's text spans several lines (it quotes the file); keep the message to one line
    parts = [getattr(err, "context", None), getattr(err, "problem", None)]
    text = ", ".join(p for p in parts if p) or str(err)
    return " ".join(text.split())


def check_sections(raw: Any, command: str) -> dict:
    """`raw` as a mapping of `command`'s top-level sections (None reads as empty). A file whose
    sections belong to another command is named as that command's config.

    **Arguments:**

    - `raw`: the parsed YAML.
    - `command`: a key of `COMMAND_SECTIONS`.
    """
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"the top level must be a mapping of sections ({', '.join(COMMAND_SECTIONS[command])})")
    known = sorted(COMMAND_SECTIONS[command])
    unknown = sorted(str(k) for k in set(raw) - set(known))
    if not unknown:
        return raw
    other = owner(raw, besides=command)
    if other is not None:
        raise ConfigError(
            f"this is a `distthrml {other}` config, not a `distthrml {command}` one: run it with `distthrml {other}` "
            f"({command} configs look like {_EXAMPLES[command]})"
        )
    raise ConfigError(f"unknown section(s) {unknown}{_hints(unknown, known)}; known: {known}")


def owner(raw: dict, besides: str | None = None) -> str | None:
    """The command whose config files have every section of `raw` and the fewest others (the
    most specific fit), other than `besides`; None if no command's does.

    **Arguments:**

    - `raw`: the parsed YAML mapping.
    - `besides`: a command to leave out.
    """
    keys = set(map(str, raw))
    fits = [c for c, sections in COMMAND_SECTIONS.items() if c != besides and keys <= set(sections)]
    return min(fits, key=lambda c: len(COMMAND_SECTIONS[c])) if fits and keys else None


def check_value(value: Any, want: type, name: str, optional: bool) -> Any:
    """`value` if it has type `want` (ints accepted for floats), else a `ConfigError` naming `name`.

    **Arguments:**

    - `value`: the value read.
    - `want`: the type it must have.
    - `name`: the dotted key, for the message.
    - `optional`: whether null is allowed.
    """
    if value is None and optional:
        return None
    if want is float and isinstance(value, str):
        # PyYAML reads 1.0e10 (no exponent sign, YAML 1.1) as a string: take the number it means
        try:
            value = float(value)
        except ValueError:
            pass
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, want) or (want is not bool and isinstance(value, bool)):
        null = " or null" if optional else ""
        raise ConfigError(f"'{name}' must be {want.__name__}{null}, got {value!r}")
    if want is float and not math.isfinite(value):
        raise ConfigError(f"'{name}' must be finite, got {value!r}")
    if want is float and abs(value) > FLOAT32_BOUND:
        raise ConfigError(f"'{name}' must be within +-{FLOAT32_BOUND:g} (it becomes float32), got {value!r}")
    return value


def _default_type(field: dataclasses.Field) -> type | None:
    if field.default is not dataclasses.MISSING:
        return None if field.default is None else type(field.default)
    if field.default_factory is not dataclasses.MISSING:
        return type(field.default_factory())
    return None


def parse_section(cls: type, raw: Any, name: str) -> Any:
    """One section dataclass from its mapping (None: all defaults).

    **Arguments:**

    - `cls`: the section dataclass.
    - `raw`: the section's mapping.
    - `name`: the section's name, used in messages (`name.key`).
    """
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"config section '{name}' must be a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in set(raw) - set(fields))
    if unknown:
        known = sorted(fields)
        raise ConfigError(f"unknown key(s) in '{name}': {unknown}{_hints(unknown, known)}; known keys: {known}")
    values = {}
    for key, value in raw.items():
        field = fields[key]
        want = field.metadata.get("type") or _default_type(field)
        values[key] = value if want is None else check_value(value, want, f"{name}.{key}", field.metadata.get("optional", False))
        if key == "seed" and not 0 <= values[key] < SEED_BOUND:
            # every seed of every command: JAX keys and numpy generators take 32-bit seeds
            raise ConfigError(f"'{name}.seed' must be in [0, 2**32), got {values[key]!r}")
    return cls(**values)


def diff_identity(a: dict, b: dict, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two nested dicts (a config's identity now, `a`,
    and the one a workdir's checkpoints were made with, `b`), as `key: b in the workdir, a now`."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += diff_identity(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}: {vb!r} in the workdir, {va!r} now")
    return out
