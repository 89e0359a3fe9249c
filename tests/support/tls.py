"""Certificates for loopback TLS in the tests (the ``openssl`` command): a self-signed
server certificate, a certificate authority, and client certificates it signs (mutual
TLS)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def self_signed(directory: Path, name: str = "IP:127.0.0.1") -> tuple[Path, Path]:
    """``(cert.pem, key.pem)`` in ``directory`` for ``name`` (a subjectAltName entry)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", f"/CN={name.partition(':')[2]}", "-addext", f"subjectAltName={name}",
             "-keyout", str(key), "-out", str(cert))
    return cert, key


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate authority: ``(ca.pem, ca-key.pem)`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "ca.pem", directory / "ca-key.pem"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "1", "-subj", f"/CN={name}", "-keyout", str(key),
             "-out", str(cert))
    return cert, key


def issue_client_certificate(ca: tuple[Path, Path], directory: Path,
                             host: str) -> tuple[Path, Path]:
    """A client certificate for ``host`` signed by ``ca``: ``(cert.pem, key.pem)``."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key, request = directory / "cert.pem", directory / "key.pem", directory / "req.csr"
    extensions = directory / "client.ext"
    extensions.write_text("basicConstraints = CA:FALSE\nextendedKeyUsage = clientAuth\n"
                          f"subjectAltName = DNS:{host}\n")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-subj", f"/CN={host}", "-keyout", str(key), "-out", str(request))
    _openssl("x509", "-req", "-in", str(request), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-set_serial", str(uuid.uuid4().int >> 64), "-days", "1",
             "-extfile", str(extensions), "-out", str(cert))
    return cert, key


def encrypted_copy(key: Path, destination: Path, passphrase: str = "secret") -> Path:
    """``key`` encrypted with ``passphrase`` (PKCS#8, AES-256) at ``destination``."""
    _openssl("pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", str(key), "-out",
             str(destination), "-passout", f"pass:{passphrase}")
    return destination
