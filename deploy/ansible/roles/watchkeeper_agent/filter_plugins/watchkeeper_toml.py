"""The ``watchkeeper_toml`` filter: a mapping from the inventory written as a TOML document.

agent.toml is built from variables (the collector URL, the checks of a customer and of a
host), so the role needs TOML it can trust: strings escaped as TOML wants them, tables and
arrays of tables as headers a person can read, and an error naming the key for a value
TOML cannot hold (a null), rather than a file the agent refuses later.

Runs on the control node; standard library only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}


def toml_document(mapping: Mapping[str, Any]) -> str:
    """The mapping as a TOML document: plain keys first, then one header per table."""
    if not isinstance(mapping, Mapping):
        raise TypeError(f"watchkeeper_toml: expected a mapping, got {type(mapping).__name__}")
    return "\n".join(_table(mapping, ())) + "\n"


def toml_value(value: Any, where: str = "value") -> str:
    """One value in TOML's inline form (a string, number, bool, array or inline table)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Mapping):
        items = (f"{_key(k)} = {toml_value(v, f'{where}.{k}')}" for k, v in value.items())
        return "{ " + ", ".join(items) + " }" if value else "{}"
    if _is_array(value):
        return "[" + ", ".join(toml_value(v, f"{where}[{i}]") for i, v in enumerate(value)) + "]"
    if value is None:
        raise ValueError(f"watchkeeper_toml: {where} is null, which TOML cannot hold "
                         "(leave the key out to get the agent's default)")
    raise TypeError(f"watchkeeper_toml: {where} is a {type(value).__name__}, "
                    "which TOML cannot hold")


def _table(
    mapping: Mapping[str, Any], path: tuple[str, ...], *, header: bool = True
) -> Iterator[str]:
    where = ".".join(path) or "document"
    plain, subtables = [], []
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise TypeError(f"watchkeeper_toml: {where} has a key that is not a string: {key!r}")
        if isinstance(value, Mapping) or _is_table_array(value):
            subtables.append((key, value))
        else:
            plain.append(f"{_key(key)} = {toml_value(value, '.'.join((*path, key)))}")
    # A table holding only tables ([checks]) needs no header of its own; an empty one
    # ([checks.disk] with the check's defaults) does, or it would vanish.
    if header and path and (plain or not subtables):
        yield ""
        yield f"[{_dotted(path)}]"
    yield from plain
    for key, value in subtables:
        if isinstance(value, Mapping):
            yield from _table(value, (*path, key))
        else:
            for element in value:
                yield ""
                yield f"[[{_dotted((*path, key))}]]"
                yield from _table(element, (*path, key), header=False)


def _is_array(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _is_table_array(value: Any) -> bool:
    return _is_array(value) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(_key(part) for part in path)


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _string(text: str) -> str:
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


class FilterModule:
    """Ansible's entry point for the filters of this file."""

    def filters(self) -> dict[str, Callable[..., str]]:
        return {"watchkeeper_toml": toml_document, "watchkeeper_toml_value": toml_value}
