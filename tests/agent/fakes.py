"""Tiny check types for the agent's tests, looked up through the config's ``lookup`` seam."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import ClassVar, Literal

from checks.config import Percent, Seconds
from checks.registry import CheckContext, CheckType, UnknownCheckType
from checks.result import CheckResult, Metric, Status

RELEASE = threading.Event()
"""Set by the tests' teardown so that a 'hung' fake check lets its thread go."""

STARTS: dict[str, list[float]] = defaultdict(list)
"""Monotonic start times of each fake check instance, by instance name."""


@dataclass(frozen=True)
class FakeConfig:
    status: Literal["ok", "warning", "critical", "unknown"] = "ok"
    targets: tuple[str, ...] = ("/",)
    sleep: Seconds = Seconds(0)
    fail: str = ""
    good_runs: int = 0
    """With ``fail``: how many runs succeed before it starts raising."""
    space_warn_pct: Percent = Percent(85)


class FakeCheck:
    """Reports ``status`` for each target after ``sleep`` seconds, or raises ``fail``."""

    type_name: ClassVar[str] = "fake"
    Config: ClassVar[type[FakeConfig]] = FakeConfig

    def __init__(self, config: FakeConfig, context: CheckContext) -> None:
        self.config = config
        self.context = context
        self.runs = 0

    def run(self) -> list[CheckResult]:
        STARTS[self.context.name].append(time.monotonic())
        self.runs += 1
        if self.config.sleep:
            RELEASE.wait(self.config.sleep)
        if self.config.fail and self.runs > max(self.config.good_runs, 0):
            raise RuntimeError(self.config.fail)
        status = Status[self.config.status.upper()]
        return [
            CheckResult(self.context.name, target, status, f"{target} is {status.name}",
                        (Metric("used_pct", 42.0, "%", warn=85, crit=95),))
            for target in self.config.targets
        ]


@dataclass(frozen=True)
class FakeAgentConfig:
    spool_depth_warn: int = 1000


class FakeAgentCheck:
    """Stands in for the agent self-check: OK with the agent's figures in ``details``."""

    type_name: ClassVar[str] = "agent"
    Config: ClassVar[type[FakeAgentConfig]] = FakeAgentConfig

    def __init__(self, config: FakeAgentConfig, context: CheckContext) -> None:
        self.config = config
        self.context = context

    def run(self) -> list[CheckResult]:
        info = dict(self.context.agent_info())
        status = Status.WARNING if info.get("spool_depth", 0) > self.config.spool_depth_warn \
            else Status.OK
        return [CheckResult(self.context.name, "", status, "agent running", (), info)]


@dataclass(frozen=True)
class ProcessFactsConfig:
    output: str = ""


class ProcessFactsCheck:
    """Writes to ``output`` (as JSON) what the agent's process looks like from a check: the
    environment of a command it starts (``env``) and the modules the agent has loaded."""

    type_name: ClassVar[str] = "process_facts"
    Config: ClassVar[type[ProcessFactsConfig]] = ProcessFactsConfig

    def __init__(self, config: ProcessFactsConfig, context: CheckContext) -> None:
        self.config = config
        self.context = context

    def run(self) -> list[CheckResult]:
        printed = subprocess.run(["/usr/bin/env"], capture_output=True, text=True, check=True,
                                 timeout=10).stdout
        facts = {"command_env": printed.splitlines(), "modules": sorted(sys.modules)}
        partial = f"{self.config.output}.partial"
        with open(partial, "w") as file:
            json.dump(facts, file)
        os.replace(partial, self.config.output)  # whole or absent for the test that waits
        return [CheckResult(self.context.name, "", Status.OK, "facts written", ())]


TYPES: dict[str, type[CheckType]] = {"fake": FakeCheck, "agent": FakeAgentCheck}


def lookup(type_name: str) -> type[CheckType]:
    """Like ``checks.registry.load`` over the fake types."""
    try:
        return TYPES[type_name]
    except KeyError:
        known = ", ".join(sorted(TYPES))
        raise UnknownCheckType(f"unknown check type {type_name!r} (known: {known})") from None
