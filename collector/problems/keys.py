"""What a problem is about: (customer, host, check, target), and the reserved silence keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The collector's own check for host silence, as the current state stores it
# (collector.state.models.SILENCE_CHECK / SILENCE_TARGET; a test keeps them equal).
HOST_SILENCE_CHECK = "collector"
HOST_SILENCE_TARGET = "silence"
# One problem for a customer's whole site when most of its hosts fell silent together.
SITE_HOST = "*"
SITE_SILENCE_CHECK = "silence"
SITE_SILENCE_TARGET = "site"


@dataclass(frozen=True, slots=True)
class ProblemKey:
    """One problem, one ticket: a customer's host, a check instance and the object it checked."""

    customer: str
    host: str
    check: str
    target: str

    @classmethod
    def host_silence(cls, *, customer: str, host: str) -> ProblemKey:
        """The key of one host's silence."""
        return cls(customer, host, HOST_SILENCE_CHECK, HOST_SILENCE_TARGET)

    @classmethod
    def site_silence(cls, *, customer: str) -> ProblemKey:
        """The key of a customer's site falling silent (most hosts at once)."""
        return cls(customer, SITE_HOST, SITE_SILENCE_CHECK, SITE_SILENCE_TARGET)

    @property
    def is_silence(self) -> bool:
        """A host's or a site's silence: hard at once, no flap detection."""
        if (self.check, self.target) == (HOST_SILENCE_CHECK, HOST_SILENCE_TARGET):
            return True
        return (self.host, self.check, self.target) == (
            SITE_HOST, SITE_SILENCE_CHECK, SITE_SILENCE_TARGET)

    def to_json(self) -> dict[str, str]:
        """Plain JSON form."""
        return {"customer": self.customer, "host": self.host, "check": self.check,
                "target": self.target}

    @classmethod
    def from_json(cls, data: Any) -> ProblemKey:
        """The key back from ``to_json``; ValueError when malformed."""
        if not isinstance(data, dict):
            raise ValueError(f"a problem key must be an object, got {type(data).__name__}")
        try:
            parts = [data[name] for name in ("customer", "host", "check", "target")]
        except KeyError as exc:
            raise ValueError(f"a problem key lacks {exc.args[0]!r}") from None
        if not all(isinstance(p, str) for p in parts):
            raise ValueError("a problem key's parts must be strings")
        return cls(*parts)

    def __str__(self) -> str:
        return f"{self.customer}/{self.host}/{self.check}/{self.target}"
