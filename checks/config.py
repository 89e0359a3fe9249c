"""Frozen, strict configuration models without a heavy validation library.

The agent runs on every customer host, so it does not carry pydantic (about 8 MB of
resident memory). A config model is a frozen dataclass; ``build`` turns a TOML table
into one, refusing unknown keys and wrong types with an error that names the key.

Field types understood: ``str``, ``int``, ``float``, ``bool``, ``Seconds`` (a number
of seconds or a string such as ``"90s"``, ``"15m"``, ``"24h"``, ``"7d"``), ``Bytes``
(a number or ``"512KiB"``, ``"50MB"``, ``"1GiB"``), ``Percent`` (0..100), ``tuple[X, ...]``
(from a TOML array), ``X | None``, ``Literal[...]`` and nested config dataclasses.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, get_args, get_origin


class ConfigError(ValueError):
    """A configuration value is wrong; ``key`` is the dotted path to it."""

    def __init__(self, key: str, message: str, file: str | None = None) -> None:
        self.key = key
        self.message = message
        self.file = file
        super().__init__(self._text())

    def _text(self) -> str:
        where = f"{self.file}: " if self.file else ""
        return f"{where}{self.key}: {self.message}" if self.key else f"{where}{self.message}"

    def in_file(self, file: str) -> ConfigError:
        """The same error, naming the file it came from."""
        return ConfigError(self.key, self.message, file)

    def under(self, prefix: str) -> ConfigError:
        """The same error with its key placed under a parent table."""
        key = f"{prefix}.{self.key}" if self.key else prefix
        return ConfigError(key, self.message, self.file)


class Seconds(float):
    """A duration in seconds; accepts 30, 2.5, "90s", "15m", "24h", "7d"."""


class Bytes(int):
    """A size in bytes; accepts 1048576, "512KiB", "50MB", "1GiB"."""


class Percent(float):
    """A percentage between 0 and 100."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, None: 1,
}

T = TypeVar("T")


def build(model: type[T], data: Mapping[str, Any], *, key: str = "") -> T:
    """Build the frozen dataclass ``model`` from a TOML table, strictly."""
    if not isinstance(data, Mapping):
        raise ConfigError(key, f"expected a table, got {_kind(data)}")
    hints = typing.get_type_hints(model)
    fields = {f.name: f for f in dataclasses.fields(model)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        allowed = ", ".join(sorted(fields)) or "none"
        raise ConfigError(_join(key, unknown[0]), f"unknown key (allowed here: {allowed})")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        path = _join(key, name)
        if name in data:
            values[name] = _coerce(hints[name], data[name], path)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(path, "required key is missing")
    try:
        return model(**values)
    except ConfigError as err:
        if key and not err.key.startswith(key):
            raise err.under(key) from err
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(key, str(err)) from err


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _kind(value: Any) -> str:
    return {
        str: "a string", bool: "a boolean", int: "an integer", float: "a number",
        list: "an array", dict: "a table",
    }.get(type(value), type(value).__name__)


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        if value is None and len(options) < len(get_args(tp)):
            return None
        errors = []
        for option in options:
            try:
                return _coerce(option, value, path)
            except ConfigError as err:
                errors.append(err.message)
        raise ConfigError(path, " or ".join(errors))
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            choices = ", ".join(map(repr, allowed))
            raise ConfigError(path, f"must be one of {choices}, got {value!r}")
        return value
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(path, f"expected an array, got {_kind(value)}")
        item_type = args[0]
        return tuple(_coerce(item_type, v, f"{path}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return build(typing.cast("type[Any]", tp), value, key=path)
    if tp is Seconds:
        return Seconds(parse_duration(value, path))
    if tp is Bytes:
        return Bytes(parse_size(value, path))
    if tp is Percent:
        number = _coerce(float, value, path)
        if not 0 <= number <= 100:
            raise ConfigError(path, f"must be a percentage between 0 and 100, got {value!r}")
        return Percent(number)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, f"expected true or false, got {_kind(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, f"expected an integer, got {_kind(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(path, f"expected a number, got {_kind(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(path, f"expected a string, got {_kind(value)}")
        return value
    raise ConfigError(path, f"unsupported field type {tp!r}")  # a programming error


def parse_duration(value: Any, path: str = "") -> float:
    """Seconds from a number or a string such as "90s", "15m", "24h", "7d"."""
    if isinstance(value, bool):
        raise ConfigError(path, "expected a duration, got a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    else:
        raise ConfigError(
            path, f"expected a duration such as 30, \"90s\", \"15m\", \"24h\", got {value!r}"
        )
    if seconds < 0:
        raise ConfigError(path, f"a duration cannot be negative, got {value!r}")
    return seconds


def parse_size(value: Any, path: str = "") -> int:
    """Bytes from a number or a string such as "512KiB", "50MB", "1GiB"."""
    if isinstance(value, bool):
        raise ConfigError(path, "expected a size, got a boolean")
    if isinstance(value, int | float):
        size = float(value)
    elif isinstance(value, str) and (m := _SIZE.match(value)):
        unit = m.group(2).lower() if m.group(2) else None
        size = float(m.group(1)) * _SIZE_UNITS[unit]
    else:
        raise ConfigError(
            path, f"expected a size such as 1048576, \"50MB\", \"1GiB\", got {value!r}"
        )
    if size < 0:
        raise ConfigError(path, f"a size cannot be negative, got {value!r}")
    return int(size)
