"""Small JSON files a check keeps between runs in its state directory, written atomically.

A temp file of our own beside the target (the pid in its name keeps two agents sharing a
state directory apart; lighter to import than ``tempfile``), then ``os.replace``: a reader
sees the old file or the new one, never half of one. Callers decide what a failure means
(a note, UNKNOWN, or nothing): this raises ``OSError``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json(path: Path, payload: Any, *, durable: bool = False,
               indent: int | None = None) -> None:
    """Write ``payload`` as JSON to ``path`` atomically; ``durable`` also fsyncs it (for
    what an operator recorded on purpose, such as a baseline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            json.dump(payload, out, indent=indent,
                      separators=None if indent is not None else (",", ":"))
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
