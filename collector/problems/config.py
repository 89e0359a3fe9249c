"""The ``[problems]`` section: when failing results become a problem, flapping, mass silence.

Each part is a frozen value built from a plain TOML table; a wrong or unknown key raises
``ConfigError`` naming the dotted key (``problems.flapping.stop_threshold``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from checks.config import ConfigError, Percent, Seconds, build
from collector.problems.keys import HOST_SILENCE_CHECK, ProblemKey

SECTION = "problems"
_TOP_KEYS = ("hard_after", "hard_after_by_check", "hard_after_by_type", "flapping",
             "mass_silence")


@dataclass(frozen=True, slots=True, kw_only=True)
class FlappingRules:
    """Nagios' flap detection: weighted percent state change over the last ``window`` results."""

    enabled: bool = True
    window: int = 21
    start_threshold: Percent = Percent(50.0)
    stop_threshold: Percent = Percent(25.0)
    # Nagios weighs the oldest change 0.75 and the newest 1.25, linearly in between.
    weight_oldest: float = 0.75
    weight_newest: float = 1.25

    def __post_init__(self) -> None:
        if self.window < 3:
            raise ConfigError("window", f"must be at least 3 results, got {self.window}")
        if self.stop_threshold >= self.start_threshold:
            raise ConfigError("stop_threshold", (
                f"must be below start_threshold ({self.start_threshold:g}), "
                f"got {self.stop_threshold:g}"))
        for name in ("weight_oldest", "weight_newest"):
            if getattr(self, name) <= 0:
                raise ConfigError(name, f"must be above 0, got {getattr(self, name)!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class MassSilenceRules:
    """One site problem when more than ``fraction`` of at least ``min_hosts`` fall silent
    within ``window`` seconds of each other."""

    enabled: bool = True
    fraction: float = 0.5
    min_hosts: int = 3
    window: Seconds = Seconds(300.0)

    def __post_init__(self) -> None:
        if not 0 <= self.fraction < 1:
            raise ConfigError("fraction", (
                f"must be at least 0 and below 1 (more than this share of the hosts), "
                f"got {self.fraction!r}"))
        if self.min_hosts < 2:
            raise ConfigError("min_hosts", f"must be at least 2, got {self.min_hosts}")
        if self.window <= 0:
            raise ConfigError("window", "must be longer than 0 seconds")

    @property
    def window_delta(self) -> timedelta:
        """``window`` as a timedelta."""
        return timedelta(seconds=self.window)


def _no_overrides() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class ProblemRules:
    """How results become problems; ``ProblemRules()`` is the documented default."""

    hard_after: int = 2
    hard_after_by_check: Mapping[str, int] = field(default_factory=_no_overrides)
    hard_after_by_type: Mapping[str, int] = field(default_factory=_no_overrides)
    flapping: FlappingRules = field(default_factory=FlappingRules)
    mass_silence: MassSilenceRules = field(default_factory=MassSilenceRules)

    def __post_init__(self) -> None:
        # a read-only copy, so that the frozen rules cannot change under a caller's dict
        for name in ("hard_after_by_check", "hard_after_by_type"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    def hard_after_for(self, key: ProblemKey, *, check_type: str | None = None) -> int:
        """Consecutive non-OK results that make this key's problem hard.

        Silence is hard at once; then the check instance's override, the check type's,
        the default.
        """
        if key.is_silence:
            return 1
        if key.check in self.hard_after_by_check:
            return self.hard_after_by_check[key.check]
        if check_type is not None and check_type in self.hard_after_by_type:
            return self.hard_after_by_type[check_type]
        return self.hard_after

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> ProblemRules:
        """The rules from the ``[problems]`` table of the collector's TOML (may be empty)."""
        if not isinstance(table, Mapping):
            raise ConfigError(SECTION, "must be a table")
        unknown = sorted(set(table) - set(_TOP_KEYS))
        if unknown:
            raise ConfigError(f"{SECTION}.{unknown[0]}",
                              f"unknown key (allowed here: {', '.join(sorted(_TOP_KEYS))})")
        values: dict[str, Any] = {}
        if "hard_after" in table:
            values["hard_after"] = _attempts(table["hard_after"], f"{SECTION}.hard_after")
        for name in ("hard_after_by_check", "hard_after_by_type"):
            if name in table:
                values[name] = _overrides(table[name], f"{SECTION}.{name}")
        if "flapping" in table:
            values["flapping"] = build(FlappingRules, table["flapping"],
                                       key=f"{SECTION}.flapping")
        if "mass_silence" in table:
            values["mass_silence"] = build(MassSilenceRules, table["mass_silence"],
                                           key=f"{SECTION}.mass_silence")
        return cls(**values)


def _attempts(value: Any, key: str) -> int:
    # A digit string is accepted too: the environment overlay delivers strings.
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"expected a whole number of results, got {value!r}")
    if value < 1:
        raise ConfigError(key, f"must be at least 1 result, got {value}")
    return value


def _overrides(table: Any, key: str) -> Mapping[str, int]:
    if not isinstance(table, Mapping):
        raise ConfigError(key, "must be a table of check = number of results")
    result: dict[str, int] = {}
    for name, value in table.items():
        if name == HOST_SILENCE_CHECK:
            raise ConfigError(f"{key}.{name}", "host silence is always hard at once")
        result[str(name)] = _attempts(value, f"{key}.{name}")
    return MappingProxyType(result)
