"""A self-signed certificate for loopback TLS in the tests (the ``openssl`` command)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def self_signed(directory: Path, name: str = "IP:127.0.0.1") -> tuple[Path, Path]:
    """``(cert.pem, key.pem)`` in ``directory`` for ``name`` (a subjectAltName entry)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", f"/CN={name.partition(':')[2]}", "-addext", f"subjectAltName={name}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key
