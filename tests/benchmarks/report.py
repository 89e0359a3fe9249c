"""How a benchmark ends: judge its targets, print the verdict and the JSON line."""

from __future__ import annotations

import json
from collections.abc import Mapping


def finish(report: dict[str, object], targets: Mapping[str, bool]) -> dict[str, object]:
    """Record which targets were missed, print the verdict and the report as one JSON line."""
    missed = [name for name, met in targets.items() if not met]
    report["targets_missed"] = missed
    print(f"targets: {'MISSED ' + ', '.join(missed) if missed else 'met'}")
    print(json.dumps(report))
    return report


def exit_code(report: Mapping[str, object]) -> int:
    """1 when the benchmark missed a target, else 0."""
    return 1 if report["targets_missed"] else 0
