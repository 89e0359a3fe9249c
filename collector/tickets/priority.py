"""The four priorities of the support policy, their RT codes and the other vendor's aliases.

P1 is the highest. "Worse" means a higher priority, so ``Priority.P1 > Priority.P2`` and
``max()`` of several priorities is the most urgent one.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class PriorityError(ValueError):
    """A value that names no priority."""


class Priority(StrEnum):
    """P1..P4, stored as ``"P1"``..``"P4"``; ordered so that P1 is the greatest."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"

    @property
    def rt_code(self) -> int:
        """Request Tracker's priority code: 80, 60, 40, 20."""
        return _RT_CODES[self]

    @property
    def severity(self) -> str:
        """The other vendor's severity name: S1..S4."""
        return "S" + self.value[1]

    @property
    def rank(self) -> int:
        """4 for P1 down to 1 for P4: bigger is more urgent."""
        return 5 - int(self.value[1])

    def __lt__(self, other: object) -> bool:
        other = _comparable(other)
        return self.rank < other.rank

    def __gt__(self, other: object) -> bool:
        other = _comparable(other)
        return self.rank > other.rank

    def __le__(self, other: object) -> bool:
        other = _comparable(other)
        return self.rank <= other.rank

    def __ge__(self, other: object) -> bool:
        other = _comparable(other)
        return self.rank >= other.rank

    def is_worse_than(self, other: Priority) -> bool:
        """True when this priority is more urgent than ``other``."""
        return self.rank > other.rank

    @classmethod
    def parse(cls, value: Any) -> Priority:
        """``"P1"``, ``"p1"``, ``"S1"``, ``80`` or ``"80"`` (and so on) as a priority."""
        if isinstance(value, Priority):
            return value
        if isinstance(value, bool):
            raise PriorityError(_expected(value))
        if isinstance(value, int):
            try:
                return _BY_RT_CODE[value]
            except KeyError:
                raise PriorityError(_expected(value)) from None
        if isinstance(value, str):
            text = value.strip().upper()
            if len(text) == 2 and text[0] in "PS" and text[1] in "1234":
                return cls("P" + text[1])
            if text.isdigit() and int(text) in _BY_RT_CODE:
                return _BY_RT_CODE[int(text)]
        raise PriorityError(_expected(value))


def _comparable(other: object) -> Priority:
    # Not NotImplemented: Python would then compare the plain strings, where "P1" < "P2".
    if not isinstance(other, Priority):
        raise TypeError(f"a priority compares only with a priority, not {other!r}")
    return other


def _expected(value: Any) -> str:
    return (f"not a priority: {value!r} (use P1..P4, S1..S4 or the RT codes "
            "80, 60, 40, 20)")


_RT_CODES = {Priority.P1: 80, Priority.P2: 60, Priority.P3: 40, Priority.P4: 20}
_BY_RT_CODE = {code: priority for priority, code in _RT_CODES.items()}
