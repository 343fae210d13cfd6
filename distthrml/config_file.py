"""YAML config files read into section dataclasses, shared by every command (`distthrml run`,
`train`, `emulate`): unknown keys are named with a suggestion, values of the wrong type are
named with the type they must have, all before anything is built.

A section is a dataclass whose field defaults give the types; a field may declare its type with
`optional(kind)` when its default is None. A field with a None default and no declared type is
not type-checked here (its command validates it).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import pathlib
from typing import Any

import yaml


def optional(kind: type, default: Any = None) -> Any:
    """A dataclass field of type `kind` that may also be null."""
    return dataclasses.field(default=default, metadata={"type": kind, "optional": True})


def suggest(key: str, known: list[str]) -> str:
    """` (did you mean 'x'?)` for the closest known key, or an empty string."""
    close = difflib.get_close_matches(str(key), known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _hints(keys: list[str], known: list[str]) -> str:
    return "".join(f"; '{k}'{suggest(k, known)}" for k in keys if suggest(k, known))


def read_yaml(path: str | pathlib.Path, error: type[Exception]) -> Any:
    """The parsed YAML of `path`; `error` names the file when it is missing or not YAML.

    **Arguments:**

    - `path`: the file.
    - `error`: the exception class to raise.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise error(f"config file not found: {path}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise error(f"{path}: not valid YAML ({err})") from None


def check_sections(raw: Any, known: list[str], error: type[Exception], where: str = "") -> dict:
    """`raw` as a mapping of known top-level sections (None reads as empty).

    **Arguments:**

    - `raw`: the parsed YAML.
    - `known`: the allowed top-level keys.
    - `error`: the exception class to raise.
    - `where`: a prefix for messages (e.g. the file name and a colon).
    """
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise error(f"{where}the top level must be a mapping")
    known = sorted(known)
    unknown = sorted(str(k) for k in set(raw) - set(known))
    if unknown:
        raise error(f"{where}unknown section(s) {unknown}{_hints(unknown, known)}; known: {known}")
    return raw


def check_value(value: Any, want: type, name: str, optional: bool, error: type[Exception]) -> Any:
    """`value` if it has type `want` (ints accepted for floats), else `error` naming `name`."""
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
        raise error(f"'{name}' must be {want.__name__}{null}, got {value!r}")
    if want is float and not math.isfinite(value):
        raise error(f"'{name}' must be finite, got {value!r}")
    return value


def _default_type(field: dataclasses.Field) -> type | None:
    if field.default is not dataclasses.MISSING:
        return None if field.default is None else type(field.default)
    if field.default_factory is not dataclasses.MISSING:
        return type(field.default_factory())
    return None


def parse_section(cls: type, raw: Any, name: str, error: type[Exception], where: str = "") -> Any:
    """One section dataclass from its mapping (None: all defaults).

    **Arguments:**

    - `cls`: the section dataclass.
    - `raw`: the section's mapping.
    - `name`: the section's name, used in messages (`name.key`).
    - `error`: the exception class to raise.
    - `where`: a prefix for messages.
    """
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise error(f"{where}config section '{name}' must be a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in set(raw) - set(fields))
    if unknown:
        known = sorted(fields)
        raise error(f"{where}unknown key(s) in '{name}': {unknown}{_hints(unknown, known)}; known keys: {known}")
    values = {}
    for key, value in raw.items():
        field = fields[key]
        want = field.metadata.get("type") or _default_type(field)
        if want is None:
            values[key] = value
            continue
        values[key] = check_value(value, want, f"{name}.{key}", field.metadata.get("optional", False), lambda m: error(where + m))
    return cls(**values)
