"""build.sh's two edits: the staged source as the agent's package, and the bundle manifest.

``stage.py STAGE [VERSION]``: in the staged copy of the source (never the checkout),
package the agent and its checks only, without the collector's console script, at
VERSION (default: pyproject.toml's); prints the version.

``stage.py --manifest BUNDLE VERSION``: write ``BUNDLE/MANIFEST.json``: the version, the
Python it was built for, and the sha256 of every wheel; ``install.sh`` compares the
wheelhouse digest with the installed one to know whether the agent changed.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import sys
import tomllib
from pathlib import Path

VERSION = re.compile(r"^[0-9]+(\.[0-9]+)*([.+-][0-9A-Za-z.]+)?$")
EDITS = (
    # (what, pattern in pyproject.toml, replacement)
    ("the packages", r'(?m)^include = \[.*\]$', 'include = ["agent*", "checks*"]'),
    ("the collector's console script", r'(?m)^watchkeeper-collector = .*\n', ""),
)


def stage(source: Path, version: str) -> str:
    """Edit the staged source in place; return the version it now has."""
    pyproject = source / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    version = version or str(tomllib.loads(text)["project"]["version"])
    if not VERSION.match(version):
        raise SystemExit(f"stage.py: {version!r} is not a version such as 0.2.0")
    edits = (*EDITS, ("the version", r'(?m)^version = ".*"$', f'version = "{version}"'))
    for what, pattern, replacement in edits:
        text, count = re.subn(pattern, replacement, text, count=1)
        if count != 1:
            raise SystemExit(f"stage.py: cannot find {what} in pyproject.toml "
                             f"(pattern {pattern!r}); update deploy/bundle/stage.py")
    pyproject.write_text(text, encoding="utf-8")
    init = source / "agent" / "__init__.py"
    code, count = re.subn(r'(?m)^__version__ = ".*"$', f'__version__ = "{version}"',
                          init.read_text(encoding="utf-8"))
    if count != 1:
        raise SystemExit("stage.py: no __version__ line in agent/__init__.py")
    init.write_text(code, encoding="utf-8")
    return version


def manifest(bundle: Path, version: str) -> dict[str, object]:
    """The manifest of the bundle at ``bundle``; also written to its MANIFEST.json."""
    wheels = {
        wheel.name: hashlib.sha256(wheel.read_bytes()).hexdigest()
        for wheel in sorted((bundle / "wheelhouse").glob("*.whl"))
    }
    digest = hashlib.sha256(
        "".join(f"{name} {sha}\n" for name, sha in wheels.items()).encode()).hexdigest()
    data: dict[str, object] = {
        "name": "watchkeeper-agent",
        "version": version,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "wheelhouse_sha256": digest,
        "wheels": wheels,
    }
    (bundle / "MANIFEST.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return data


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "--manifest":
        manifest(Path(argv[1]), argv[2])
        return 0
    if len(argv) in (1, 2) and not argv[0].startswith("-"):
        print(stage(Path(argv[0]), argv[1] if len(argv) == 2 else ""))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
