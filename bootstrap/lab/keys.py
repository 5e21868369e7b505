"""Ed25519 key pairs in OpenSSH format, made in-process (no ssh-keygen needed on the host)."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bootstrap.lab.state import write_atomic


def generate(comment: str) -> tuple[bytes, str]:
    """(private key in OpenSSH PEM, public key line 'ssh-ed25519 AAAA... comment')."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, f"{public.decode()} {comment}"


def write_pair(path: Path, comment: str) -> str:
    """Write path (0600) and path.pub; return the public key line."""
    private, public = generate(comment)
    write_atomic(path, private, mode=0o600)
    write_atomic(path.with_name(path.name + ".pub"), public + "\n", mode=0o644)
    return public


def ensure_pair(path: Path, comment: str) -> str:
    pub = path.with_name(path.name + ".pub")
    if path.is_file() and pub.is_file():
        return pub.read_text().strip()
    return write_pair(path, comment)
